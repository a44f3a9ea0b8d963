"""The Twirp RPCs the test server implements, with the grants each one needs.

Each handler runs on the server loop, takes the state lock once, and returns the response
message plus the jobs it created or ended (the agent hub acts on those after the lock is
released). Behaviour follows livekit-server's pkg/service (roomservice.go, sip.go,
agent_dispatch_service.go) and livekit/protocol's rpc/sip.go where it is observable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf.message import Message
from livekit.protocol import agent_dispatch as ad
from livekit.protocol import models, sip
from livekit.protocol import room as rm

from .state import JobInfo, RoomState, ServerState, clone, new_id
from .twirp import Grants, TwirpError

Reason = models.DisconnectReason


@dataclass
class Outcome:
    response: Message
    new_jobs: list[JobInfo] = field(default_factory=list)
    ended_jobs: list[JobInfo] = field(default_factory=list)


Handler = Callable[[ServerState, Message], Outcome]


@dataclass(frozen=True)
class Rpc:
    request_cls: type[Message]
    grants: Grants
    handler: Handler
    room_field: str = ""  # request field naming the room, for room-scoped grants


ROOM_NOT_FOUND = TwirpError("not_found", "requested room does not exist")
PARTICIPANT_NOT_FOUND = TwirpError("not_found", "participant does not exist")
TRUNK_NOT_FOUND = TwirpError("not_found", "requested sip trunk does not exist")


def _jobs_in_room(state: ServerState, room_name: str) -> list[JobInfo]:
    return [j for j in state.jobs.values() if j.room_name == room_name and not j.terminated]


# -- RoomService ---------------------------------------------------------------------------


def create_room(state: ServerState, req: rm.CreateRoomRequest) -> Outcome:
    if not req.name:
        raise TwirpError("invalid_argument", "no room name")
    with state.cond:
        existing = state.rooms.get(req.name)
        if existing is not None:
            # upsert: an existing room is returned as is and its agents are not dispatched again
            return Outcome(clone(existing.room))
        created = state._new_room(
            req.name,
            empty_timeout=req.empty_timeout,
            departure_timeout=req.departure_timeout,
            max_participants=req.max_participants,
            metadata=req.metadata,
        )
        created.agents = [clone(a) for a in req.agents]
        jobs = [
            state._dispatch(created, a.agent_name, a.metadata, dict(a.attributes))
            for a in req.agents
        ]
        return Outcome(clone(created.room), new_jobs=[j.copy() for j in jobs])


def list_rooms(state: ServerState, req: rm.ListRoomsRequest) -> Outcome:
    names = set(req.names)
    with state.cond:
        rooms = [clone(r.room) for n, r in state.rooms.items() if not names or n in names]
    return Outcome(rm.ListRoomsResponse(rooms=rooms))


def delete_room(state: ServerState, req: rm.DeleteRoomRequest) -> Outcome:
    with state.cond:
        # livekit-server checks RoomExists first and answers not_found for a missing room
        if req.room not in state.rooms:
            raise ROOM_NOT_FOUND
        state._close_room(req.room, Reason.ROOM_DELETED)
        ended = _jobs_in_room(state, req.room)
        for job in ended:
            job.terminated = True
        state.cond.notify_all()
        return Outcome(rm.DeleteRoomResponse(), ended_jobs=[j.copy() for j in ended])


def list_participants(state: ServerState, req: rm.ListParticipantsRequest) -> Outcome:
    with state.cond:
        room = state.rooms.get(req.room)
        # a missing room is an empty list, like livekit-server's store
        people = [clone(p) for p in room.participants.values()] if room else []
    return Outcome(rm.ListParticipantsResponse(participants=people))


def _participant(state: ServerState, room_name: str, identity: str) -> models.ParticipantInfo:
    room = state.rooms.get(room_name)
    if room is None or identity not in room.participants:
        raise PARTICIPANT_NOT_FOUND
    return room.participants[identity]


def get_participant(state: ServerState, req: rm.RoomParticipantIdentity) -> Outcome:
    with state.cond:
        return Outcome(clone(_participant(state, req.room, req.identity)))


def remove_participant(state: ServerState, req: rm.RoomParticipantIdentity) -> Outcome:
    with state.cond:
        _participant(state, req.room, req.identity)
        state._depart(state.rooms[req.room], req.identity, Reason.PARTICIPANT_REMOVED)
        state.cond.notify_all()
    return Outcome(rm.RemoveParticipantResponse())


def update_participant(state: ServerState, req: rm.UpdateParticipantRequest) -> Outcome:
    with state.cond:
        info = _participant(state, req.room, req.identity)
        if req.metadata:
            info.metadata = req.metadata
        if req.name:
            info.name = req.name
        for key, value in req.attributes.items():
            # an empty value deletes the attribute, as in livekit
            if value:
                info.attributes[key] = value
            else:
                info.attributes.pop(key, None)
        if req.HasField("permission"):
            info.permission.CopyFrom(req.permission)
        return Outcome(clone(info))


def update_room_metadata(state: ServerState, req: rm.UpdateRoomMetadataRequest) -> Outcome:
    with state.cond:
        room = state.rooms.get(req.room)
        if room is None:
            raise ROOM_NOT_FOUND
        room.room.metadata = req.metadata
        return Outcome(clone(room.room))


# -- AgentDispatchService --------------------------------------------------------------------


def create_dispatch(state: ServerState, req: ad.CreateAgentDispatchRequest) -> Outcome:
    if not req.room:
        raise TwirpError("invalid_argument", "no room name")
    with state.cond:
        # not idempotent: every call is a new dispatch; the room is auto-created
        room = state._get_or_create_room(req.room)
        job = state._dispatch(room, req.agent_name, req.metadata, dict(req.attributes))
        dispatch = clone(room.dispatches[job.dispatch_id])
        return Outcome(dispatch, new_jobs=[job.copy()])


def list_dispatch(state: ServerState, req: ad.ListAgentDispatchRequest) -> Outcome:
    with state.cond:
        room = state.rooms.get(req.room)
        items = list(room.dispatches.values()) if room else []
        if req.dispatch_id:
            items = [d for d in items if d.id == req.dispatch_id]
        return Outcome(ad.ListAgentDispatchResponse(agent_dispatches=[clone(d) for d in items]))


def delete_dispatch(state: ServerState, req: ad.DeleteAgentDispatchRequest) -> Outcome:
    with state.cond:
        room = state.rooms.get(req.room)
        dispatch = room.dispatches.pop(req.dispatch_id, None) if room else None
        if dispatch is None:
            raise TwirpError("not_found", "dispatch not found")
        dispatch.state.deleted_at = time.time_ns()
        ended = [j for j in state.jobs.values() if j.dispatch_id == dispatch.id]
        for job in ended:
            job.terminated = True
        state.cond.notify_all()
        return Outcome(clone(dispatch), ended_jobs=[j.copy() for j in ended])


# -- SIP -------------------------------------------------------------------------------------


def create_outbound_trunk(state: ServerState, req: sip.CreateSIPOutboundTrunkRequest) -> Outcome:
    if not req.HasField("trunk"):
        raise TwirpError("invalid_argument", "trunk is required")
    if req.trunk.sip_trunk_id:
        raise TwirpError("invalid_argument", "trunk ID must be empty")
    trunk = clone(req.trunk)
    trunk.sip_trunk_id = new_id("ST_")
    trunk.created_at.GetCurrentTime()
    trunk.updated_at.CopyFrom(trunk.created_at)
    with state.cond:
        state.trunks[trunk.sip_trunk_id] = trunk
    return Outcome(clone(trunk))


def list_outbound_trunk(state: ServerState, req: sip.ListSIPOutboundTrunkRequest) -> Outcome:
    ids, numbers = set(req.trunk_ids), set(req.numbers)
    with state.cond:
        items = [
            clone(t)
            for t in state.trunks.values()
            if (not ids or t.sip_trunk_id in ids) and (not numbers or numbers & set(t.numbers))
        ]
    return Outcome(sip.ListSIPOutboundTrunkResponse(items=items))


def delete_trunk(state: ServerState, req: sip.DeleteSIPTrunkRequest) -> Outcome:
    if not req.sip_trunk_id:
        raise TwirpError("invalid_argument", "trunk ID is required")
    with state.cond:
        if state.trunks.pop(req.sip_trunk_id, None) is None:
            raise TRUNK_NOT_FOUND
    return Outcome(sip.SIPTrunkInfo(sip_trunk_id=req.sip_trunk_id))


def sip_participant_info(
    *,
    identity: str,
    name: str,
    metadata: str,
    attributes: dict[str, str],
    call_to: str,
    number: str,
    trunk_id: str,
    hostname: str,
    hide_phone_number: bool = False,
    call_status: str = "dialing",
) -> models.ParticipantInfo:
    """A SIP participant as the SIP bridge joins it: the caller's attributes plus the sip.*
    attributes livekit/protocol's rpc/sip.go adds (phone details unless hidden)."""
    now = time.time()
    info = models.ParticipantInfo(
        sid=new_id("PA_"),
        identity=identity,
        name=name,
        metadata=metadata,
        state=models.ParticipantInfo.ACTIVE,
        joined_at=int(now),
        joined_at_ms=int(now * 1000),
        kind=models.ParticipantInfo.SIP,
        is_publisher=True,
        permission=models.ParticipantPermission(
            can_subscribe=True, can_publish=True, can_publish_data=True
        ),
    )
    info.attributes.update(attributes)
    info.attributes["sip.callID"] = new_id("SCL_")
    info.attributes["sip.trunkID"] = trunk_id
    if not hide_phone_number:
        info.attributes["sip.phoneNumber"] = call_to
        info.attributes["sip.hostname"] = hostname
        info.attributes["sip.trunkPhoneNumber"] = number
    info.attributes["sip.callStatus"] = call_status
    return info


