"""Redis commands and round trips of one call's whole life, counted at the wire.

    PYTHONPATH=. python -m bench.redis_per_call        # prints a markdown report

Runs the real stack (bench.call_path.Stack: the API under uvicorn, one `outdial worker`
process, the LiveKit protocol test server) with every Outdial process talking to Redis
through `bench.redis_count.CountingProxy`, and drives two calls (one placed now, one
scheduled two seconds ahead, which adds the claim) through their whole life, step by step,
waiting after each step until its effects are done: accept, admission and dispatch, the
agent's `agent.started` and `agent.ready` (posted as the agent runtime does) and the dial,
LiveKit's webhooks (the agent and the callee joining, the callee leaving, the room
finishing), the agent's `call.answered`, `call.transcript` and `call.ended`, and the relay
of the call's events to its callback URL.

What counts for a call: every round trip of the API (it has no background work: an idle
window checks that) and every round trip of the worker that names the call, its room or
one of its messages in a command or a reply (a fetch returns the message; its ack names
it), the wake-up PUBLISH right behind such a round trip, a blocking read (the pacer's
BLPOP) the call woke with what that wake-up did, and the SCRIPT EXISTS redis-py sends
before a pipeline holding a script when that pipeline is the call's. The rest of the
worker's round trips are its background (fallback polls, the claimers' and reconciler's
polls): shared by all calls whatever their number, reported as a rate from an idle window.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
import psutil

from api.security import event_token
from api.settings import Settings
from api.store.messages import RELAY_QUEUE
from api.store.scripts import SCRIPTS
from bench.call_path import API_SECRET, Stack, setup_tenant
from bench.redis_count import Batch, CountingProxy
from tests.callback_receiver import Receiver

SHAS = {
    hashlib.sha1(source.encode()).hexdigest().encode(): name for name, source in SCRIPTS.items()
}
_MESSAGE_ID = re.compile(rb'"message_id":\s*"([0-9a-zA-Z_-]+)"')
_NIL = (b"*-1\r\n", b"$-1\r\n", b"_\r\n", b"")
QUIET_S = 0.6  # a step is done when nothing of its call reached Redis for this long
LIMITS = {
    # Pacing on, as a deployment has it; high enough never to hold this call back.
    "OUTDIAL_TRUNK_MAX_CALLS_PER_SECOND": "50",
    "OUTDIAL_TRUNK_MAX_CONCURRENT_CALLS": "100",
    "OUTDIAL_WORKSPACE_MAX_CONCURRENT_CALLS": "100",
}


def describe(command: list[bytes]) -> str:
    """`EVALSHA <script>` for a script call, else the command's name."""
    name = command[0].upper().decode()
    if name == "EVALSHA" and len(command) > 1:
        script = SHAS.get(command[1])
        if script is not None:
            return f"EVALSHA {script}"
        # Dramatiq's own dispatch script: its first argument names what it does.
        keys = int(command[2])
        if len(command) > 3 + keys and command[3 + keys].isalpha():
            return f"EVALSHA dramatiq:{command[3 + keys].decode()}"
        return f"EVALSHA {command[1][:8].decode()}"
    return name


@dataclass
class Counted:
    step: str
    batch: Batch


class CallTracker:
    """Which batches belong to one call: its tokens grow as its messages show up."""

    def __init__(self, call_id: str, room: str) -> None:
        self.tokens = {call_id.encode(), room.encode()}

    def names_call(self, batch: Batch) -> bool:
        blobs = [arg for command in batch.commands for arg in command] + [bytes(batch.replies)]
        if not any(token in blob for blob in blobs for token in self.tokens):
            return False
        for blob in blobs:
            if any(token in blob for token in self.tokens):
                self.tokens.update(_MESSAGE_ID.findall(blob))
        return True


