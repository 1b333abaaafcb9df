"""A 422 that names the request field at fault, for checks that need the database or alerts/
(lifecycle rules, threshold validation) and so cannot live in the request model. Raised as
FastAPI's own ``RequestValidationError``, so the app answers it like every other 422
(``{"detail": "invalid request", "errors": [{"loc", "msg", "type"}]}``, web/_openapi.py)."""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError

__all__ = ["field_error", "field_error_text"]


def field_error(field: str, msg: str, *, where: str = "body") -> RequestValidationError:
    """422: ``field`` (in the body unless ``where`` says ``path`` or ``query``) is wrong."""
    return RequestValidationError([{"loc": (where, field), "msg": msg, "type": "value_error"}])


def field_error_text(exc: RequestValidationError) -> str:
    """One line for an HTML fragment: ``field: message``."""
    return "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors())
