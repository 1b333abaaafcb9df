"""Gateways (admin): list, provision (creates the broker login and returns its password once;
the broker's own usernames are refused as ids), rotate the password, let a gateway serve a
patient, deprovision (removes the broker login, clears the retained topics, deletes the row)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from typing import Annotated, Any

import aiomqtt
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from carebeacon import broker
from carebeacon.settings import Settings
from web._access import check_patient_access
from web._admin._common import ADMIN, ID_PATTERN, one_row, page_of
from web._audit import audit, audit_denied
from web._db import Conn
from web._field_errors import field_error
from web._paging import Page, page_params
from web._principal import Principal
from web._schemas import CredentialsOut, GatewayOut, GatewayProvisioned, PageOf
from web._state import app_state

__all__ = ["clear_retained_topics", "deprovision", "reserved_gateway_id", "router"]

logger = logging.getLogger(__name__)
router = APIRouter()


#: the gateways not yet serving anyone, and those serving patients of my sites
_GATEWAYS_SQL = (
    "SELECT g.id, g.label, g.online, g.status_at, g.last_seen_at, g.created_at,"
    " g.status ->> 'software_version' AS software_version,"
    " (SELECT count(*) FROM gateway_patients gp WHERE gp.gateway_id = g.id) AS patients"
    " FROM gateways g WHERE (%s::bool IS NULL OR g.online = %s)"
    " AND (NOT EXISTS (SELECT 1 FROM gateway_patients gp WHERE gp.gateway_id = g.id)"
    "  OR EXISTS (SELECT 1 FROM gateway_patients gp JOIN patients p ON p.id = gp.patient_id"
    "   WHERE gp.gateway_id = g.id AND p.site_id = ANY(%s))) ORDER BY g.id"
)


class GatewayIn(BaseModel):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    label: str | None = None
    patient_ids: list[uuid.UUID] = Field(default_factory=list)


class GatewayPatientIn(BaseModel):
    patient_id: uuid.UUID


@router.get("/gateways", response_model=PageOf[GatewayOut], summary="List gateways (admin)")
async def list_gateways(
    request: Request,
    principal: Annotated[Principal, Depends(ADMIN)],
    page: Annotated[Page, Depends(page_params)],
    online: bool | None = None,
) -> dict[str, Any]:
    return await page_of(request, _GATEWAYS_SQL, [online, online, sorted(principal.sites)], page)


async def _gateway_in_my_sites(
    request: Request, conn: Conn, principal: Principal, gateway_id: str, action: str
) -> None:
    """404 for an unknown gateway and for one serving patients of other sites only (both
    audited): gateway ids are chosen by people, and the answer must not tell which exist."""
    cur = await conn.execute(
        "SELECT g.id, array_remove(array_agg(DISTINCT p.site_id), NULL) AS sites"
        " FROM gateways g LEFT JOIN gateway_patients gp ON gp.gateway_id = g.id"
        " LEFT JOIN patients p ON p.id = gp.patient_id WHERE g.id = %s GROUP BY g.id",
        (gateway_id,),
    )
    row = await cur.fetchone()
    resource = f"gateway/{gateway_id}"
    if row is None:
        await audit_denied(request, principal, action, reason="not_found", resource=resource)
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such gateway")
    if row["sites"] and not set(row["sites"]) & principal.sites:
        site = sorted(row["sites"])[0]
        await audit_denied(
            request, principal, action, reason="site", site_id=site, resource=resource
        )
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such gateway")


#: the broker's server-side usernames by default (the settings may name others, refused too)
_RESERVED = frozenset({"ingest", "admin"})
#: ingest's client ids (``ingest-<hostname>`` by default, one per instance) are predictable
_RESERVED_PREFIXES = ("ingest-",)


def reserved_gateway_id(settings: Settings, gateway_id: str) -> bool:
    """A gateway id is its broker username (and may be bound to its client id): it must not
    be, nor pass for, one of the server side's (ingest's, the admin's, their client ids)."""
    taken = _RESERVED | {
        settings.mqtt_ingest_user.lower(),
        settings.mqtt_admin_user.lower(),
        settings.ingest_client_id.lower(),
    }
    name = gateway_id.lower()
    return name in taken or name.startswith(_RESERVED_PREFIXES)


def _check_not_reserved(settings: Settings, gateway_id: str) -> None:
    if reserved_gateway_id(settings, gateway_id):
        raise field_error("id", "reserved for the broker's own users")


async def _provision(request: Request, gateway_id: str) -> str:
    password = secrets.token_urlsafe(24)
    await asyncio.to_thread(app_state(request).provision_gateway, gateway_id, password)
    return password


