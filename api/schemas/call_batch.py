"""`POST /v1/api/calls/batch`: a JSON array of call bodies in, one result per item out.

Invariant: the answer holds one result per item, in the items' order, each either the
answer `POST /v1/api/call` gives for that body (`CallAccepted`) or its error (the same
status, code, message and details), with the item's `index`. The service builds the answer
as plain dicts (1,000 items through these models cost milliseconds);
tests/test_call_batch.py holds every answer to them with no field more.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from api.schemas.base import ResponseModel
from api.schemas.calls import CallAccepted

MAX_BATCH_CALLS = 1000
# 4 KiB a call on average at the most calls (one call's own body may take 64 KiB).
MAX_BATCH_BODY_BYTES = 4 * 1024 * 1024


class BatchCallAccepted(CallAccepted):
    """An item accepted (or the first answer to it, on a retry with the batch's key)."""

    index: int


class BatchCallRefused(ResponseModel):
    """An item refused: the error `POST /v1/api/call` answers for that body, and its HTTP
    status; nothing of it was stored."""

    index: int
    status: Literal["error"]
    http_status: int
    code: str
    message: str
    details: dict[str, Any]


class CallBatchAccepted(ResponseModel):
    """Every item's result, in the items' order (`index` is its place in the request)."""

    status: Literal["success"]
    accepted: int
    refused: int
    results: list[Annotated[BatchCallAccepted | BatchCallRefused, Field(discriminator="status")]]
