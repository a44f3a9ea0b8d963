"""The dialer's pacing in the store: admission, the pacer's steps, the paced dial.

Invariant: every decision is one script (admit.lua, pace.lua, dial_paced.lua; see
lib/pacing_limits.lua for what each keeps): a call is admitted (its trunk's and workspace's
slots taken) or left waiting in one step, a waiting call is admitted with its dispatch
message written in one step, and `dialing` is never recorded, nor the dial sent, before the
trunk's dial rate allows it. Slots go back in the step that records the call's end
(lib/apply_event.lua).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

from api.settings import Settings
from api.store.base import Store
from api.store.clock import now_ms
from api.store.connect import sync_client
from api.store.events import (
    ApplyResult,
    EventArgs,
    EventKeys,
    EventSpec,
    apply_args,
    event_keys,
    iso_timestamp,
)
from api.store.keys import Keys
from api.store.messages import DIAL_QUEUE, DISPATCH_ACTOR, RELAY_QUEUE, QueueKeys, message_template
from api.store.scheduled_calls import ScheduledCallKeys
from api.store.scripts import KEYS, SCRIPTS, Key, ScriptCall

# The reason placeholder of `call.waiting`'s data, filled in by the admission script.
_REASON = "@@REASON@@"


@dataclass(frozen=True, slots=True)
class PacingDefaults:
    """The deployment's limits (0 = unlimited) and the dial rate's guard."""

    max_calls_per_second: float
    trunk_max_concurrent_calls: int
    workspace_max_concurrent_calls: int
    dial_guard_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> PacingDefaults:
        return cls(
            max_calls_per_second=settings.trunk_max_calls_per_second,
            trunk_max_concurrent_calls=settings.trunk_max_concurrent_calls,
            workspace_max_concurrent_calls=settings.workspace_max_concurrent_calls,
            dial_guard_ms=settings.trunk_rate_guard_ms,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Admit(ScriptCall):
    NAME = "admit"
    event_keys: Annotated[EventKeys, KEYS]
    default_rate: float
    default_trunk_concurrency: int
    default_workspace_concurrency: int
    now_ms: int
    guard_ms: int
    window_checked: Literal["0", "1"]
    # Informational `call.waiting`, its data's reason written `@@REASON@@`.
    event: EventArgs


@dataclass(frozen=True, slots=True, kw_only=True)
class DialPaced(ScriptCall):
    NAME = "dial_paced"
    event_keys: Annotated[EventKeys, KEYS]
    default_rate: float
    guard_ms: int
    now_ms: int
    reserved_turn_ms: int | Literal[""]  # '' none
    event: EventArgs


@dataclass(frozen=True, slots=True, kw_only=True)
class Pace(ScriptCall):
    NAME = "pace"
    pacing_trunks: Key
    dial_msgs: Key
    dial_queue: Key
    deadlines: Key
    relay_msgs: Key
    relay_queue: Key
    prefix: str
    trunk: str
    now_ms: int
    default_rate: float
    default_trunk_concurrency: int
    default_workspace_concurrency: int
    max_admissions: int
    body_template: str  # @@CALL@@, @@MSG@@
    msg_id_prefix: str
    guard_ms: int
    # `call.waiting` of a call now held by another limit (as in `ScheduledCallKeys`).
    timestamp: str
    retention_s: int
    relay_template: str
    call_template: str
    events_template: str
    eids_template: str
    delivery_template: str
    relay_active_template: str


@dataclass(frozen=True, slots=True)
class CallWindowFields:
    """A `queued` call's window as stored, its destination and agent-ready timeout (s)."""

    window: str
    to: str
    ready_s: int


AdmissionOutcome = Literal["admitted", "pass", "waiting", "window", "do_not_call", "missing"]


@dataclass(frozen=True, slots=True)
class Admission:
    """`admitted`: the call holds its slots now (or held them already: `pass`); `waiting`:
    it waits in its trunk's queue for `reason`; `window`: nothing changed, the call has a
    window to check first (`window`); `do_not_call`: nothing changed, its number is on its
    workspace's do-not-call list (the caller ends it); `missing`: no such call."""

    outcome: AdmissionOutcome
    reason: str | None = None
    window: CallWindowFields | None = None

    @property
    def may_dispatch(self) -> bool:
        return self.outcome in ("admitted", "pass")


async def admit(store: Store, call_id: str, window_checked: bool = False) -> Admission:
    """Admit a `queued` call or leave it waiting (recording `call.waiting` when its reason
    changed); any other status passes. A `queued` call with a window comes back `window`
    unless `window_checked` (its caller checks the window first, then admits); one whose
    number is on its workspace's do-not-call list comes back `do_not_call`."""
    defaults = PacingDefaults.from_settings(store.settings)
    event = EventSpec("call.waiting", {"reason": _REASON})
    now = now_ms()
    reply = await store.run(
        Admit(
            event_keys=event_keys(store, call_id),
            default_rate=defaults.max_calls_per_second,
            default_trunk_concurrency=defaults.trunk_max_concurrent_calls,
            default_workspace_concurrency=defaults.workspace_max_concurrent_calls,
            now_ms=now,
            guard_ms=defaults.dial_guard_ms,
            window_checked="1" if window_checked else "0",
            event=apply_args(store, event, now, call_id),
        )
    )
    outcome = cast(AdmissionOutcome, reply[0])
    if outcome == "window":
        return Admission(outcome, window=CallWindowFields(reply[1], reply[2], int(reply[3])))
    return Admission(outcome, reply[1] if outcome == "waiting" else None)


