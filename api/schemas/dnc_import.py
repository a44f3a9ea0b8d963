"""`POST /v1/api/dnc/import`'s answer: what became of each row of the file."""

from __future__ import annotations

from pydantic import Field

from api.schemas.base import ResponseModel
from api.schemas.contact_csv import CsvRejection


class DncImportResult(ResponseModel):
    """`rowsRead` = `added` + `alreadyListed` + `rejected`; blank rows are counted apart."""

    rows_read: int
    added: int
    already_listed: int
    rejected: int
    blank_rows: int
    rejections: list[CsvRejection] = Field(description="The first 100 rejected rows, in order")
