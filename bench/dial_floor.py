"""The dial floor: what this machine does with no Outdial in the way (issue 24).

One process, one asyncio loop, one `livekit.api.LiveKitAPI`: `--concurrency` tasks each
send the pair a call costs at LiveKit, back to back, for `--seconds`: CreateRoom with the
agent dispatch inside (`sip.ensure_room`, a `RoomPlan` with dispatch metadata of the size
the dispatcher writes) then CreateSIPParticipant (`sip.dial`), to the LiveKit test server
in its own process. Reported: pairs/s, this client's CPU and the server's CPU (its pid),
each in % of one core over the same wall time.

The backlog bench runs this module as a subprocess against its own server, so its floor
and its drain are measured in the same run against the same server process.

    PYTHONPATH=. python -m bench.dial_floor [--seconds 10] [--concurrency 16]
    PYTHONPATH=. python -m bench.dial_floor --url URL --server-pid PID --json   # as a step
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from dataclasses import asdict, dataclass

from livekit import api as lkapi
from livekit.protocol.sip import CreateSIPOutboundTrunkRequest, SIPOutboundTrunkInfo

from bench.call_path import API_KEY, API_SECRET, cpu_seconds
from sip import RoomPlan, SipLegPlan, dial, ensure_room
from tests.livekit_server.remote import LiveKitServerProcess

# About the size of the dispatcher's `DispatchMetadata` JSON (agent snapshot, event URL and
# token, variables): the bytes the server decodes and keeps per room.
DISPATCH_METADATA = json.dumps(
    {
        "version": 1, "workspace_id": "ws_" + "x" * 22, "room_name": "call-" + "x" * 24,
        "agent": {"id": "ag_" + "x" * 22, "name": "bench", "instructions": "Hi {{firstName}}",
                  "worker_name": "outdial-agent", "first_message": None, "language": "en",
                  "pipeline": {"llm": {"provider": "openai"}, "stt": {"provider": "openai"},
                               "tts": {"provider": "openai"}}},
        "dynamic_variables": {"firstName": "Ada"}, "metadata": {"crm_id": "42"},
        "to_number": "+14155552671", "from_number": "+15105550100",
        "sip_participant_identity": "sip-" + "x" * 24, "ring_timeout_seconds": 30,
        "max_duration_seconds": 1800,
        "events_url": "http://127.0.0.1:8000/v1/internal/calls/" + "x" * 24 + "/events",
        "event_token": "x" * 120, "metering": None,
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Floor:
    pairs: int
    seconds: float
    client_cpu: float  # % of one core
    server_cpu: float

    @property
    def rate(self) -> float:
        return self.pairs / self.seconds


async def _trunk(client: lkapi.LiveKitAPI) -> str:
    trunk = SIPOutboundTrunkInfo(name="floor", address="sip.example.net", numbers=["+15105550100"])
    created = await client.sip.create_outbound_trunk(CreateSIPOutboundTrunkRequest(trunk=trunk))
    return created.sip_trunk_id


async def run_floor(url: str, server_pid: int, seconds: float, concurrency: int) -> Floor:
    async with lkapi.LiveKitAPI(url, API_KEY, API_SECRET) as client:
        trunk_id = await _trunk(client)
        run = uuid.uuid4().hex[:8]
        pairs = 0
        stop_at = 0.0

        async def sender(lane: int) -> None:
            nonlocal pairs
            index = 0
            while time.monotonic() < stop_at:
                call_id = f"floor-{run}-{lane}-{index}"
                index += 1
                room = f"call-{call_id}"
                await ensure_room(
                    client,
                    RoomPlan(
                        name=room,
                        agent_name="outdial-agent",
                        dispatch_metadata=DISPATCH_METADATA,
                        room_metadata=json.dumps({"call_id": call_id, "workspace_id": "ws"}),
                    ),
                )
                await dial(
                    client,
                    SipLegPlan(
                        room_name=room,
                        sip_trunk_id=trunk_id,
                        caller_number="+15105550100",
                        callee_number="+14155552671",
                        participant_identity=f"sip-{call_id}",
                        participant_name="+14155552671",
                        participant_metadata=json.dumps({"call_id": call_id}),
                        ringing_timeout_seconds=30,
                        max_call_duration_seconds=1800,
                    ),
                )
                pairs += 1

        server_before, client_before = cpu_seconds(server_pid), time.process_time()
        started = time.monotonic()
        stop_at = started + seconds
        await asyncio.gather(*(sender(lane) for lane in range(concurrency)))
        spent = time.monotonic() - started
        return Floor(
            pairs=pairs,
            seconds=spent,
            client_cpu=(time.process_time() - client_before) / spent * 100,
            server_cpu=(cpu_seconds(server_pid) - server_before) / spent * 100,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--url", help="a running test server (default: start one)")
    parser.add_argument("--server-pid", type=int, help="its pid, for its CPU (with --url)")
    parser.add_argument("--json", action="store_true", help="one JSON line, for a parent bench")
    args = parser.parse_args()
    server = None
    if args.url is None:
        server = LiveKitServerProcess(API_KEY, API_SECRET, record_requests=False).start()
        url, pid = server.url, server.pid
    else:
        url, pid = args.url, args.server_pid
    try:
        floor = asyncio.run(run_floor(url, pid, args.seconds, args.concurrency))
    finally:
        if server is not None:
            server.stop()
    if args.json:
        print(json.dumps(asdict(floor)))
        return
    print("| concurrency | pairs | seconds | pairs/s | client CPU | server CPU |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.concurrency} | {floor.pairs} | {floor.seconds:.1f} | {floor.rate:.0f} | "
        f"{floor.client_cpu:.0f}% | {floor.server_cpu:.0f}% |"
    )


if __name__ == "__main__":
    main()
