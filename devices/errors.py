"""The package's exception tree: one base, a parse error and an encode error.

Messages carry sizes and flags only, never payload bytes or decoded values (they end up in
logs); the same facts are attributes for code that wants them.
"""

from __future__ import annotations

__all__ = ["DevicesError", "EncodeError", "ParseError", "UnsupportedCharacteristic"]


class DevicesError(Exception):
    """Base of every error raised by :mod:`devices`."""


class ParseError(DevicesError, ValueError):
    """Bytes that do not decode as the characteristic they claim to be.

    ``what`` names the characteristic, ``size`` is the payload length, ``required`` the length
    its flags call for (when the problem is a length), ``flags`` the flags field as read.
    """

    def __init__(
        self,
        what: str,
        *,
        size: int,
        required: int | None = None,
        flags: int | None = None,
        reason: str | None = None,
    ) -> None:
        self.what = what
        self.size = size
        self.required = required
        self.flags = flags
        self.reason = reason
        parts = [f"{what}: {size} bytes"]
        if flags is not None:
            parts.append(f"flags 0x{flags:02x}")
        if required is not None:
            parts.append(f"needs {required}")
        if reason is not None:
            parts.append(reason)
        super().__init__(", ".join(parts))


class UnsupportedCharacteristic(ParseError):
    """A characteristic or service-data UUID that this package has no codec for."""

    def __init__(self, characteristic: str, size: int = 0) -> None:
        super().__init__("characteristic", size=size, reason="no codec for this UUID")
        self.characteristic = characteristic
        self.args = (f"no codec for characteristic {characteristic[:40]!r}",)


class EncodeError(DevicesError, ValueError):
    """A value that cannot be represented in the characteristic's wire format."""
