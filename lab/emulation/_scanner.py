"""A bleak scanner backend that listens on the emulated air."""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner

from lab.emulation._air import Advert, EmulatedAir, current_air

__all__ = ["BumbleScanner"]

logger = logging.getLogger(__name__)


class BumbleScanner(BaseBleakScanner):
    """``BleakScanner(..., backend=BumbleScanner)``: scanning on the current :class:`EmulatedAir`.

    Advertisements carry the local name, service UUIDs, service data, manufacturer data and the
    RSSI configured for each emulated device. Filtering by ``service_uuids`` follows bleak's rule
    (the advertisement's service UUID list must contain one of them).
    """

    air: ClassVar[EmulatedAir | None] = None

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._scanning_mode = scanning_mode
        self._air: EmulatedAir | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        air = type(self).air or current_air()
        self._air = air
        await air.add_scan_listener(self, self._on_advert)
        logger.debug("emulated scan started")

    async def stop(self) -> None:
        if self._air is not None:
            await self._air.remove_scan_listener(self)
            self._air = None
        logger.debug("emulated scan stopped")

    def _on_advert(self, advert: Advert) -> None:
        if not self.is_allowed_uuid(advert.service_uuids):
            return
        data = AdvertisementData(
            local_name=advert.local_name,
            manufacturer_data=dict(advert.manufacturer_data),
            service_data=dict(advert.service_data),
            service_uuids=list(advert.service_uuids),
            tx_power=advert.tx_power,
            rssi=advert.rssi,
            platform_data=(advert,),
        )
        device = self.create_or_update_device(
            advert.address, advert.address, advert.local_name, advert, data
        )
        self.call_detection_callbacks(device, data)
