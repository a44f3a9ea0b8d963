"""Random version-4 UUIDs as text, minted without a `uuid.UUID` object.

Invariant: `uuid4_text()` is what `str(uuid.uuid4())` gives and `uuid4_hex()` what
`uuid.uuid4().hex` gives (16 random bytes with the version and variant bits set, the same
layout), at a fraction of the cost: the accept path mints two per call, and building and
formatting the object cost several times the random bytes themselves.
"""

from __future__ import annotations

import os


def uuid4_hex() -> str:
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def uuid4_text() -> str:
    digits = uuid4_hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