def create_sip_participant(state: ServerState, req: sip.CreateSIPParticipantRequest) -> Outcome:
    if not req.room_name:
        raise TwirpError("invalid_argument", "missing room name")
    if not req.sip_call_to:
        raise TwirpError("invalid_argument", "missing sip callee number")
    if not req.sip_trunk_id and not req.HasField("trunk"):
        raise TwirpError("invalid_argument", "missing sip trunk id")
    with state.cond:
        hostname, numbers = req.trunk.hostname, []
        if req.sip_trunk_id:
            trunk = state.trunks.get(req.sip_trunk_id)
            if trunk is None:
                raise TRUNK_NOT_FOUND
            hostname, numbers = trunk.address, list(trunk.numbers)
        # the real server picks a random trunk number; the first one keeps tests deterministic
        number = req.sip_number or (numbers[0] if numbers else "")
        if not number:
            raise TwirpError("failed_precondition", "no numbers on outbound trunk")
        info = sip_participant_info(
            identity=req.participant_identity or "sip_" + req.sip_call_to,
            name=req.participant_name,
            metadata=req.participant_metadata,
            attributes=dict(req.participant_attributes),
            call_to=req.sip_call_to,
            number=number,
            trunk_id=req.sip_trunk_id,
            hostname=hostname,
            hide_phone_number=req.hide_phone_number,
            # with wait_until_answered the real RPC only returns once the callee picked up
            call_status="active" if req.wait_until_answered else "dialing",
        )
        # the SIP bridge joins with a token, which creates the room (without agents)
        room = state._get_or_create_room(req.room_name)
        state._add_participant(room, info)
        state.cond.notify_all()
    return Outcome(
        sip.SIPParticipantInfo(
            participant_id=info.sid,
            participant_identity=info.identity,
            room_name=req.room_name,
            sip_call_id=info.attributes["sip.callID"],
        )
    )


