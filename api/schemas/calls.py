"""Call bodies: `POST /v1/api/call` in, call records and events out.

Invariant: what is accepted is stored as sent. JSON has no NaN or Infinity, yet the parser
takes the `NaN`/`Infinity` literals and serialising them writes `null`; such values are
refused instead of silently changing. The agent id names a Redis key, so it must be an id.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from agent_runtime.contract import Scalar
from api.ids import ID_PATTERN

MAX_BODY_BYTES = 64 * 1024
MAX_SECTION_BYTES = 16 * 1024
MAX_VARIABLES = 64
_NOT_FINITE = "NaN and Infinity are not JSON numbers: send a finite number or a string"


def _finite_scalar(value: Scalar) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(_NOT_FINITE)
    return value


def _non_finite_path(value: Any, path: str) -> str | None:
    """Where in a JSON value a NaN or Infinity sits (`a.b.0`), or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        children: Any = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return None
    for key, child in children:
        found = _non_finite_path(child, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _finite_json(value: dict[str, Any]) -> dict[str, Any]:
    found = _non_finite_path(value, "")
    if found is not None:
        raise ValueError(f"{found}: {_NOT_FINITE}")
    return value


class CallCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=64)
    call_agent_id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    callback_url: str | None = Field(None, min_length=1)
    dynamic_variables: dict[str, Annotated[Scalar, AfterValidator(_finite_scalar)]] = Field(
        default_factory=dict
    )
    metadata: Annotated[dict[str, Any], AfterValidator(_finite_json)] = Field(default_factory=dict)
    from_number: str | None = Field(None, min_length=2, max_length=32)
    campaign_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")
    max_duration_seconds: int | None = Field(None, ge=10, le=14_400)
    ring_timeout_seconds: int | None = Field(None, ge=5, le=80)


class CallAccepted(BaseModel):
    status: str = "success"
    message: str
    callId: str
    roomName: str
    jobId: str


class CallView(BaseModel):
    """A call as `GET /v1/api/call/{call_id}` shows it: timestamps are ISO 8601 (UTC),
    `transitions` the time each status was reached."""

    model_config = ConfigDict(populate_by_name=True)

    callId: str
    status: str
    to: str
    from_: str | None = Field(alias="from")
    agentId: str
    roomName: str
    jobId: str | None
    campaignId: str | None
    callbackUrl: str | None
    sipTrunkId: str | None
    sipCallId: str | None
    # as recorded: an agent's end event may report a code that is not a number
    sipStatusCode: int | str | None
    sipStatus: str | None
    endReason: str | None
    errorCode: str | None
    errorMessage: str | None
    maxDurationSeconds: int | None
    ringTimeoutSeconds: int | None
    createdAt: str | None
    updatedAt: str | None
    endedAt: str | None
    transitions: dict[str, str | None]
    dynamicVariables: dict[str, Scalar]
    metadata: dict[str, Any]


class CallPage(BaseModel):
    """Newest first; `nextCursor` null at the end of the list."""

    calls: list[CallView]
    nextCursor: str | None


class CallCanceled(BaseModel):
    status: Literal["success"]
    callId: str
    callStatus: str