@router.post(
    "/gateways",
    response_model=GatewayProvisioned,
    status_code=201,
    summary="Provision a gateway (creates its MQTT login)",
    responses={503: {"description": "the broker could not be reached: nothing was created"}},
)
async def create_gateway(
    request: Request, body: GatewayIn, principal: Annotated[Principal, Depends(ADMIN)]
) -> dict[str, Any]:
    """Returns the generated MQTT password once; it is not stored anywhere readable. The id is
    the gateway's broker username: the broker's own names are refused (422 naming ``id``)."""
    _check_not_reserved(app_state(request).settings, body.id)
    for pid in body.patient_ids:
        await check_patient_access(request, principal, pid, "api provision gateway")
    try:  # gateway ids are global on a shared broker: nothing left under this id is inherited
        await clear_retained_topics(app_state(request).settings, body.id)
    except aiomqtt.MqttError:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the broker could not be reached to clear the id's retained topics: try again",
        ) from None
    async with app_state(request).pool.connection() as conn:
        row = await one_row(
            conn,
            "INSERT INTO gateways (id, label) VALUES (%s, %s) RETURNING id, label, created_at",
            (body.id, body.label),
        )
        for pid in body.patient_ids:
            await conn.execute(
                "INSERT INTO gateway_patients (gateway_id, patient_id) VALUES (%s, %s)",
                (body.id, pid),
            )
        password = await _provision(request, body.id)
        await audit(conn, principal, "provision gateway", resource=f"gateway/{body.id}")
    logger.info("gateway provisioned")
    return {
        **row,
        "patient_ids": body.patient_ids,
        "mqtt_username": body.id,
        "mqtt_password": password,
    }


@router.post(
    "/gateways/{gateway_id}/credentials",
    response_model=CredentialsOut,
    summary="Rotate a gateway's MQTT password",
)
async def rotate_gateway(
    request: Request, gateway_id: str, principal: Annotated[Principal, Depends(ADMIN)]
) -> dict[str, Any]:
    async with app_state(request).pool.connection() as conn:
        await _gateway_in_my_sites(
            request, conn, principal, gateway_id, "rotate gateway credentials"
        )
        password = await _provision(request, gateway_id)
        await audit(conn, principal, "rotate gateway credentials", resource=f"gateway/{gateway_id}")
    return {"mqtt_username": gateway_id, "mqtt_password": password}


@router.post(
    "/gateways/{gateway_id}/patients", status_code=201, summary="Let a gateway serve a patient"
)
async def add_gateway_patient(
    request: Request,
    gateway_id: str,
    body: GatewayPatientIn,
    principal: Annotated[Principal, Depends(ADMIN)],
) -> dict[str, Any]:
    await check_patient_access(request, principal, body.patient_id, "api gateway add patient")
    async with app_state(request).pool.connection() as conn:
        await _gateway_in_my_sites(request, conn, principal, gateway_id, "gateway add patient")
        await conn.execute(
            "INSERT INTO gateway_patients (gateway_id, patient_id) VALUES (%s, %s)",
            (gateway_id, body.patient_id),
        )
    return {"gateway_id": gateway_id, "patient_id": body.patient_id}


#: the retained topics of a gateway: its status (and Last Will) and the config pushed to it
RETAINED_KINDS = ("status", "config")


async def clear_retained_topics(settings: Settings, gateway_id: str) -> None:
    """Publish an empty retained payload (the only way MQTT clears one) on the gateway's status
    and config topics, as the broker's admin user. Raises :class:`aiomqtt.MqttError`."""
    async with aiomqtt.Client(
        settings.mqtt_host,
        settings.mqtt_port,
        username=settings.mqtt_admin_user,
        password=settings.mqtt_admin_password.get_secret_value(),
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=10,
    ) as client:
        for kind in RETAINED_KINDS:
            await client.publish(
                f"carebeacon/v1/gateways/{gateway_id}/{kind}", b"", qos=1, retain=True
            )


async def deprovision(settings: Settings, conn: Conn, gateway_id: str) -> bool:
    """Remove the broker login (first: nothing new can be published with it), clear the
    retained topics, then delete the gateway and the patients it served (readings, receipts
    and quarantine keep its id as provenance; they hold no key to the row). False if there was
    no such gateway row. Shared by the API and ``carebeacon admin gateways deprovision``."""
    await asyncio.to_thread(broker.remove_gateway_credentials, gateway_id)
    await clear_retained_topics(settings, gateway_id)
    cur = await conn.execute("DELETE FROM gateways WHERE id = %s RETURNING id", (gateway_id,))
    return await cur.fetchone() is not None


@router.delete(
    "/gateways/{gateway_id}",
    status_code=204,
    summary="Deprovision a gateway (removes its MQTT login and retained topics)",
    responses={503: {"description": "the broker could not be reached: nothing was deleted"}},
)
async def delete_gateway(
    request: Request, gateway_id: str, principal: Annotated[Principal, Depends(ADMIN)]
) -> Response:
    """The gateway can no longer log in; its retained status and config are cleared on the
    broker (a fresh ingest will not see them); the row and the patients it served are deleted.
    Another site's gateway is 404 like an unknown one."""
    state = app_state(request)
    async with state.pool.connection() as conn:
        await _gateway_in_my_sites(request, conn, principal, gateway_id, "deprovision gateway")
        try:
            await deprovision(state.settings, conn, gateway_id)
        except aiomqtt.MqttError:
            logger.warning("gateway deprovisioning: broker unreachable, retained topics kept")
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the broker could not be reached to clear the retained topics; the login is "
                "removed, the gateway is kept: try again",
            ) from None
        await audit(conn, principal, "deprovision gateway", resource=f"gateway/{gateway_id}")
    logger.info("gateway deprovisioned")
    return Response(status_code=204)