def transfer_sip_participant(state: ServerState, req: sip.TransferSIPParticipantRequest) -> Outcome:
    with state.cond:
        info = _participant(state, req.room_name, req.participant_identity)
        if info.kind != models.ParticipantInfo.SIP:
            raise TwirpError("invalid_argument", "participant is not a SIP participant")
    return Outcome(
        sip.TransferSIPParticipantResponse(
            transfer_id=new_id("STR_"), status=sip.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL
        )
    )


def _room_scoped(cls: type[Message], handler: Callable, room_field: str = "room") -> Rpc:
    return Rpc(cls, Grants(room_admin=True), handler, room_field)


RPCS: dict[tuple[str, str], Rpc] = {
    ("RoomService", "CreateRoom"): Rpc(rm.CreateRoomRequest, Grants(room_create=True), create_room),
    ("RoomService", "ListRooms"): Rpc(rm.ListRoomsRequest, Grants(room_list=True), list_rooms),
    ("RoomService", "DeleteRoom"): Rpc(rm.DeleteRoomRequest, Grants(room_create=True), delete_room),
    ("RoomService", "ListParticipants"): _room_scoped(
        rm.ListParticipantsRequest, list_participants
    ),
    ("RoomService", "GetParticipant"): _room_scoped(rm.RoomParticipantIdentity, get_participant),
    ("RoomService", "RemoveParticipant"): _room_scoped(
        rm.RoomParticipantIdentity, remove_participant
    ),
    ("RoomService", "UpdateParticipant"): _room_scoped(
        rm.UpdateParticipantRequest, update_participant
    ),
    ("RoomService", "UpdateRoomMetadata"): _room_scoped(
        rm.UpdateRoomMetadataRequest, update_room_metadata
    ),
    ("AgentDispatchService", "CreateDispatch"): _room_scoped(
        ad.CreateAgentDispatchRequest, create_dispatch
    ),
    ("AgentDispatchService", "ListDispatch"): _room_scoped(
        ad.ListAgentDispatchRequest, list_dispatch
    ),
    ("AgentDispatchService", "DeleteDispatch"): _room_scoped(
        ad.DeleteAgentDispatchRequest, delete_dispatch
    ),
    ("SIP", "CreateSIPOutboundTrunk"): Rpc(
        sip.CreateSIPOutboundTrunkRequest, Grants(sip_admin=True), create_outbound_trunk
    ),
    ("SIP", "ListSIPOutboundTrunk"): Rpc(
        sip.ListSIPOutboundTrunkRequest, Grants(sip_admin=True), list_outbound_trunk
    ),
    ("SIP", "DeleteSIPTrunk"): Rpc(sip.DeleteSIPTrunkRequest, Grants(sip_admin=True), delete_trunk),
    ("SIP", "CreateSIPParticipant"): Rpc(
        sip.CreateSIPParticipantRequest, Grants(sip_call=True), create_sip_participant
    ),
    ("SIP", "TransferSIPParticipant"): Rpc(
        sip.TransferSIPParticipantRequest,
        Grants(sip_call=True, room_admin=True),
        transfer_sip_participant,
        "room_name",
    ),
}


def add_sip_participant(state: ServerState, room_name: str, info: models.ParticipantInfo) -> None:
    """Put a SIP participant in a room without an RPC (for webhook-only tests)."""
    with state.cond:
        room: RoomState = state._get_or_create_room(room_name)
        state._add_participant(room, info)
        state.cond.notify_all()
