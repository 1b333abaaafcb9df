"""Complete values of every codec in ``devices/`` (every optional field present), with their
sources: the seeds of the truncation sweep and of the codec fuzzer."""

from __future__ import annotations

__all__ = ["FULL", "RACP_FORMS"]

#: one complete value per characteristic, with every optional field present
FULL: dict[str, str] = {
    "2a35": "1e8a00580078000000041114293b3c00012700",  # Nordic BPM _full
    "2a36": "1e0400000000000000041114293b3c00012700",  # Nordic ICP _full
    "2a49": "3f00",
    "2a18": "1f0100e307021b0b0a1efbff1e00120501",  # Nordic glucose, all flag bits
    "2a34": "ff0000b303640004123c003204d2f459f1",  # Nordic context _full fields
    "2a51": "f003",  # Nordic glucose feature
    "2a52": "010402e8070101000000e8070c1f173b3b",  # user facing time range request
    "2a9d": "0ee443e8070c1f173b0002f500e406",
    "2a9e": "bf010000",
    "2a9c": "fe1ffa00e8070c1f173b00014c1d6e01ec1dd83690338228" + "1c11e443e406",
    "2a9b": "ffbf0100",
    "2a19": "64",
    "2a23": "0102030405a1b2c3",
    "2a08": "e8070c1f173b00",
    "2a2b": "e8070c1f173b3b028003",
    "181d": "229e43e507040b101301",  # xiaomi-ble test_Xiaomi_Scale1
    "181b": "0226b20705040f0201ac018642",  # xiaomi-ble test_Xiaomi_Scale2
}

#: RACP: each operand form, truncated
RACP_FORMS = [
    "0103012a00",
    "0204010a001400",
    "010202e8070c1f173b3b",
    "05000201",
    "06000101",
]
