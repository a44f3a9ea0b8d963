"""Contact files (CSV uploads) read as they stream in: `ContactCsvReader` hands out the
good rows in batches and reports every other row with its row number and reason.

The format (docs/csv-import.md): UTF-8 (a BOM is fine), `,` `;` or tab between fields
(sniffed from the header), quoted fields may hold separators, quotes (doubled) and line
breaks; the header names the phone column and the others (dynamic variables, and
`metadata.<key>` columns for the contact's metadata).
"""

from api.schemas.contact_csv import RejectReason
from api.services.contact_csv.reader import (
    BATCH_SIZE,
    REJECTIONS_KEPT,
    Contact,
    ContactCsvReader,
    CsvLimits,
    CsvReport,
    Rejection,
)

__all__ = [
    "BATCH_SIZE",
    "REJECTIONS_KEPT",
    "Contact",
    "ContactCsvReader",
    "CsvLimits",
    "CsvReport",
    "RejectReason",
    "Rejection",
]