def worker_step(phase: str, batch: Batch) -> str:
    """The step a worker round trip of the call belongs to."""
    what = {describe(command) for command in batch.commands}
    relay_message = any(
        name.startswith("EVALSHA dramatiq:") and command[6] == RELAY_QUEUE.encode()
        for command in batch.commands
        if (name := describe(command))
    )
    if relay_message or any(name.startswith("EVALSHA relay_") for name in what):
        return "relay (callback delivery)"
    if "EVALSHA claim_scheduled" in what:
        return "claim (scheduled)"
    return {
        "accept": "admission + dispatch",
        "scheduled": "admission + dispatch",
        "agent.ready": "dial",
    }.get(phase, f"{phase} (worker)")


def attribute(batches: list[Batch], tracker: CallTracker) -> list[Counted]:
    """The batches of the call, each with its step (see the module docstring)."""
    counted: list[Counted] = []
    last_of_connection: dict[int, bool] = {}
    woken: set[int] = set()
    # redis-py checks a pipeline's scripts (SCRIPT EXISTS) in a round trip before it: that
    # one is the call's when the pipeline is.
    checking: dict[int, Batch] = {}
    for batch in sorted(batches, key=lambda b: b.started):
        first = batch.commands[0][0].upper()
        if first == b"SCRIPT" and batch.process == "worker":
            checking[batch.connection] = batch
            continue
        check = checking.pop(batch.connection, None)
        mine = False
        if batch.process == "api":
            mine = bool(batch.label)
        elif batch.process == "worker":
            if first in (b"BLPOP", b"BRPOP"):
                mine = tracker.names_call(batch) or bytes(batch.replies) not in _NIL
                if mine:
                    woken.add(batch.connection)
                else:
                    woken.discard(batch.connection)
            else:
                mine = (
                    tracker.names_call(batch)
                    or (first == b"PUBLISH" and last_of_connection.get(batch.connection, False))
                    or batch.connection in woken
                )
            if "EVALSHA claim_scheduled" in {describe(c) for c in batch.commands}:
                mine = mine or not batch.replies.startswith(b":0")
        last_of_connection[batch.connection] = mine
        if not mine:
            continue
        step = batch.label if batch.process == "api" else worker_step(batch.label, batch)
        if check is not None:
            counted.append(Counted(step, check))
        counted.append(Counted(step, batch))
    return counted


def process_namer(stack: Stack) -> Any:
    def name(pid: int) -> str:
        try:
            chain = [pid, *(parent.pid for parent in psutil.Process(pid).parents())]
        except psutil.Error:
            return ""
        if stack.api.pid in chain:
            return "api"
        if stack.worker is not None and stack.worker.pid in chain:
            return "worker"
        return "bench"

    return name


