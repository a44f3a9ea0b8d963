"""bench/call_truth.py seeds in-flight calls for its reconciler phase: they must be records
the reconciler can read, or it checks none of them (the phase then measures nothing)."""

from __future__ import annotations

import pytest

from api.store.call_record import CallRecord
from api.store.records import UnreadableRecord
from bench.call_truth import in_flight_record


def test_seeded_call_is_a_whole_answered_record() -> None:
    call = CallRecord.from_hash(in_flight_record("bench0000001", 1_800_000_000_000))

    assert (call.id, call.status, call.room_name) == (
        "bench0000001",
        "in_progress",
        "room-bench0000001",
    )
    assert call.transitions == {"in_progress": 1_800_000_000_000}
    assert call.agent_ready_at == 1_800_000_000_000
    assert call.agent is not None


def test_a_record_lacking_a_required_field_is_unreadable() -> None:
    # What the phase wrote before: the reconciler skipped every one of these calls.
    raw = in_flight_record("bench0000001", 1_800_000_000_000)
    del raw["job_id"]
    with pytest.raises(UnreadableRecord):
        CallRecord.from_hash(raw)
