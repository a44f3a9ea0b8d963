"""What a call asks of LiveKit: its room (with the agent's dispatch and what the agent is
told) and its SIP leg, built from the call's record alone."""

from __future__ import annotations

import json

from agent_runtime.contract import AgentConfig, DispatchMetadata, Metering
from api.jobs.resources import worker_settings
from api.security import event_token
from api.store.call_record import CallRecord
from sip import RoomPlan, SipLegPlan


def participant_identity(call_id: str) -> str:
    return f"sip-{call_id}"


def dispatch_metadata(call: CallRecord, agent: AgentConfig) -> DispatchMetadata:
    settings = worker_settings()
    calls_url = f"{settings.events_base_url}/v1/internal/calls/{call.id}"
    return DispatchMetadata(
        call_id=call.id,
        workspace_id=call.workspace_id,
        room_name=call.room_name,
        agent=agent,
        dynamic_variables=call.dynamic_variables,
        metadata=call.metadata,
        to_number=call.to,
        from_number=call.from_number,
        sip_participant_identity=participant_identity(call.id),
        ring_timeout_seconds=call.ring_timeout_seconds,
        max_duration_seconds=call.max_duration_seconds,
        events_url=f"{calls_url}/events",
        event_token=event_token(call.id, settings.event_signing_key),
        metering=None
        if call.reserved_s is None
        else Metering(reserved_seconds=call.reserved_s, reservation_url=f"{calls_url}/reservation"),
    )


def room_plan(call: CallRecord, metadata: DispatchMetadata) -> RoomPlan:
    return RoomPlan(
        name=call.room_name,
        agent_name=metadata.agent.worker_name,
        dispatch_metadata=metadata.to_json(),
        room_metadata=json.dumps({"call_id": call.id, "workspace_id": call.workspace_id}),
    )


def sip_leg_plan(call: CallRecord) -> SipLegPlan:
    return SipLegPlan(
        room_name=call.room_name,
        sip_trunk_id=call.sip_trunk_id,
        caller_number=call.from_number,
        callee_number=call.to,
        participant_identity=participant_identity(call.id),
        participant_name=call.to,
        participant_metadata=json.dumps({"call_id": call.id}),
        ringing_timeout_seconds=call.ring_timeout_seconds,
        max_call_duration_seconds=call.max_duration_seconds,
    )
