"""lab: the tooling beside the product — nothing in the product imports it.

* :mod:`lab.services` — the project's own Mosquitto and TimescaleDB for development and tests;
* :mod:`lab.emulation` — BLE health devices emulated with bumble (real GATT over an in-process
  link), encoding with :mod:`devices`, and a bleak backend that drives them;
* :mod:`lab.seed`, :mod:`lab.homes`, :mod:`lab.population`, :mod:`lab.cohort` — synthetic data:
  sites and users, provisioned homes, a year-long population, a labelled alert cohort;
* :mod:`lab.demo` — the whole system with emulated homes (``carebeacon demo``);
* :mod:`lab.bench` — benchmarks that print numbers (``carebeacon bench``).

It may import every package; it is installed with the ``lab`` extra.
"""

__all__: list[str] = []
