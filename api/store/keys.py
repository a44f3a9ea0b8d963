"""Redis key layout. Every key Outdial writes is named here, with its owner and retention.

| key | type | owner | retention |
|---|---|---|---|
| `{p}:ws:{ws}` | hash: name, key_hash, webhook_secret, disabled, ... | workspaces | forever |
| `{p}:apikey:{sha256}` | string -> workspace id of that key | workspaces | until rotated |
| `{p}:hooktoken:{sha256}` | string -> workspace id of that token | workspaces | until rotated |
| `{p}:aliases:last` | counter: the last alias given | aliases | forever |
| `{p}:workspaces` | zset workspace id -> created ms (the operator's list) | workspaces | forever |
| `{p}:ws:{ws}:agents` | zset agent id -> created ms | agents | forever |
| `{p}:ws:{ws}:agent:{id}` | string: agent JSON | agents | until deleted |
| `{p}:ws:{ws}:numbers` | hash E.164 -> number JSON | numbers | until deleted |
| `{p}:ws:{ws}:trunks` | set of raw trunk ids the operator assigned | numbers | until unassigned |
| `{p}:number:{e164}` | string -> the one workspace holding the number | numbers | as the number |
| `{p}:trunk:{id}` | string -> workspace of a trunk Outdial created | numbers | as its number |
| `{p}:ws:{ws}:calls` | zset call id -> created ms | calls | trimmed when listed past retention |
| `{p}:ws:{ws}:idem:{key}` | string: request hash + first answer | calls | 24 h |
| `{p}:ws:{ws}:idem:{key} #{n}` | string: batch hash + item n's first answer | call_batch | 24 h |
| `{p}:ws:{ws}:idem-batch:{key}` | string: batch hash + its first answer | call_batch | 24 h |
| `{p}:ws:{ws}:balance` | string: seconds of calls left (absent: unlimited) | billing | forever |
| `{p}:ws:{ws}:balance:gen` | counter: removals of the balance (absent: none) | billing | forever |
| `{p}:ws:{ws}:usage:{day}` | hash: calls, billed_s, outcome:{status} that day | billing | 400 d |
| `{p}:ws:{ws}:dnc` | hash E.164 -> `<added ms>:<source>` (do-not-call list) | dnc | until removed |
| `{p}:ws:{ws}:dnc:order` | zset E.164, score 0 (the list in number order) | dnc | as its entry |
| `{p}:ws:{ws}:feed` | stream: call id, sequence of its events, ~5000 | events | 24 h idle |
| `{p}:ws:{ws}:streams` | zset open event stream token -> lease expiry ms | feed | lease |
| `{p}:streams` | zset every open event stream's token -> lease expiry ms | feed | lease |
| `{p}:call:{id}` | hash: the call record | calls | retention after terminal |
| `{p}:call:{id}:events` | list of event JSON (index = sequence - 1) | events | as the call |
| `{p}:call:{id}:eids` | hash event id -> sequence (de-duplication) | events | as the call |
| `{p}:call:{id}:delivery` | hash seq -> delivery JSON, cursor, resends | relay | as the call |
| `{p}:room:{room}` | string -> call id (webhooks map rooms to calls) | calls | as the call |
| `{p}:relay:active:{id}` | flag: a relay message for the call exists | relay | until drained |
| `{p}:relay:due` | zset call id -> next attempt ms | relay | until due |
| `{p}:relay:lock:{id}` | string: token of the call's one drain | relay | lease (timeout + 5 s) |
| `{p}:relay:inflight:{ws}` | zset call id -> lease expiry ms (in-flight cap) | relay | lease |
| `{p}:relay:waiting:{ws}` | zset call id -> ms it began waiting for a slot | relay | 2 leases |
| `{p}:relay:redelivery:{id}:{seq}` | string: the event's one pending resend | relay | 10 min |
| `{p}:relay:redelivery-rate:{ws}` | counter: resends asked this minute | relay | 1 min |
| `{p}:deadlines` | zset call id -> ms its state must be checked by | reconciler | until terminal |
| `{p}:scheduled:due` | zset call id -> due ms of a `scheduled` call | scheduled | until claimed |
| `{p}:pacing:trunk:{t}:limits` | hash: max_calls_per_second, max_concurrent_calls | pacing | set |
| `{p}:pacing:trunk:{t}:slots` | zset admitted call id -> lease expiry ms | pacing | lease |
| `{p}:pacing:ws:{ws}:slots` | zset call id -> lease expiry ms | pacing | lease |
| `{p}:pacing:trunk:{t}:admit-tat` | string: GCRA: ms of the next admission | pacing | 60 s |
| `{p}:pacing:trunk:{t}:dial-tat` | string: ms of the next free dial turn | pacing | 60 s |
| `{p}:pacing:trunk:{t}:dial-log` | zset call id -> ms it was dialed | pacing | 61 s |
| `{p}:pacing:trunk:{t}:waiting:{ws}` | zset call id -> arrival (ms * 1000 + n) | pacing | waiting |
| `{p}:pacing:trunk:{t}:turns` | zset workspace -> ms of its last admission | pacing | waiting |
| `{p}:pacing:trunk:{t}:held` | hash workspace -> the limit its waiters show | pacing | waiting |
| `{p}:pacing:leased-trunks` | zset trunk -> latest lease expiry ms of its slots | pacing | lease |
| `{p}:pacing:trunks` | zset trunk with waiters -> ms of its next look | pacing | waiting |
| `{p}:pacing:wake` | list (one item at most): a slot was freed | pacing | until popped |
| `{p}:lkhook:{id}` | string flag: LiveKit webhook id seen | webhooks | 24 h |
| `{p}:lkhook:health` | hash: last_received_ms, last_missed_ms | webhooks, reconciler | forever |

The workspace hash's `hook_token_hash` is its integration token's (absent: none yet),
`alias` its numeric alias (`api.store.aliases`), `allowed_countries` the operator's country
allowlist for its calls (absent: the deployment's), and `max_concurrent_calls` the
operator's concurrency limit for it (absent: the deployment's). The delivery hash's
`cursor` is the last sequence delivered or given up; `redelivery:{seq}` records one-off
resends requested through the API.
The `pacing:*` keys are also built inside Lua from the prefix (lib/pacing_keys.lua): a
call names its trunk and workspace only in its record. So is the workspace's event `feed`
(lib/feed.lua, appended in the step that records each event; read by `api.store.feed`),
the workspace's do-not-call list `dnc`, read for the call's number by the admission
(admit.lua; the accepts get it in KEYS), and the workspace's `balance`, `balance:gen` and
`usage:{day}` when a call ends or extends its reservation (lib/reservation.lua; the
accept gets the balance key in KEYS and builds `balance:gen` from it). A call keeps the
generation it reserved from in its record (`reserved_gen`). A usage `{day}` is a UTC day
counted from 1970-01-01.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    def workspace(self, ws: str) -> str:
        return f"{self.prefix}:ws:{ws}"

    def workspace_index(self) -> str:
        return f"{self.prefix}:workspaces"

    def api_key(self, key_hash: str) -> str:
        return f"{self.prefix}:apikey:{key_hash}"

    def hook_token(self, token_hash: str) -> str:
        return f"{self.prefix}:hooktoken:{token_hash}"

    def last_alias(self) -> str:
        return f"{self.prefix}:aliases:last"

    def agents(self, ws: str) -> str:
        return f"{self.prefix}:ws:{ws}:agents"

    def agent(self, ws: str, agent_id: str) -> str:
        return f"{self.prefix}:ws:{ws}:agent:{agent_id}"

    def numbers(self, ws: str) -> str:
        return f"{self.prefix}:ws:{ws}:numbers"

    def workspace_trunks(self, ws: str) -> str:
        return f"{self.prefix}:ws:{ws}:trunks"

    def number_holder(self, number: str) -> str:
        return f"{self.prefix}:number:{number}"

    def trunk_owner(self, trunk_id: str) -> str:
        return f"{self.prefix}:trunk:{trunk_id}"

    def calls(self, ws: str) -> str:
        return f"{self.prefix}:ws:{ws}:calls"

    def idempotency(self, ws: str, key: str) -> str:
        return f"{self.prefix}:ws:{ws}:idem:{key}"

    def batch_idempotency(self, ws: str, key: str) -> str:
        return f"{self.prefix}:ws:{ws}:idem-batch:{key}"

    def balance(self, ws: str) -> str:
        return f"{self.prefix}:ws:{ws}:balance"

    def balance_generation(self, ws: str) -> str:
        # `scripts.GENERATION_SUFFIX` builds the same name inside Lua
        return f"{self.prefix}:ws:{ws}:balance:gen"

    def usage(self, ws: str, day: int) -> str:
        return f"{self.prefix}:ws:{ws}:usage:{day}"

    def do_not_call(self, ws: str) -> str:
        # `admit.lua` builds the same name from the call's workspace
        return f"{self.prefix}:ws:{ws}:dnc"

    def do_not_call_order(self, ws: str) -> str:
        return f"{self.prefix}:ws:{ws}:dnc:order"

    def feed(self, ws: str) -> str:
        return f"{self.prefix}:ws:{ws}:feed"

    def event_streams(self, ws: str) -> str:
        return f"{self.prefix}:ws:{ws}:streams"

    def all_event_streams(self) -> str:
        return f"{self.prefix}:streams"

    def call(self, call_id: str) -> str:
        return f"{self.prefix}:call:{call_id}"

    def events(self, call_id: str) -> str:
        return f"{self.prefix}:call:{call_id}:events"

    def event_ids(self, call_id: str) -> str:
        return f"{self.prefix}:call:{call_id}:eids"

    def delivery(self, call_id: str) -> str:
        return f"{self.prefix}:call:{call_id}:delivery"

    def room(self, room_name: str) -> str:
        return f"{self.prefix}:room:{room_name}"

    def relay_active(self, call_id: str) -> str:
        return f"{self.prefix}:relay:active:{call_id}"

    def relay_due(self) -> str:
        return f"{self.prefix}:relay:due"

    def relay_lock(self, call_id: str) -> str:
        return f"{self.prefix}:relay:lock:{call_id}"

    def relay_in_flight(self, workspace_id: str) -> str:
        return f"{self.prefix}:relay:inflight:{workspace_id}"

    def relay_waiting(self, workspace_id: str) -> str:
        return f"{self.prefix}:relay:waiting:{workspace_id}"

    def relay_redelivery(self, call_id: str, sequence: int) -> str:
        return f"{self.prefix}:relay:redelivery:{call_id}:{sequence}"

    def relay_redelivery_rate(self, workspace_id: str) -> str:
        return f"{self.prefix}:relay:redelivery-rate:{workspace_id}"

    def deadlines(self) -> str:
        return f"{self.prefix}:deadlines"

    def scheduled_due(self) -> str:
        return f"{self.prefix}:scheduled:due"

    def trunk_limits(self, trunk_id: str) -> str:
        return f"{self.prefix}:pacing:trunk:{trunk_id}:limits"

    def trunk_slots(self, trunk_id: str) -> str:
        return f"{self.prefix}:pacing:trunk:{trunk_id}:slots"

    def workspace_slots(self, ws: str) -> str:
        return f"{self.prefix}:pacing:ws:{ws}:slots"

    def trunk_waiting(self, trunk_id: str, ws: str) -> str:
        return f"{self.prefix}:pacing:trunk:{trunk_id}:waiting:{ws}"

    def trunk_dial_log(self, trunk_id: str) -> str:
        return f"{self.prefix}:pacing:trunk:{trunk_id}:dial-log"

    def trunk_turns(self, trunk_id: str) -> str:
        return f"{self.prefix}:pacing:trunk:{trunk_id}:turns"

    def trunk_held(self, trunk_id: str) -> str:
        return f"{self.prefix}:pacing:trunk:{trunk_id}:held"

    def pacing_leased_trunks(self) -> str:
        return f"{self.prefix}:pacing:leased-trunks"

    def pacing_trunks(self) -> str:
        return f"{self.prefix}:pacing:trunks"

    def pacing_wake(self) -> str:
        return f"{self.prefix}:pacing:wake"

    def livekit_webhook(self, event_id: str) -> str:
        return f"{self.prefix}:lkhook:{event_id}"

    def webhook_health(self) -> str:
        return f"{self.prefix}:lkhook:health"
