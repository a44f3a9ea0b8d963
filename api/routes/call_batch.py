"""`POST /v1/api/calls/batch`: up to 1,000 calls in one request (`services.call_batch`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic_core import to_json

from api.deps import CredentialsDep, SettingsDep, StoreDep
from api.metrics import CALLS_ACCEPTED, CALLS_REFUSED
from api.openapi import STORAGE, WORKSPACE_AUTH, error_responses
from api.schemas.call_batch import MAX_BATCH_BODY_BYTES, MAX_BATCH_CALLS, CallBatchAccepted
from api.schemas.calls import CallCreate
from api.services.call_batch import place_calls

CALL_BATCH_PATH = "/v1/api/calls/batch"

router = APIRouter(tags=["calls"])

_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/CallCreate"},
                "minItems": 1,
                "maxItems": MAX_BATCH_CALLS,
            }
        }
    },
}


_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "For the whole batch: a retry with the same items answers the first answer",
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
}


def batch_components() -> dict[str, dict[str, Any]]:
    """The OpenAPI components the batch's items refer to: `CallCreate` and its parts."""
    schema = CallCreate.model_json_schema(ref_template="#/components/schemas/{model}")
    parts = schema.pop("$defs", {})
    return {"CallCreate": schema, **parts}


@router.post(
    CALL_BATCH_PATH,
    response_model=CallBatchAccepted,
    response_description="Every item's result, in the items' order (partial success is normal)",
    openapi_extra={"requestBody": _REQUEST_BODY, "parameters": [_IDEMPOTENCY_KEY]},
    responses=error_responses(
        WORKSPACE_AUTH,
        STORAGE,
        {
            409: "IDEMPOTENCY_CONFLICT (the Idempotency-Key was used with another batch)",
            413: f"PAYLOAD_TOO_LARGE (over {MAX_BATCH_CALLS} calls, or a body over "
            f"{MAX_BATCH_BODY_BYTES // (1024 * 1024)} MiB)",
            422: "VALIDATION_ERROR (the body is not a JSON array of calls, or is empty; a "
            "malformed Idempotency-Key)",
        },
    ),
)
async def place_batch(
    request: Request, creds: CredentialsDep, store: StoreDep, settings: SettingsDep
) -> Response:
    """Place up to 1,000 calls, each item the body of `POST /v1/api/call`: 200 with every
    item's result in order (its call, or the error a single call would get: partial
    success is normal). The optional Idempotency-Key covers the whole batch."""
    key = request.headers.get("idempotency-key")
    batch = await place_calls(store, settings, creds, await request.body(), key)
    # Counted per item, as the single accept counts its answers (api/routes/call_accept.py).
    for result in batch["results"]:
        if result["status"] == "success":
            CALLS_ACCEPTED.inc()
        else:
            CALLS_REFUSED.labels(result["code"]).inc()
    # Built as dicts by the service (tests/test_call_batch.py holds them to the model).
    return Response(to_json(batch), media_type="application/json")
