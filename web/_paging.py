"""Pagination for list endpoints: ``limit``/``offset`` in, ``items``/``total``/``next`` out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query, Request

__all__ = ["MAX_OFFSET", "Page", "page_params", "paged"]

#: the largest ``offset`` (and FHIR ``_offset``) accepted: PostgreSQL's OFFSET is a bigint, and
#: a larger number answered 500 (found by schemathesis); no list here comes near this many rows
MAX_OFFSET = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=500, description="page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")] = 0,
) -> Page:
    return Page(limit, offset)


def paged(request: Request, items: Sequence[Any], total: int, page: Page) -> dict[str, Any]:
    nxt = None
    if page.offset + len(items) < total:
        nxt = str(request.url.include_query_params(offset=page.offset + page.limit))
    return {
        "items": list(items),
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
        "next": nxt,
    }
