"""web: the care manager's queue, the clinician's trends, the admin API, FHIR R4 and the
billing ledger (FastAPI + Jinja2; see ``web/README.md``).

Public surface: :func:`create_app` (the app factory, for tests and embedding) and :func:`main`
(``carebeacon web``).
"""

from web.app import create_app, main

__all__ = ["create_app", "main"]
