"""``/openapi.json`` says what errors look like.

FastAPI documents a 422 as ``{"detail": [ValidationError…]}`` and no other error, while this
app answers ``{"detail": "…", "errors": […]}`` (422 only) for 400, 401, 403, 404, 409 and 422,
and FHIR routes answer an ``OperationOutcome`` under ``application/fhir+json``. Found by
schemathesis (``tests/web/test_api_schemathesis.py``): every 4xx contradicted the schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

__all__ = ["CareBeaconAPI", "ErrorOut", "FieldError", "document_errors"]

FHIR_JSON = "application/fhir+json"
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every JSON error: a text; a 422 of request validation adds the failing locations."""

    detail: str
    errors: list[FieldError] | None = None


_OPERATION_OUTCOME: dict[str, Any] = {
    "title": "OperationOutcome",
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string"},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                },
            },
        },
    },
}

_WHY = {
    400: "malformed request (body that is not JSON, FHIR search parameter)",
    401: "no valid session or API token",
    403: "role, site of care, or missing CSRF token",
    404: "no such record (or not visible to you)",
    409: "conflicts with an existing record or state",
    422: "invalid input",
}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the app's error responses to every operation of ``schema`` (in place; returned)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error_schema.pop("$defs", {}))
    components["ErrorOut"] = error_schema
    components["OperationOutcome"] = _OPERATION_OUTCOME
    for path, item in schema.get("paths", {}).items():
        fhir = path.startswith("/fhir/")
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            codes = [401, 403, 404, 422]
            if fhir or method != "get":
                codes.append(400)
            if method != "get":
                codes.append(409)
            media, ref = (
                (FHIR_JSON, "OperationOutcome") if fhir else ("application/json", "ErrorOut")
            )
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                responses[str(code)] = {
                    "description": _WHY[code],
                    "content": {media: {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
                }
    text = repr(schema.get("paths", {}))
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{unused}'" not in text:
            components.pop(unused, None)
    return schema


class CareBeaconAPI(FastAPI):
    """FastAPI whose OpenAPI document includes the error responses (:func:`document_errors`)."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = document_errors(super().openapi())
        return self.openapi_schema
