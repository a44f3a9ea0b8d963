"""What an agent's event writes on its call, beside the status the event table gives it.

`EVENT_STATUS` (api.store.events) says which status each event moves a call to;
`agent_update` says which call fields an agent's event writes with it, as a `CallUpdate`
applied in the same step. Only the end events write any: the end reason, the SIP status,
the duration and, for `call.failed`, the error code and message.

Invariant: what an agent sends is typed here before it reaches the record. A number that is
not one (a SIP code outside 100-699, a duration that is not a finite number) is left out,
so the field stays absent rather than unreadable; texts are kept as sent, cut to
`call_record.MAX_UPDATE_TEXT`.
"""

from __future__ import annotations

import math
from typing import Any

from agent_runtime.contract import AgentEvent
from api.store.call_record import CallUpdate


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _sip_status_code(value: Any) -> int | None:
    """A SIP status code (100-699) as the agent sent it (a number or its digits), else None."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 3:
        value = int(value)
    return value if type(value) is int and 100 <= value <= 699 else None


def _seconds(value: Any) -> float | None:
    """A finite number of seconds as the agent sent it (a number or its text), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def agent_update(event: AgentEvent) -> CallUpdate:
    """What the agent's event records on the call itself."""
    if event.type not in ("call.ended", "call.failed"):
        return CallUpdate()
    data = event.data
    failed = event.type == "call.failed"
    reason = _text(data.get("reason") or ("error" if failed else None))
    return CallUpdate(
        end_reason=reason,
        duration_seconds=_seconds(data.get("duration_seconds")),
        sip_status_code=_sip_status_code(data.get("sip_status_code")),
        sip_status=_text(data.get("sip_status")),
        error_code=_text(data.get("code") or str(reason).upper()) if failed else None,
        error_message=_text(data.get("message")) if failed else None,
    )
