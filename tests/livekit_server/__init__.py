"""Outdial's own LiveKit protocol test server (Twirp API, signed webhooks, agent workers).

    with LiveKitTestServer(api_key="testkey", api_secret="...").start() as server:
        lkapi = livekit.api.LiveKitAPI(url=server.url, api_key=..., api_secret=...)

See README.md in this folder for the interface and the protocol facts it follows.
"""

from .faults import Fault, sip_error_code
from .server import LiveKitTestServer
from .state import JobInfo, RecordedRequest, RoomState, SentWebhook, WorkerInfo
from .webhooks import SCENARIOS, Step

__all__ = [
    "SCENARIOS",
    "Fault",
    "JobInfo",
    "LiveKitTestServer",
    "RecordedRequest",
    "RoomState",
    "SentWebhook",
    "Step",
    "WorkerInfo",
    "sip_error_code",
]
