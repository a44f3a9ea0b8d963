"""The contact CSV reader's memory is flat in the file's size: the peak Python allocation
(tracemalloc) reading 100,000 generated rows is that of 10,000 rows plus the growth of the
index of numbers seen (`NumberSet`: 8 bytes a slot, bounded by the row limit), not that of
a 10x longer file. (Sizes kept small for the suite's time: under tracemalloc a million rows
take minutes; bench/contact_csv.py measures 100,000 against 1,000,000.)

The number parser is a stand-in that trusts the file's numbers: phonenumbers' parse holds
nothing from one number to the next (its caches are per pattern), and under tracemalloc a
million real parses take many minutes; bench/contact_csv.py measures the real reader's
peak on the same two sizes.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator

import pytest
from phonenumbers import PhoneNumberType

from api.services.contact_csv import ContactCsvReader, CsvLimits
from api.services.contact_csv import reader as reader_module
from sip.numbers import Destination

LIMITS = CsvLimits(max_bytes=1 << 30, max_rows=1_000_000, max_columns=16, max_field_chars=4096)
MiB = 1 << 20


async def generated(rows: int) -> AsyncIterator[bytes]:
    """A file of `rows` distinct French mobile numbers, with a variable and a metadata
    column, made as it is read (the test itself holds no file)."""
    yield b"phone,first_name,metadata.ref\r\n"
    for start in range(0, rows, 1500):
        lines = (
            f"+3361{n:07d},Name {n % 977},ref-{n}\r\n"
            for n in range(start, min(rows, start + 1500))
        )
        yield "".join(lines).encode()


def trusted(raw: str) -> Destination:
    return Destination(e164=raw, country_code=33, number_type=PhoneNumberType.MOBILE, region="FR")


async def peak_bytes(rows: int) -> int:
    """The peak allocation while the file is read."""
    reader = ContactCsvReader(generated(rows), limits=LIMITS)
    tracemalloc.start()
    try:
        accepted = 0
        async for batch in reader.batches():
            accepted += len(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert accepted == reader.report.rows_read == rows
    return peak


async def test_ten_times_the_rows_peak_at_the_same_plus_the_number_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reader_module, "parse_number", trusted)
    small = await peak_bytes(10_000)
    large = await peak_bytes(100_000)
    # The index peaks when it last doubles, its old table beside the new one: 1/8 + 1/4 MiB
    # (2^14 and 2^15 slots) for 10,000 numbers, 1 + 2 MiB for 100,000.
    index_growth = (1 + 2) * MiB - (MiB // 8 + MiB // 4)
    assert large - small <= index_growth + MiB, (small, large)
