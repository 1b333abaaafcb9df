"""FHIR R4 (read-only, JSON): Patient, Observation (vital signs, glucose, the 7-day average
BP), Device, and the CapabilityStatement at ``/fhir/metadata``.

One module per resource type (``_fhir_patients``, ``_fhir_observations``, ``_fhir_devices``,
``_fhir_capability``); ``_fhir_common`` holds content negotiation, errors and searchset
Bundles. This module assembles the router the app includes.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from web import _fhir_capability, _fhir_devices, _fhir_observations, _fhir_patients
from web._fhir_common import (
    FHIR_JSON,
    NOT_ACCEPTABLE,
    FhirJSONResponse,
    fhir_device_id,
    negotiate,
    operation_outcome,
)

__all__ = ["FHIR_JSON", "fhir_device_id", "operation_outcome", "router"]

router = APIRouter(
    prefix="/fhir",
    tags=["FHIR R4"],
    default_response_class=FhirJSONResponse,
    dependencies=[Depends(negotiate)],
    responses=NOT_ACCEPTABLE,
)
router.include_router(_fhir_capability.router)
router.include_router(_fhir_patients.router)
router.include_router(_fhir_observations.router)
router.include_router(_fhir_devices.router)
