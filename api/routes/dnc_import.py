"""`POST /v1/api/dnc/import`: a CSV file of numbers onto the workspace's do-not-call list,
read as it streams in (`api.services.dnc_import`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.deps import SettingsDep, StoreDep, WorkspaceDep
from api.openapi import STORAGE, WORKSPACE_AUTH, error_responses
from api.schemas.dnc_import import DncImportResult
from api.services.contact_csv import CsvLimits
from api.services.csv_upload import FILE_FIELD, upload_chunks
from api.services.dnc_import import import_dnc_csv

# The route reads its own body, bounded by OUTDIAL_CSV_MAX_BYTES (api/app.py: BodyLimit).
DNC_IMPORT_PATH = "/v1/api/dnc/import"

router = APIRouter(tags=["do not call"], responses=error_responses(WORKSPACE_AUTH, STORAGE))

_UPLOAD = {
    "required": True,
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [FILE_FIELD],
                "properties": {FILE_FIELD: {"type": "string", "format": "binary"}},
            }
        },
    },
}


@router.post(
    DNC_IMPORT_PATH,
    summary="Add a CSV file's numbers to the do-not-call list",
    description="The file (UTF-8; `,` `;` or tab separated; a header row naming the phone "
    "column) as the body (`text/csv`) or as the part `file` of a multipart form. Every row "
    "is accounted for: added, already listed, or rejected with its row number and reason. "
    "See docs/csv-import.md.",
    responses=error_responses(
        {
            400: "BAD_REQUEST (a multipart body that does not parse, a client that left), "
            "CSV_EMPTY",
            413: "CSV_TOO_LARGE, CSV_TOO_MANY_ROWS, CSV_TOO_MANY_COLUMNS, PAYLOAD_TOO_LARGE "
            "(over 64 variable columns, a variable name over 64 characters)",
            409: "DNC_LIST_FULL: the file's new numbers do not fit the list (the batches "
            "before stay listed: `details`)",
            415: "UNSUPPORTED_MEDIA_TYPE: neither text/csv nor multipart/form-data",
            422: "CSV_NO_PHONE_COLUMN, CSV_BAD_HEADER, CSV_BAD_ENCODING, CSV_MALFORMED, "
            "CSV_FILE_MISSING, VALIDATION_ERROR (a column that is no variable name, a "
            "parameter)",
        }
    ),
    openapi_extra={"requestBody": _UPLOAD},
)
async def import_dnc(
    request: Request,
    workspace: WorkspaceDep,
    store: StoreDep,
    settings: SettingsDep,
    phone_column: Annotated[
        str, Query(min_length=1, max_length=64, description="The header of the phone column")
    ] = "phone",
) -> DncImportResult:
    limits = CsvLimits.of(settings)
    chunks = upload_chunks(request, limits.max_bytes)
    return await import_dnc_csv(store, workspace.id, chunks, limits, phone_column)
