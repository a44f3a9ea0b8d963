"""What a CSV import answers about its rows: the reasons a row is rejected (stable codes
clients branch on) and the rejections shown (docs/csv-import.md).

Invariant: every reason the reader gives (`api.services.contact_csv`) is one of
`RejectReason`, and a rejection names its row as a spreadsheet numbers it (the header row
is 1).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.schemas.base import ResponseModel

RejectReason = Literal[
    "missing_number",  # the phone cell is empty
    "invalid_number",  # not a valid number in +<country code> form
    "duplicate_number",  # the number is on an earlier row of the file
    "too_many_columns",  # more fields than the header has
    "too_few_columns",  # fewer fields than the header has
    "field_too_long",  # a field over OUTDIAL_CSV_MAX_FIELD_CHARS
    "bad_encoding",  # bytes that are not UTF-8
    "row_too_large",  # variables or metadata over a call's 16 KiB as JSON
]


class CsvRejection(ResponseModel):
    row: int = Field(description="1-based, the header being row 1 (as a spreadsheet shows it)")
    reason: RejectReason
    message: str
