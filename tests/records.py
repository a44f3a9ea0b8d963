"""Stored records for pure tests, built through their one conversion (`from_hash`)."""

from __future__ import annotations

from agent_runtime.contract import AgentConfig
from api.store.call_record import CallRecord

AGENT = AgentConfig(id="a" * 24, name="Reminder", instructions="Hi {{name}}", worker_name="w")

# A call's hash as the accept script writes it (every field `CallDraft.record` sets).
ACCEPTED_CALL: dict[str, str] = {
    "id": "c1",
    "workspace_id": "ws_1",
    "agent_id": "a" * 24,
    "to": "+14155552671",
    "from": "+15105550100",
    "sip_trunk_id": "ST_x",
    "room_name": "room-1",
    "callback_url": "https://example.com/hook",
    "campaign_id": "spring",
    "idempotency_key": "k-1",
    "status": "queued",
    "job_id": "job-1",
    "max_duration_seconds": "600",
    "ring_timeout_seconds": "30",
    "created_at": "1800000000000",
    "updated_at": "1800000000000",
    "ts_queued": "1800000000000",
    "seq": "0",
    "dial_mode": "agent_ready",
    "dispatch_timeout_s": "30",
    "agent_ready_timeout_s": "20",
    "answer_grace_s": "10",
    "deadline_margin_s": "20",
    "agent": AGENT.model_dump_json(),
    "dynamic_variables": '{"name":"Ada","count":3}',
    "metadata": '{"tags":[],"crm":{"id":7}}',
}


def stored_call(status: str = "queued", **fields: str | int) -> CallRecord:
    """The accepted call in `status`, with `fields` (hash field names) set."""
    raw = ACCEPTED_CALL | {"status": status} | {name: str(v) for name, v in fields.items()}
    return CallRecord.from_hash(raw)