class Driver:
    """Drives calls through their life, labelling each step on the proxy."""

    def __init__(self, stack: Stack, proxy: CountingProxy, tenant: dict[str, str]) -> None:
        self.stack = stack
        self.proxy = proxy
        self.tenant = tenant
        self.signing_key = Settings(LIVEKIT_API_SECRET=API_SECRET).event_signing_key
        self.http: aiohttp.ClientSession | None = None

    def status(self, call_id: str) -> str:
        raw = self.stack.redis.hget(f"{self.stack.prefix}:call:{call_id}", "status")
        return raw.decode() if raw else ""

    async def until(self, what: str, check: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(what)
            await asyncio.sleep(0.02)

    async def quiet(self, tracker: CallTracker) -> None:
        """Wait until no round trip of the call reached Redis for `QUIET_S`."""
        seen = -1
        while True:
            batches = self.proxy.taken()
            mine = len(attribute(batches, tracker))
            if mine == seen:
                return
            seen = mine
            await asyncio.sleep(QUIET_S)

    async def agent_event(
        self, call_id: str, event_type: str, data: dict[str, Any], expect: int = 200
    ) -> None:
        assert self.http is not None
        token = event_token(call_id, self.signing_key)
        async with self.http.post(
            f"{self.stack.api_url}/v1/internal/calls/{call_id}/events",
            json={"type": event_type, "data": data},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == expect, await response.text()

    async def webhook(self, event: str, room: str, identity: str | None) -> None:
        status, text = await self.stack.lk.send_webhook_async(event, room, identity)
        assert status == 200, text

    async def step(self, label: str, tracker: CallTracker, action: Any) -> None:
        self.proxy.label = label
        print(f"{time.strftime('%X')} {label}", file=sys.stderr, flush=True)
        await action()
        await self.quiet(tracker)
        self.proxy.label = ""

    async def one_call(self, receiver: Receiver, delay_s: int) -> tuple[str, CallTracker]:
        assert self.http is not None
        headers = {k: v for k, v in self.tenant.items() if k != "agent"}
        body: dict[str, Any] = {
            "to": "+14155552671",
            "call_agent_id": self.tenant["agent"],
            "dynamic_variables": {"firstName": "Ada"},
            "callback_url": f"{receiver.url}/hook",
        }
        if delay_s:
            body["delay_seconds"] = delay_s
        tracker = CallTracker("", "")
        accepted: dict[str, Any] = {}

        async def accept() -> None:
            async with self.http.post(  # type: ignore[union-attr]
                f"{self.stack.api_url}/v1/api/call", json=body, headers=headers
            ) as response:
                accepted.update(await response.json())
                assert response.status == 200, accepted
            tracker.tokens = {accepted["callId"].encode(), accepted["roomName"].encode()}
            if not delay_s:
                await self.until("waiting_for_agent", lambda: self.status(call_id()) != "queued")

        def call_id() -> str:
            return str(accepted["callId"])

        await self.step("accept", tracker, accept)
        room = accepted["roomName"]
        if delay_s:

            async def due() -> None:
                await self.until("claimed", lambda: self.status(call_id()) != "scheduled", 30)

            await self.step("scheduled", tracker, due)
        await self.until("waiting", lambda: self.status(call_id()) == "waiting_for_agent")
        identity = f"sip-{call_id()}"
        self.stack.lk.add_agent_participant(room, "agent-1")

        async def ready() -> None:
            await self.agent_event(call_id(), "agent.ready", {"job_id": "AJ_bench"})
            await self.until("dialed", lambda: self.stack.lk.room(room) is not None and identity
                             in self.stack.lk.room(room).participants)  # fmt: skip

        steps: list[tuple[str, Any]] = [
            ("agent.started", lambda: self.agent_event(call_id(), "agent.started", {})),
            ("webhook participant_joined (agent)",
             lambda: self.webhook("participant_joined", room, "agent-1")),
            ("agent.ready", ready),
        ]  # fmt: skip
        for label, action in steps:
            await self.step(label, tracker, action)
        self.stack.lk.set_participant(room, identity, call_status="active")
        now = time.time()
        turns = {"turns": [{"role": "assistant", "text": "Hi Ada!", "started_at": now,
                            "ended_at": now}]}  # fmt: skip
        later: list[tuple[str, Any]] = [
            ("webhook participant_joined (callee answered)",
             lambda: self.webhook("participant_joined", room, identity)),
            ("agent call.answered", lambda: self.agent_event(call_id(), "call.answered", {})),
            ("agent call.transcript",
             lambda: self.agent_event(call_id(), "call.transcript", turns)),
        ]  # fmt: skip
        for label, action in later:
            await self.step(label, tracker, action)
        # The callee hangs up: LiveKit's webhook ends the call (and its room); the agent's
        # own report of the end comes after it and changes nothing (`stale`).
        self.stack.lk.set_participant(room, identity, disconnect_reason=1, remove=True)
        ended = {"status": "completed", "reason": "hangup_by_callee", "duration_seconds": 30}
        end: list[tuple[str, Any]] = [
            ("webhook participant_left (callee)",
             lambda: self.webhook("participant_left", room, identity)),
            ("agent call.ended (late: stale)",
             lambda: self.agent_event(call_id(), "call.ended", ended)),
            ("webhook room_finished", lambda: self.webhook("room_finished", room, None)),
        ]  # fmt: skip
        for label, action in end:
            await self.step(label, tracker, action)
        return call_id(), tracker


def relayed(receiver: Receiver, call_id: str, event_type: str) -> bool:
    return any(
        call_id in r.body.decode() and event_type in r.body.decode() for r in receiver.received
    )


def table(counted: list[Counted]) -> list[str]:
    by_step: dict[str, list[Batch]] = {}
    for item in counted:
        by_step.setdefault(item.step, []).append(item.batch)
    rows = ["| step | commands | round trips | what (in order of first use) |", "|---|---|---|---|"]
    total_commands = total_trips = 0
    for step, batches in by_step.items():
        commands = [describe(c) for batch in batches for c in batch.commands]
        names = Counter(commands)
        what = ", ".join(f"{n}x {name}" if n > 1 else name for name, n in names.items())
        rows.append(f"| {step} | {len(commands)} | {len(batches)} | {what} |")
        total_commands += len(commands)
        total_trips += len(batches)
    rows.append(f"| **whole call** | **{total_commands}** | **{total_trips}** | |")
    return rows


async def api_up(stack: Stack, timeout: float = 60) -> None:
    """Wait for the API to answer (a busy machine may take longer than setup_tenant waits)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"{stack.api_url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.2)


async def measure() -> list[str]:
    proxy = CountingProxy(lambda _: "")
    proxy.start()
    stack = Stack(dial_mode="agent_ready", env={"REDIS_URL": proxy.url, **LIMITS})
    proxy._process_of = process_namer(stack)
    receiver = await Receiver().start()
    report = ["## Redis per call (bench/redis_per_call.py)", ""]
    try:
        await api_up(stack)
        tenant = await setup_tenant(stack)
        stack.lk.webhook_url = f"{stack.api_url}/v1/livekit/webhook"
        stack.start_worker()
        await asyncio.sleep(8)  # the worker's boot
        idle_from = time.time()
        await asyncio.sleep(10)
        idle = [b for b in proxy.taken() if b.started >= idle_from]
        idle_s = time.time() - idle_from
        api_idle = sum(1 for b in idle if b.process == "api")
        worker_idle = [b for b in idle if b.process == "worker"]
        driver = Driver(stack, proxy, tenant)
        # A new connection per request: an idle keep-alive one may be closed under us.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            driver.http = http
            for delay_s, title in ((0, "a call placed now"), (2, "a call scheduled 2 s ahead")):
                started = len(proxy.taken())
                call_id, tracker = await driver.one_call(receiver, delay_s)
                ended = functools.partial(relayed, receiver, call_id, "call.ended")
                await driver.until("relayed", ended)
                await driver.quiet(tracker)
                counted = attribute(proxy.taken()[started:], tracker)
                delivered = [r for r in receiver.received if call_id in r.body.decode()]
                report += [f"### {title} ({len(delivered)} callbacks delivered)", ""]
                report += table(counted)
                report.append("")
        commands = sum(len(b.commands) for b in worker_idle)
        report += [
            f"Background (idle worker, {idle_s:.0f} s): {commands / idle_s:.1f} commands/s in "
            f"{len(worker_idle) / idle_s:.1f} round trips/s, whatever the number of calls "
            f"({', '.join(f'{n}x {w}' for w, n in Counter(describe(c) for b in worker_idle for c in b.commands).most_common())}); "  # noqa: E501
            f"the idle API: {api_idle} round trips.",
            "",
        ]
        return report
    finally:
        await receiver.stop()
        stack.close()
        proxy.stop()


def main() -> None:
    print("\n".join(asyncio.run(measure())))


if __name__ == "__main__":
    main()
