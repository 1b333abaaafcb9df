"""What the FHIR modules share: the media type and content negotiation, errors as
OperationOutcomes, search parameters (GET query or POST ``_search`` form), and searchset Bundles
with an accurate ``total`` and ``next`` links that reach the end.

Search parameters that a route does not know are ignored and left out of the Bundle's ``self``
link (the spec's default, ``Prefer: handling=lenient``); with ``Prefer: handling=strict`` they
answer 400.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from web._auth import require
from web._paging import MAX_OFFSET
from web._principal import Principal

__all__ = [
    "ANY",
    "DEFAULT_COUNT",
    "FHIR_JSON",
    "MAX_COUNT",
    "NOT_ACCEPTABLE",
    "Count",
    "FhirJSONResponse",
    "Items",
    "Offset",
    "SearchQuery",
    "fhir_device_id",
    "fhir_response",
    "get_query",
    "instant",
    "negotiate",
    "operation_outcome",
    "parse_patient",
    "patient_ref",
    "post_query",
    "search_items",
    "searchset",
]

FHIR_JSON = "application/fhir+json"
#: the ``_format`` values and media types we answer (JSON only)
_JSON_FORMATS = frozenset({"json", FHIR_JSON, "application/json", "application/json+fhir"})
_ACCEPTS_JSON = _JSON_FORMATS | {"*/*", "application/*"}
DEFAULT_COUNT, MAX_COUNT = 100, 1000
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

ANY = require()
#: the 406 every FHIR route may answer, for the OpenAPI document
NOT_ACCEPTABLE: dict[int | str, dict[str, Any]] = {
    406: {
        "description": "a format other than JSON asked for (_format or Accept)",
        "content": {FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}},
    }
}


class FhirJSONResponse(JSONResponse):
    """JSON under FHIR's media type: the documented response class of every FHIR route."""

    media_type = FHIR_JSON


def fhir_response(body: dict[str, Any], status_code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, media_type=FHIR_JSON)


_ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    406: "not-supported",
    422: "invalid",
}


def operation_outcome(
    status_code: int, text: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A FHIR error, as an OperationOutcome."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": _ISSUE_CODE.get(status_code, "processing"),
                "diagnostics": text,
            }
        ],
    }
    return JSONResponse(body, status_code=status_code, media_type=FHIR_JSON, headers=headers)


def _media_types(accept: str) -> set[str]:
    return {part.split(";", 1)[0].strip().lower() for part in accept.split(",") if part.strip()}


async def negotiate(
    request: Request,
    principal: Annotated[Principal, Depends(ANY)],
    format_: Annotated[
        str | None,
        Query(
            alias="_format",
            description="json, application/json or application/fhir+json; any other is 406",
        ),
    ] = None,
) -> None:
    """The dependency of every FHIR route (after authentication): 406 unless the client takes
    JSON. ``_format`` overrides ``Accept``; a missing or empty ``Accept`` takes anything."""
    if format_ is not None:
        # an unencoded '+' in a query string is a space
        if format_.strip().lower().replace(" ", "+") not in _JSON_FORMATS:
            raise HTTPException(status.HTTP_406_NOT_ACCEPTABLE, "only JSON is served")
        return
    accept = request.headers.get("accept", "")
    if accept.strip() and not _media_types(accept) & _ACCEPTS_JSON:
        raise HTTPException(status.HTTP_406_NOT_ACCEPTABLE, "only JSON is served")


def fhir_device_id(device_id: str) -> str:
    """A FHIR-legal id for a device id (ids may hold ':' or other characters FHIR forbids)."""
    if _FHIR_ID.match(device_id):
        return device_id
    return "d-" + hashlib.sha256(device_id.encode()).hexdigest()[:40]


def instant(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def patient_ref(patient_id: uuid.UUID) -> dict[str, str]:
    return {"reference": f"Patient/{patient_id}"}


def parse_patient(value: str) -> uuid.UUID:
    raw = value.removeprefix("Patient/")
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "patient must be a Patient id") from None


# --- search parameters ------------------------------------------------------------------------

#: the paging parameters of every search (GET routes and :class:`SearchQuery`)
Count = Annotated[
    int,
    Query(
        alias="_count",
        ge=0,
        le=MAX_COUNT,
        description="entries per page (resources); 0 answers only Bundle.total",
    ),
]
Offset = Annotated[
    int, Query(alias="_offset", ge=0, le=MAX_OFFSET, description="where the page starts")
]


Items = list[tuple[str, str]]
Q = TypeVar("Q", bound="SearchQuery")


class SearchQuery(BaseModel):
    """The parameters of one resource type's search (a subclass adds its own, as its GET route
    declares them). Validates a POST ``_search`` form as the GET route's ``Query`` parameters
    validate the query string."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    #: parameters that may repeat (the others are given once)
    MULTI: ClassVar[frozenset[str]] = frozenset()

    count: Count = DEFAULT_COUNT
    offset: Offset = 0

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.alias or name for name, f in cls.model_fields.items())

    @classmethod
    def parse(cls: type[Q], items: Items) -> Q:
        """From name/value pairs; invalid values are a 422 (as a GET's are)."""
        values: dict[str, list[str]] = {}
        for name, value in items:
            values.setdefault(name, []).append(value)
        data = {
            name: found if name in cls.MULTI or len(found) > 1 else found[0]
            for name, found in values.items()
        }
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            raise RequestValidationError(errors) from None


def search_items(request: Request, items: Sequence[tuple[str, str]], model: type[Q]) -> Items:
    """The parameters of ``items`` that ``model`` knows (the others are ignored; 400 under
    ``Prefer: handling=strict``)."""
    known = model.names()
    unknown = sorted({name for name, _ in items} - known - {"_format"})
    prefer = request.headers.get("prefer", "").replace(" ", "").lower()
    if unknown and "handling=strict" in prefer.split(";"):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "unknown search parameters: " + ", ".join(unknown)
        )
    return [(name, value) for name, value in items if name in known]


def get_query(request: Request, model: type[Q]) -> tuple[Q, Items]:
    """A GET search's parameters (FastAPI has validated them as the route's ``Query``
    parameters, which document them) and the pairs its links repeat."""
    items = search_items(request, request.query_params.multi_items(), model)
    return model.parse(items), items


async def post_query(request: Request, model: type[Q]) -> tuple[Q, Items]:
    """A POST ``_search``'s parameters: its query string and its form-encoded body."""
    form = await request.form()
    body = [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
    items = search_items(request, [*request.query_params.multi_items(), *body], model)
    return model.parse(items), items


def searchset(
    request: Request,
    resource_type: str,
    items: Items,
    query: SearchQuery,
    resources: Sequence[dict[str, Any]],
    total: int,
) -> dict[str, Any]:
    """A searchset Bundle: ``total`` matches, this page's ``resources``; ``self`` (the
    parameters understood), ``previous`` and ``next`` as GET URLs."""
    base = str(request.base_url).rstrip("/") + "/fhir"
    kept = [(name, value) for name, value in items if name not in ("_count", "_offset")]

    def url(offset: int) -> str:
        params = [*kept, ("_count", str(query.count))]
        if offset:
            params.append(("_offset", str(offset)))
        return f"{base}/{resource_type}?{urlencode(params)}"

    links = [{"relation": "self", "url": url(query.offset)}]
    if query.count and query.offset > 0:
        links.append({"relation": "previous", "url": url(max(0, query.offset - query.count))})
    if query.count and query.offset + query.count < total:
        links.append({"relation": "next", "url": url(query.offset + query.count)})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
    }
    if resources:  # JSON FHIR has no empty arrays
        bundle["entry"] = [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ]
    return bundle
