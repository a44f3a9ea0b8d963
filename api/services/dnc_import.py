"""A CSV file's numbers onto the workspace's do-not-call list (`POST /v1/api/dnc/import`).

Invariant: every row of the file is accounted for in the answer: added, already listed,
rejected with its row and reason, or blank. Numbers go onto the list a batch at a time as
the file streams in (`api.store.dnc.add_to_dnc`, each batch whole or not at all); a file
refused part way (a limit reached, a list full) answers the error with what was done until
then in its details, and sending the file again is safe: a listed number is never added
twice, it counts as already listed.
"""

from __future__ import annotations

from collections.abc import AsyncIterable

from api.errors import ApiError
from api.schemas.contact_csv import CsvRejection
from api.schemas.dnc_import import DncImportResult
from api.services.contact_csv import ContactCsvReader, CsvLimits, CsvReport
from api.store.base import Store
from api.store.dnc import DncListFull, add_to_dnc

IMPORT_SOURCE = "import"


async def import_dnc_csv(
    store: Store,
    workspace_id: str,
    chunks: AsyncIterable[bytes],
    limits: CsvLimits,
    phone_column: str,
) -> DncImportResult:
    reader = ContactCsvReader(chunks, limits=limits, phone_column=phone_column)
    added = listed = 0
    try:
        async for batch in reader.batches():
            numbers = [contact.number.e164 for contact in batch]
            try:
                new = await add_to_dnc(store, workspace_id, numbers, source=IMPORT_SOURCE)
            except DncListFull as exc:
                details = {"limit": exc.limit, "size": exc.size}
                raise ApiError(409, "DNC_LIST_FULL", str(exc), details) from exc
            added += new
            listed += len(numbers) - new
    except ApiError as exc:
        progress = {"rowsRead": reader.report.rows_read, "added": added, "alreadyListed": listed}
        exc.details = exc.details | progress
        raise
    return _result(reader.report, added, listed)


def _result(report: CsvReport, added: int, listed: int) -> DncImportResult:
    return DncImportResult(
        rows_read=report.rows_read,
        added=added,
        already_listed=listed,
        rejected=report.rejected,
        blank_rows=report.blank_rows,
        rejections=[
            CsvRejection(row=rejection.row, reason=rejection.reason, message=rejection.message)
            for rejection in report.rejections
        ],
    )
