"""A stand-in for `rtc.Room` that holds participants and nothing else: no connection, no
media. Each change is applied and emitted the way the real Room does it (livekit/rtc
room.py): a joining participant is in `remote_participants` when `participant_connected`
fires; attributes are updated before `participant_attributes_changed`; a leaving one is
dropped and carries its `disconnect_reason` before `participant_disconnected`. The
participants are real `rtc.RemoteParticipant` objects built from protobuf.
"""

from __future__ import annotations

from collections.abc import Mapping

from livekit import rtc
from livekit.rtc._proto import participant_pb2

SIP_IDENTITY = "sip-callee"


def sip_participant(
    identity: str = SIP_IDENTITY, call_status: str = "dialing", reason: int = 0
) -> rtc.RemoteParticipant:
    info = participant_pb2.ParticipantInfo(
        sid=f"PA_{identity}",
        identity=identity,
        name="callee",
        metadata="",
        kind=rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
        disconnect_reason=reason,
    )
    info.attributes["sip.callStatus"] = call_status
    info.attributes["sip.callID"] = f"SCL_{identity}"
    # handle 0: a participant object that owns no native resource
    owned = participant_pb2.OwnedParticipant(handle={"id": 0}, info=info)
    return rtc.RemoteParticipant(owned)


class FakeRoom(rtc.EventEmitter[str]):
    def __init__(self, name: str = "room-test") -> None:
        super().__init__()
        self.name = name
        self._remote: dict[str, rtc.RemoteParticipant] = {}

    @property
    def remote_participants(self) -> Mapping[str, rtc.RemoteParticipant]:
        return self._remote

    def call_status(self, identity: str = SIP_IDENTITY) -> str | None:
        participant = self._remote.get(identity)
        return participant.attributes.get("sip.callStatus") if participant else None

    def join(
        self, identity: str = SIP_IDENTITY, call_status: str = "dialing"
    ) -> rtc.RemoteParticipant:
        participant = sip_participant(identity, call_status)
        self._remote[identity] = participant
        self.emit("participant_connected", participant)
        return participant

    def set_call_status(self, status: str, identity: str = SIP_IDENTITY) -> None:
        participant = self._remote[identity]
        participant._info.attributes["sip.callStatus"] = status
        self.emit("participant_attributes_changed", {"sip.callStatus": status}, participant)

    def answer(self, identity: str = SIP_IDENTITY) -> None:
        """The SIP bridge's sequence for a callee who picks up."""
        if identity not in self._remote:
            self.join(identity)
        self.set_call_status("ringing", identity)
        self.set_call_status("active", identity)

    def leave(self, reason: int, identity: str = SIP_IDENTITY) -> rtc.RemoteParticipant:
        participant = self._remote.pop(identity)
        participant._info.disconnect_reason = reason
        self.emit("participant_disconnected", participant)
        return participant

    def disconnect(self, reason: int) -> None:
        """The room is gone for the agent (deleted by the API, or the server closed it)."""
        self.emit("disconnected", reason)
