"""api/store/uuids.py: the minted texts are version-4 UUIDs in `uuid`'s own spellings."""

from __future__ import annotations

import uuid

from api.store.uuids import uuid4_hex, uuid4_text


def test_minted_texts_are_random_version_4_uuids_as_uuid_spells_them() -> None:
    texts = [uuid4_text() for _ in range(2000)]
    digits = [uuid4_hex() for _ in range(2000)]
    for text in texts:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text
    for hex_text in digits:
        parsed = uuid.UUID(hex=hex_text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert parsed.hex == hex_text
    assert len(set(texts)) == len(texts) and len(set(digits)) == len(digits)
    # every random bit varies: neither the version nor the variant is all there is
    assert len({text[:8] for text in texts}) > 1900