@dataclass(frozen=True, slots=True)
class PacedDial:
    """The `dialing` compare-and-set's result, taken at `marked_at_ms`, or (`result` None)
    the dial's reserved turn: come back then with it (`turn_ms`)."""

    result: ApplyResult | None
    turn_ms: int = 0
    marked_at_ms: int = 0


async def mark_dialing(
    store: Store, call_id: str, event: EventSpec, reserved_turn_ms: int | None = None
) -> PacedDial:
    """Apply `event` (`call.dialing`, a compare-and-set) only when the trunk's dial rate
    allows a dial now (dial_paced.lua); else the dial reserves its turn and
    nothing else changes. `reserved_turn_ms`: the turn this dial reserved before."""
    defaults = PacingDefaults.from_settings(store.settings)
    now = now_ms()
    # Replicated before the dial goes out: a failover that lost the mark would let a
    # redelivery take it again and ring the callee twice.
    reply = await store.run_replicated(
        DialPaced(
            event_keys=event_keys(store, call_id),
            default_rate=defaults.max_calls_per_second,
            guard_ms=defaults.dial_guard_ms,
            now_ms=now,
            reserved_turn_ms="" if reserved_turn_ms is None else reserved_turn_ms,
            event=apply_args(store, event, now, call_id),
        )
    )
    return paced_dial_reply(reply, now)


def paced_dial_reply(reply: list[Any], now: int) -> PacedDial:
    """lib/paced_dial.lua's reply, taken at `now`."""
    if reply[0] == "turn":
        return PacedDial(None, turn_ms=int(reply[1]))
    outcome, status = reply[0], reply[2]
    ended = False  # `dialing` is never terminal
    return PacedDial(ApplyResult(outcome, int(reply[1]), status, ended=ended), marked_at_ms=now)


async def note_late_dial(store: Store, call_id: str, sip_trunk_id: str, sent_at_ms: int) -> None:
    """The dial left later than its `dialing` mark: its trunk's window counts it from when it
    left, so the dials after it keep their distance at the trunk (a dial not in the window,
    on a trunk without a rate, is left out)."""
    key = store.keys.trunk_dial_log(sip_trunk_id)
    await store.lean.execute(["ZADD", key, "XX", "GT", sent_at_ms, call_id])


class PacerSteps:
    """The pacer's side of the store, over a blocking client of its own (it runs on a
    thread, away from any event loop). Failures raise `redis.RedisError`."""

    def __init__(self, settings: Settings, max_admissions: int = 100) -> None:
        self._settings = settings
        self._keys = Keys(settings.redis_prefix)
        self._defaults = PacingDefaults.from_settings(settings)
        self._max_admissions = max_admissions
        self._client = sync_client(
            settings, decode_responses=True, socket_timeout=35, socket_connect_timeout=2
        )
        self._pace = self._client.register_script(SCRIPTS[Pace.NAME])
        self._queue = QueueKeys.of(settings.broker_namespace, DIAL_QUEUE)
        self._template = message_template(DIAL_QUEUE, DISPATCH_ACTOR)
        relay = QueueKeys.of(settings.broker_namespace, RELAY_QUEUE)
        self._calls = ScheduledCallKeys.of(self._keys, relay, settings.call_retention_days * 86_400)

    def step(self, everything: bool) -> tuple[int, float | None]:
        """One step for each trunk with waiting calls (`everything`) or for those due to be
        looked at; (calls admitted, the earliest time in s to look again or None)."""
        now = int(time.time() * 1000)
        top = "+inf" if everything else now
        trunks = self._client.zrangebyscore(self._keys.pacing_trunks(), "-inf", top)
        admitted = 0
        defaults, calls = self._defaults, self._calls
        for trunk in cast(list[str], trunks):
            call = Pace(
                pacing_trunks=self._keys.pacing_trunks(),
                dial_msgs=self._queue.messages,
                dial_queue=self._queue.ids,
                deadlines=self._keys.deadlines(),
                relay_msgs=calls.relay_msgs,
                relay_queue=calls.relay_queue,
                prefix=self._settings.redis_prefix,
                trunk=trunk,
                now_ms=now,
                default_rate=defaults.max_calls_per_second,
                default_trunk_concurrency=defaults.trunk_max_concurrent_calls,
                default_workspace_concurrency=defaults.workspace_max_concurrent_calls,
                max_admissions=self._max_admissions,
                body_template=self._template,
                msg_id_prefix=f"pacer-{uuid.uuid4().hex[:12]}-",
                guard_ms=defaults.dial_guard_ms,
                timestamp=iso_timestamp(now / 1000),
                retention_s=calls.retention_s,
                relay_template=calls.relay_template,
                call_template=calls.call_template,
                events_template=calls.events_template,
                eids_template=calls.eids_template,
                delivery_template=calls.delivery_template,
                relay_active_template=calls.relay_active_template,
            )
            reply = self._pace(keys=call.keys(), args=call.args())
            admitted += int(reply[0])
        nearest = self._client.zrange(self._keys.pacing_trunks(), 0, 0, withscores=True)
        next_look = float(nearest[0][1]) / 1000 if nearest else None
        return admitted, next_look

    def wait_for_wake(self, timeout_s: float) -> bool:
        """Block until a slot is freed (True) or `timeout_s` passes (False)."""
        # BLPOP's timeout is in seconds (decimals allowed); 0 would mean forever.
        popped = self._client.blpop([self._keys.pacing_wake()], timeout=max(timeout_s, 0.001))
        return popped is not None

    def close(self) -> None:
        self._client.close()
