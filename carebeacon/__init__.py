"""carebeacon: the base every package may import — settings (:mod:`carebeacon.settings`),
logging setup (:mod:`carebeacon.logs`), progress bars (:mod:`carebeacon.progress`), broker
credential provisioning (:mod:`carebeacon.broker`) — and the ``carebeacon`` console script on
top (:mod:`carebeacon.cli`).

Nothing here imports a product or tooling package, except the CLI's dispatch table (lazily).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
