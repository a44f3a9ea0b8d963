"""The contact CSV reader (`api.services.contact_csv`), on bytes in memory: the formats a
spreadsheet writes, every bad row reported with its row number and reason, the file-level
refusals, and the records cut the same whatever chunks the file arrives in."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from api.errors import ApiError
from api.services.contact_csv import Contact, ContactCsvReader, CsvLimits, CsvReport
from api.services.contact_csv.number_set import NumberSet
from api.services.contact_csv.records import RecordSplitter

LIMITS = CsvLimits(max_bytes=10_000_000, max_rows=100_000, max_columns=16, max_field_chars=256)
ALICE, BOB, CAROL = "+14155550101", "+14155550102", "+14155550103"


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read(
    data: bytes | str,
    *,
    chunk: int = 1 << 20,
    limits: CsvLimits = LIMITS,
    batch_size: int = 1000,
    **options: Any,
) -> tuple[list[list[Contact]], CsvReport]:
    raw = data.encode() if isinstance(data, str) else data
    reader = ContactCsvReader(_chunks(raw, chunk), limits=limits, batch_size=batch_size, **options)
    batches = [batch async for batch in reader.batches()]
    return batches, reader.report


def rows(batches: list[list[Contact]]) -> list[tuple[int, str, dict[str, str], dict[str, str]]]:
    return [(c.row, c.number.e164, c.variables, c.metadata) for b in batches for c in b]


def rejected(report: CsvReport) -> list[tuple[int, str]]:
    return [(rejection.row, rejection.reason) for rejection in report.rejections]


async def refused(data: bytes | str, **options: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await read(data, **options)
    return caught.value


# --- the formats a spreadsheet writes ---------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
async def test_a_bom_crlf_quoted_fields_and_a_trailing_empty_line_read_right(chunk: int) -> None:
    data = (
        "\ufeffPhone,first_name,note,metadata.crm_id\r\n"
        f'{ALICE},Alice,"Smith, Jr.",c-1\r\n'
        f'"{BOB}",Bob,"said ""hi""\r\non two lines",c-2\r\n'
        "\r\n"
    )
    batches, report = await read(data, chunk=chunk)
    assert rows(batches) == [
        (2, ALICE, {"first_name": "Alice", "note": "Smith, Jr."}, {"crm_id": "c-1"}),
        (3, BOB, {"first_name": "Bob", "note": 'said "hi"\r\non two lines'}, {"crm_id": "c-2"}),
    ]
    assert (report.rows_read, report.accepted, report.rejected, report.blank_rows) == (2, 2, 0, 1)


@pytest.mark.parametrize("separator", [";", "\t"])
async def test_semicolon_and_tab_separators_are_sniffed_from_the_header(separator: str) -> None:
    data = f'name{separator}phone\nAlice{separator}{ALICE}\n"Bob{separator} B"{separator}{BOB}'
    batches, report = await read(data, chunk=5)
    assert rows(batches) == [
        (2, ALICE, {"name": "Alice"}, {}),
        (3, BOB, {"name": f"Bob{separator} B"}, {}),
    ]
    assert report.rejected == 0


async def test_a_separator_inside_a_quoted_header_name_does_not_count() -> None:
    data = f'phone;"a,b,c";city\n{ALICE};x;Paris\n'
    error = await refused(data)  # `a,b,c` is no variable name, but `;` was the separator
    assert error.code == "VALIDATION_ERROR" and "a,b,c" in error.message


async def test_blank_lines_are_skipped_and_still_count_as_rows() -> None:
    data = f"phone,name\n\n{ALICE},A\n,\n\n{BOB},B\n\n\n"
    batches, report = await read(data)
    assert [row for row, *_ in rows(batches)] == [3, 6]
    assert (report.rows_read, report.blank_rows, report.rejected) == (2, 5, 0)


async def test_a_file_without_a_final_line_end_and_with_old_mac_line_ends() -> None:
    batches, _ = await read(f"phone\r{ALICE}\r{BOB}", chunk=2)
    assert [(row, number) for row, number, *_ in rows(batches)] == [(2, ALICE), (3, BOB)]


async def test_empty_cells_are_no_value_and_the_number_is_normalized() -> None:
    data = "phone,first,last\n+1 (415) 555-0101,,Smith\n0033 1 42 68 53 00,Jean,\n"
    batches, _ = await read(data)
    assert rows(batches) == [
        (2, ALICE, {"last": "Smith"}, {}),
        (3, "+33142685300", {"first": "Jean"}, {}),
    ]


async def test_the_phone_column_is_named_by_the_caller_without_regard_to_case() -> None:
    batches, _ = await read(f" Mobile ,name\n{ALICE},A\n", phone_column="mobile")
    assert rows(batches) == [(2, ALICE, {"name": "A"}, {})]


# --- bad rows: each reported with its row and reason, none dropped ---------------------------


async def test_every_bad_row_is_reported_with_its_row_number_and_reason() -> None:
    limits = CsvLimits(max_bytes=10_000_000, max_rows=100, max_columns=4, max_field_chars=20)
    data = (
        b"phone,name\n"  # 1
        + f"{ALICE},Alice\n".encode()  # 2
        + b"not a number,X\n"  # 3
        + f"{ALICE},Again\n".encode()  # 4: duplicate (also in another notation below)
        + f"{BOB},Bob,extra\n".encode()  # 5
        + f"{BOB}\n".encode()  # 6: one field, the header has two
        + f"{BOB},{'x' * 21}\n".encode()  # 7
        + f"{BOB},caf\xe9\n".encode("latin-1")  # 8: not UTF-8
        + b",Nobody\n"  # 9
        + b'"+1 415 555 0101",Spaced\n'  # 10: ALICE again
        + b"+1415555010,Short\n"  # 11: one digit short
        + f'"{CAROL}","multi\nline"\n'.encode()  # 12 (two lines, one row)
        + f"{BOB},Bob\n".encode()  # 13: no earlier BOB row was good
    )
    batches, report = await read(data, limits=limits, chunk=9)
    assert [(row, number) for row, number, *_ in rows(batches)] == [
        (2, ALICE),
        (12, CAROL),
        (13, BOB),
    ]
    assert rejected(report) == [
        (3, "invalid_number"),
        (4, "duplicate_number"),
        (5, "too_many_columns"),
        (6, "too_few_columns"),
        (7, "field_too_long"),
        (8, "bad_encoding"),
        (9, "missing_number"),
        (10, "duplicate_number"),
        (11, "invalid_number"),
    ]
    assert (report.rows_read, report.accepted, report.rejected) == (12, 3, 9)
    assert all(rejection.message for rejection in report.rejections)


async def test_a_row_whose_variables_a_call_could_not_carry_is_rejected() -> None:
    limits = CsvLimits(max_bytes=10_000_000, max_rows=100, max_columns=8, max_field_chars=5000)
    wide = ",".join("v" * 4000 for _ in range(5))  # ~20 KB of variables, over 16 KiB
    data = f"phone,a,b,c,d,e\n{ALICE},{wide}\n{BOB},1,2,3,4,5\n"
    batches, report = await read(data, limits=limits)
    assert rejected(report) == [(2, "row_too_large")]
    assert [number for _, number, *_ in rows(batches)] == [BOB]


async def test_a_field_past_the_csv_modules_own_limit_rejects_its_row_only() -> None:
    """`csv` refuses a field over 131,072 characters: that row is rejected, and the rows
    after it in the same block keep their numbers."""
    limits = CsvLimits(max_bytes=10_000_000, max_rows=100, max_columns=64, max_field_chars=4096)
    huge = "x" * 140_000
    data = f'phone,note\n{ALICE},a\n{BOB},"{huge}"\n\n{CAROL},"two\nlines"\n+1415555010,b\n'
    batches, report = await read(data, limits=limits)
    assert [(row, number) for row, number, *_ in rows(batches)] == [(2, ALICE), (5, CAROL)]
    assert rejected(report) == [(3, "field_too_long"), (6, "invalid_number")]
    assert (report.rows_read, report.blank_rows) == (4, 1)


async def test_only_the_first_rejections_are_kept_and_all_are_counted() -> None:
    data = "phone\n" + "bad\n" * 250 + f"{ALICE}\n"
    _batches, report = await read(data, rejections_kept=100)
    assert (report.rejected, len(report.rejections), report.accepted) == (250, 100, 1)
    assert report.rejections[-1].row == 101


async def test_rows_come_in_batches_of_the_size_asked() -> None:
    numbers = [f"+1415555{index:04d}" for index in range(2500)]
    data = "phone\n" + "\n".join(numbers) + "\n"
    batches, report = await read(data, batch_size=1000, chunk=4096)
    assert [len(batch) for batch in batches] == [1000, 1000, 500]
    assert [c.number.e164 for batch in batches for c in batch] == numbers
    assert report.accepted == 2500


# --- the file refused whole ---------------------------------------------------------------


async def test_a_missing_phone_column_is_refused_with_the_columns_found() -> None:
    error = await refused(f"mobile,name\n{ALICE},A\n")
    assert (error.status, error.code) == (422, "CSV_NO_PHONE_COLUMN")
    assert error.details["columns"] == ["mobile", "name"]


@pytest.mark.parametrize(
    ("header", "status", "code"),
    [
        ("phone,name,name", 422, "CSV_BAD_HEADER"),
        ("phone,Phone", 422, "CSV_BAD_HEADER"),
        ("phone,,name", 422, "CSV_BAD_HEADER"),
        ("phone,metadata.", 422, "CSV_BAD_HEADER"),
        ("phone,metadata.a,METADATA.a", 422, "CSV_BAD_HEADER"),
        # the call's own check of dynamic variable names
        ("phone,first name", 422, "VALIDATION_ERROR"),
        ("phone,1st", 422, "VALIDATION_ERROR"),
        ("phone," + "v" * 65, 413, "PAYLOAD_TOO_LARGE"),
        ("phone," + ",".join(f"v{index}" for index in range(65)), 413, "PAYLOAD_TOO_LARGE"),
    ],
)
async def test_a_header_a_call_could_not_carry_is_refused(
    header: str, status: int, code: str
) -> None:
    limits = CsvLimits(max_bytes=10_000_000, max_rows=100, max_columns=100, max_field_chars=99)
    error = await refused(f"{header}\n{ALICE}\n", limits=limits)
    assert (error.status, error.code) == (status, code)


async def test_the_limits_refuse_the_file_with_their_codes() -> None:
    limits = CsvLimits(max_bytes=200, max_rows=3, max_columns=2, max_field_chars=20)
    lines = "".join(f"+1415555{index:04d}\n" for index in range(30))
    too_large = await refused("phone\n" + lines, limits=limits)
    assert (too_large.status, too_large.code) == (413, "CSV_TOO_LARGE")
    too_many = await refused("phone\n" + lines[:80], limits=limits)
    assert (too_many.status, too_many.code, too_many.details["row"]) == (
        413,
        "CSV_TOO_MANY_ROWS",
        5,
    )
    wide = await refused("phone,a,b\n", limits=limits)
    assert (wide.status, wide.code) == (413, "CSV_TOO_MANY_COLUMNS")


async def test_rows_up_to_the_row_limit_are_all_read() -> None:
    limits = CsvLimits(max_bytes=10_000, max_rows=3, max_columns=2, max_field_chars=20)
    data = f"phone\n{ALICE}\n\n{BOB}\nbad\n\n"
    _, report = await read(data, limits=limits)
    assert (report.rows_read, report.accepted, report.rejected) == (3, 2, 1)


async def test_a_quote_left_open_is_refused_once_it_outgrows_any_row() -> None:
    limits = CsvLimits(max_bytes=10_000_000, max_rows=100, max_columns=2, max_field_chars=20)
    assert limits.max_record_chars == 86
    data = f'phone,name\n{ALICE},"open\n' + "more text\n" * 50
    error = await refused(data, limits=limits, chunk=16)
    assert (error.status, error.code, error.details["row"]) == (422, "CSV_MALFORMED", 2)


async def test_a_quote_left_open_at_the_end_is_one_last_row() -> None:
    data = f'phone,name\n{ALICE},A\n{BOB},"open\n'
    batches, report = await read(data)
    assert [(row, v) for row, _, v, _ in rows(batches)] == [
        (2, {"name": "A"}),
        (3, {"name": "open\n"}),
    ]
    assert report.rejected == 0


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "CSV_EMPTY"),
        (b"\xef\xbb\xbf", "CSV_EMPTY"),
        ("phone\n".encode("utf-16"), "CSV_BAD_ENCODING"),
        (b"ph\xf6ne\n+14155550101\n", "CSV_BAD_ENCODING"),
        (b"\nphone\n+14155550101\n", "CSV_NO_PHONE_COLUMN"),
    ],
)
async def test_an_empty_or_unreadable_file_is_refused(data: bytes, code: str) -> None:
    assert (await refused(data)).code == code


async def test_a_header_only_file_reads_no_row() -> None:
    batches, report = await read("phone,name")
    assert batches == [] and report.rows_read == 0


# --- records cut the same, whatever the chunks ------------------------------------------------


def _whole(text: str, separator: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=separator))


def _cut(text: str, sizes: Iterable[int]) -> tuple[list[str], str]:
    splitter = RecordSplitter(max_record_chars=1 << 30)
    blocks: list[str] = []
    position = 0
    for size in sizes:
        blocks += splitter.feed(text[position : position + size])
        position += size
    blocks += splitter.feed(text[position:])
    blocks += splitter.finish()
    assert (splitter.separator is None) == (not text)
    return blocks, splitter.separator or ","


@pytest.mark.parametrize("seed", range(1000))
def test_blocks_hold_whole_records_as_csv_reads_them_whatever_the_chunks(seed: int) -> None:
    """Random text over the characters that matter (quotes, the three separators, every
    line end) cut at random points: the blocks, parsed one by one, are the records `csv`
    reads from the whole text, and the first block is the header alone."""
    rng = random.Random(seed)
    alphabet = ['"', '"', ",", ";", "\t", "\n", "\r", "\r\n", "a", "b", " ", "'"]
    text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120)))
    sizes = [rng.randrange(1, 9) for _ in range(40)]
    blocks, separator = _cut(text, sizes)
    assert "".join(blocks) == text
    records = [record for block in blocks for record in _whole(block, separator)]
    assert records == _whole(text, separator)
    if blocks:
        assert len(_whole(blocks[0], separator)) == 1


# --- the numbers seen -------------------------------------------------------------------------


def test_the_number_set_finds_every_repeat_across_its_growth() -> None:
    seen = NumberSet()
    rng = random.Random(11)
    numbers = list({f"+{rng.randrange(10**10, 10**15)}" for _ in range(20_000)})
    assert all(seen.add(number) for number in numbers)
    assert len(seen) == len(numbers)
    assert not any(seen.add(number) for number in numbers)
    assert seen.add("+1")  # a prefix is another number
