"""web: the care manager's queue, the clinician's trends, the admin API, FHIR R4 and the
billing ledger (FastAPI + Jinja2; see ``web/README.md``).

Public surface: :func:`create_app` (the app factory, for tests and embedding), :func:`main`
(``carebeacon web``), :func:`seed_demo` and :func:`create_user` (sites, programs and users for
the demo and for tests).
"""

from web.app import create_app, main
from web.seed import SeededAccounts, create_user, seed_demo

__all__ = ["SeededAccounts", "create_app", "create_user", "main", "seed_demo"]
