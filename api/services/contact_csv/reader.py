"""A contact file (CSV) read as it streams in: good rows in batches, bad rows reported.

Invariant: memory stays flat in the file's size. The reader holds one slice of input (64 KiB
decoded), one unfinished record (at most `CsvLimits.max_record_chars`), the rows of one
block until they are handed out in batches of `batch_size`, the first `rejections_kept`
rejections, and the numbers seen so far (`NumberSet`, 16-32 bytes a number). Every row
after the header ends as exactly one of: blank (skipped, counted), accepted (in a batch),
or rejected with its row number (1-based, the header being row 1, as a spreadsheet shows
the file) and a stable reason; none is dropped silently. A file past a limit is refused
with an `ApiError` when the limit is reached; the batches handed out before stay handed out
(the caller says what it did with them).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass, field

from api.errors import ApiError
from api.schemas.calls import MAX_SECTION_BYTES
from api.schemas.contact_csv import RejectReason
from api.services.call_checks import json_size
from api.services.contact_csv.header import Columns, read_header
from api.services.contact_csv.number_set import NumberSet
from api.services.contact_csv.records import RecordSplitter, split_records
from api.settings import Settings
from sip.numbers import Destination, InvalidNumberError, parse_number

BATCH_SIZE = 1000
REJECTIONS_KEPT = 100
# Input is decoded and cut in slices of this size, whatever size the chunks come in.
_SLICE_BYTES = 64 * 1024
# A byte that is not UTF-8, as the decoder's `surrogateescape` leaves it.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")
# A value takes at most 6 bytes a character as JSON (`\u001f`); names and punctuation aside.
_JSON_BYTES_PER_CHAR = 6
_MESSAGE_CHARS = 200


@dataclass(frozen=True, slots=True)
class CsvLimits:
    """What one file may hold (the `OUTDIAL_CSV_*` settings)."""

    max_bytes: int
    max_rows: int
    max_columns: int
    max_field_chars: int

    @classmethod
    def of(cls, settings: Settings) -> CsvLimits:
        return cls(
            max_bytes=settings.csv_max_bytes,
            max_rows=settings.csv_max_rows,
            max_columns=settings.csv_max_columns,
            max_field_chars=settings.csv_max_field_chars,
        )

    @property
    def max_record_chars(self) -> int:
        """The longest row the limits allow: every field at its longest, quoted (its quotes
        doubled at worst) and followed by its separator."""
        return self.max_columns * (2 * self.max_field_chars + 3)


@dataclass(frozen=True, slots=True)
class Contact:
    """A good row: its number parsed, its other non-empty cells by column."""

    row: int
    number: Destination
    variables: dict[str, str]
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class Rejection:
    row: int
    reason: RejectReason
    message: str


@dataclass(slots=True)
class CsvReport:
    """Counts so far. `rows_read` = `accepted` + `rejected`; blank rows are apart."""

    rows_read: int = 0
    accepted: int = 0
    rejected: int = 0
    blank_rows: int = 0
    rejections: list[Rejection] = field(default_factory=list)


def _bad_encoding(message: str) -> ApiError:
    return ApiError(422, "CSV_BAD_ENCODING", message)


class ContactCsvReader:
    """Reads `chunks` (the file's bytes, e.g. an upload's body) once, through `batches`."""

    def __init__(
        self,
        chunks: AsyncIterable[bytes],
        *,
        limits: CsvLimits,
        phone_column: str = "phone",
        batch_size: int = BATCH_SIZE,
        rejections_kept: int = REJECTIONS_KEPT,
    ) -> None:
        self.limits = limits
        self.phone_column = phone_column
        self.report = CsvReport()
        self._chunks = chunks
        self._batch_size = batch_size
        self._rejections_kept = rejections_kept
        self._columns: Columns | None = None
        self._row = 0  # the row number of the last record read
        self._seen = NumberSet()
        self._ready: list[Contact] = []

    async def batches(self) -> AsyncIterator[list[Contact]]:
        """The good rows, in file order, `batch_size` at a time (the last batch fewer), each
        handed out as soon as it is full. Raises ApiError when the file is refused (see the
        module's docstring)."""
        splitter = RecordSplitter(self.limits.max_record_chars)
        async for text in self._text():
            for block in splitter.feed(text):
                for batch in self._read_block(block, splitter.separator or ","):
                    yield batch
            if splitter.overlong:
                raise ApiError(
                    422,
                    "CSV_MALFORMED",
                    f"row {self._row + 1} is longer than {self.limits.max_record_chars} "
                    "characters: is a quote left open?",
                    {"row": self._row + 1},
                )
        for block in splitter.finish():
            for batch in self._read_block(block, splitter.separator or ","):
                yield batch
        if self._columns is None:
            raise ApiError(400, "CSV_EMPTY", "the file is empty: its first row is the header")
        if self._ready:
            yield self._take_batch()

    def _take_batch(self) -> list[Contact]:
        batch, self._ready = self._ready, []
        return batch

    async def _text(self) -> AsyncIterator[str]:
        """The input decoded as UTF-8 (a BOM dropped), a slice at a time; a byte that is not
        UTF-8 stays as a lone surrogate for its row to be rejected."""
        decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="surrogateescape")
        size = 0
        async for chunk in self._chunks:
            if size == 0 and chunk[:2] in _UTF16_MARKS:
                raise _bad_encoding("the file is UTF-16: save it as CSV UTF-8")
            size += len(chunk)
            if size > self.limits.max_bytes:
                raise ApiError(
                    413,
                    "CSV_TOO_LARGE",
                    f"the file is over {self.limits.max_bytes} bytes",
                    {"limitBytes": self.limits.max_bytes},
                )
            view = memoryview(chunk)
            for start in range(0, len(chunk), _SLICE_BYTES):
                text = decoder.decode(view[start : start + _SLICE_BYTES])
                if text:
                    yield text
        text = decoder.decode(b"", final=True)
        if text:
            yield text

    def _read_block(self, block: str, separator: str) -> Iterator[list[Contact]]:
        """Reads the rows of `block`, handing out each batch as it fills."""
        rows = csv.reader(io.StringIO(block, newline=""), delimiter=separator, strict=False)
        if self._columns is None:
            self._read_header(block, rows)
            return
        checking = _NOT_UTF8.search(block) is not None
        done = 0
        try:
            for fields in rows:
                self._row += 1
                done += 1
                if self._read_row(fields, checking):
                    yield self._take_batch()
        except csv.Error:
            # Only a field past the csv module's own limit (131,072 characters) stops it;
            # its row is rejected, the rows after it read one by one.
            for record in split_records(block, separator)[done:]:
                self._row += 1
                try:
                    one = csv.reader(io.StringIO(record, newline=""), delimiter=separator)
                    fields = next(one, [])
                except csv.Error:
                    self._count_row()
                    self._reject("field_too_long", "a field is over 131,072 characters")
                    continue
                if self._read_row(fields, checking):
                    yield self._take_batch()

    def _read_header(self, block: str, rows: Iterator[list[str]]) -> None:
        if _NOT_UTF8.search(block) or "\x00" in block:
            raise _bad_encoding("the header row is not UTF-8 text: save the file as UTF-8")
        self._row = 1
        try:
            header = next(rows, [])
        except csv.Error as exc:
            raise ApiError(422, "CSV_BAD_HEADER", f"the header does not parse: {exc}") from exc
        self._columns = read_header(header, self.phone_column, self.limits.max_columns)

    def _read_row(self, fields: list[str], checking: bool) -> bool:
        """Reads one row; whether the batch is full now."""
        report = self.report
        if not any(fields):
            report.blank_rows += 1
            return False
        self._count_row()
        columns = self._columns
        assert columns is not None
        if len(fields) != columns.width:
            reason: RejectReason = (
                "too_many_columns" if len(fields) > columns.width else "too_few_columns"
            )
            self._reject(reason, f"{len(fields)} fields, the header has {columns.width}")
            return False
        if checking and any(_NOT_UTF8.search(value) for value in fields):
            self._reject("bad_encoding", "the row is not UTF-8 text")
            return False
        longest = max(map(len, fields))
        if longest > self.limits.max_field_chars:
            limit = self.limits.max_field_chars
            self._reject("field_too_long", f"a field of {longest} characters, at most {limit}")
            return False
        raw = fields[columns.phone].strip()
        if not raw:
            self._reject("missing_number", "the phone column is empty")
            return False
        try:
            number = parse_number(raw)
        except InvalidNumberError as exc:
            self._reject("invalid_number", str(exc))
            return False
        variables = {name: fields[index] for index, name in columns.variables if fields[index]}
        metadata = {key: fields[index] for index, key in columns.metadata if fields[index]}
        if self._over_section_size(fields, variables, metadata):
            limit = MAX_SECTION_BYTES
            self._reject("row_too_large", f"its variables or metadata are over {limit} bytes")
            return False
        if not self._seen.add(number.e164):
            self._reject("duplicate_number", f"{number.e164} is on an earlier row")
            return False
        report.accepted += 1
        self._ready.append(Contact(self._row, number, variables, metadata))
        return len(self._ready) >= self._batch_size

    def _count_row(self) -> None:
        """One more data row read: CSV_TOO_MANY_ROWS past the limit."""
        self.report.rows_read += 1
        if self.report.rows_read > self.limits.max_rows:
            raise ApiError(
                413,
                "CSV_TOO_MANY_ROWS",
                f"the file has more than {self.limits.max_rows} rows (row {self._row})",
                {"limit": self.limits.max_rows, "row": self._row},
            )

    def _over_section_size(
        self, fields: list[str], variables: dict[str, str], metadata: dict[str, str]
    ) -> bool:
        """Whether either part is over MAX_SECTION_BYTES as JSON, as a call's would be
        refused; measured only when the row's length leaves it possible."""
        columns = self._columns
        assert columns is not None
        most = (
            sum(map(len, fields)) * _JSON_BYTES_PER_CHAR
            + columns.names_chars
            + 6 * columns.width  # quotes, colon and comma of each entry
            + 2
        )
        if most <= MAX_SECTION_BYTES:
            return False
        return max(json_size(variables), json_size(metadata)) > MAX_SECTION_BYTES

    def _reject(self, reason: RejectReason, message: str) -> None:
        self.report.rejected += 1
        if len(self.report.rejections) < self._rejections_kept:
            rejection = Rejection(self._row, reason, message[:_MESSAGE_CHARS])
            self.report.rejections.append(rejection)
