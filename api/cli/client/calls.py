"""`outdial call` and `outdial calls`: place a call (and follow it to its end), list calls,
show one with its events, and follow the workspace's events live.

Following reads the API's event stream (`GET /v1/api/events/stream`). `call --wait` exits 0
when the call ends `completed` and 1 when it ends any other way (failed, no_answer, busy,
canceled). A stream the network or a restarting API cut is opened again after the last
event shown (`Last-Event-ID`), so no event is shown twice. `call --wait` also asks for the
call's status at every reconnection, at least every STATUS_CHECK_SECONDS, so an ending
the stream could not deliver (its feed entry trimmed before it was read) still ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from agent_runtime.contract import TERMINAL_STATUSES
from api.cli.client.http import Api, Unreachable
from api.cli.client.runner import command, event_line, pairs, print_fields, print_json, print_table

# Consecutive failed reconnections before following gives up (one second apart).
RECONNECTS = 5
# `call --wait` reads the call's events in streams this long, its status asked between them.
STATUS_CHECK_SECONDS = 60

if TYPE_CHECKING:  # argparse's class is subscriptable for type checkers only
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]
    Sub = Callable[[Commands, str, str], argparse.ArgumentParser]


def _show_event(args: argparse.Namespace) -> Callable[[dict[str, Any]], None]:
    def show(event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False) if args.json else event_line(event)
        print(line, flush=True)

    return show


async def _follow(
    api: Api,
    params: dict[str, str],
    show: Callable[[dict[str, Any]], None],
    until: Callable[[dict[str, Any]], bool] = lambda _: False,
    ended: Callable[[], Awaitable[dict[str, Any] | None]] | None = None,
) -> dict[str, Any] | None:
    """Shows each event as it arrives; returns the first one `until` accepts, or None when
    a stream bounded by `max_seconds` ends. With `ended`, a bounded stream is opened again
    and `ended` asked before each reconnection: what it returns (the events left shown
    first) ends the following."""
    last_id: str | None = None
    failures = 0
    reconnecting = False
    while True:
        cut = False
        try:
            over = await ended() if ended is not None and reconnecting else None
            bounds = {"max_seconds": "0"} if over is not None else {}
            async for item in api.events(params | bounds, last_id):
                last_id, failures = item.id, 0
                show(item.data)
                if until(item.data):
                    return item.data
            if over is not None or (ended is None and "max_seconds" in params):
                return over
        except Unreachable:
            failures += 1
            if failures > RECONNECTS:
                raise
            cut = True
        reconnecting = True
        if cut or ended is None:  # a bounded stream that ended is opened again at once
            await asyncio.sleep(1)


async def _call(api: Api, args: argparse.Namespace) -> int:
    body = {
        "to": args.to,
        "call_agent_id": args.agent,
        "dynamic_variables": pairs(args.var, "--var"),
        "metadata": pairs(args.meta, "--meta"),
        "callback_url": args.callback,
        "from_number": args.from_number,
        "campaign_id": args.campaign,
    }
    body = {name: value for name, value in body.items() if value is not None}
    accepted = await api.call("POST", "/v1/api/call", body=body)
    call_id = accepted["callId"]
    if args.json:
        print(json.dumps(accepted), flush=True)
    else:
        print(f"call {call_id} accepted (room {accepted['roomName']})", flush=True)
    if not args.wait:
        return 0

    async def ended() -> dict[str, Any] | None:
        call: dict[str, Any] = await api.call("GET", f"/v1/api/call/{call_id}")
        return call if call["status"] in TERMINAL_STATUSES else None

    params = {"call_id": call_id, "max_seconds": str(STATUS_CHECK_SECONDS)}
    show, terminal = _show_event(args), lambda e: e["status"] in TERMINAL_STATUSES
    end = await _follow(api, params, show, terminal, ended)
    return 0 if end is not None and end["status"] == "completed" else 1


async def _calls_list(api: Api, args: argparse.Namespace) -> int:
    params = {
        "status": args.status,
        "agent_id": args.agent,
        "campaign_id": args.campaign,
        "limit": str(args.limit),
        "cursor": args.cursor,
    }
    page = await api.call(
        "GET", "/v1/api/calls", params={k: v for k, v in params.items() if v is not None}
    )
    if args.json:
        print_json(page)
        return 0
    print_table(
        ["CALL", "STATUS", "TO", "AGENT", "CREATED", "END REASON"],
        [
            [c["callId"], c["status"], c["to"], c["agentId"], c["createdAt"], c["endReason"]]
            for c in page["calls"]
        ],
    )
    if page["nextCursor"]:
        print(f"(more: --cursor {page['nextCursor']})")
    return 0


async def _calls_show(api: Api, args: argparse.Namespace) -> int:
    call = await api.call("GET", f"/v1/api/call/{args.call_id}")
    events = await api.call("GET", f"/v1/api/call/{args.call_id}/events")
    if args.json:
        print_json({"call": call, "events": events["events"]})
        return 0
    shown = ("callId", "status", "to", "from", "agentId", "roomName", "createdAt", "endedAt")
    print_fields(
        [(name, call.get(name)) for name in shown]
        + [(name, call[name]) for name in ("endReason", "errorCode", "errorMessage") if call[name]]
        + [("metadata", call["metadata"]), ("dynamicVariables", call["dynamicVariables"])]
    )
    print()
    for event in events["events"]:
        print(event_line(event | {"callId": call["callId"]}))
    return 0


async def _calls_tail(api: Api, args: argparse.Namespace) -> int:
    params = {"call_id": args.call, "after": args.after, "max_seconds": args.max_seconds}
    given = {name: str(value) for name, value in params.items() if value is not None}
    await _follow(api, given, _show_event(args))
    return 0


def add_call_commands(commands: Commands, sub: Sub) -> None:
    call = sub(commands, "call", "place a call (--wait: follow it to its end)")
    call.add_argument("to", help="the callee, E.164: +15105550123")
    call.add_argument("--agent", required=True, help="the agent's id")
    call.add_argument("--var", action="append", default=[], help="name=value for the agent")
    call.add_argument("--meta", action="append", default=[], help="name=value, yours only")
    call.add_argument("--callback", help="URL the call's signed events are POSTed to")
    call.add_argument("--from", dest="from_number", help="the caller number (default: default)")
    call.add_argument("--campaign")
    call.add_argument(
        "--wait", action="store_true", help="print events until the end; exit 0 if completed"
    )
    call.set_defaults(handler=command(_call))

    calls = commands.add_parser("calls", help="the workspace's calls and events")
    call_commands = calls.add_subparsers(dest="calls_command", required=True)
    listed = sub(call_commands, "list", "list calls, newest first")
    listed.add_argument("--status")
    listed.add_argument("--agent")
    listed.add_argument("--campaign")
    listed.add_argument("--limit", type=int, default=50)
    listed.add_argument("--cursor")
    listed.set_defaults(handler=command(_calls_list))
    show = sub(call_commands, "show", "show a call and its events")
    show.add_argument("call_id")
    show.set_defaults(handler=command(_calls_show))
    tail = sub(call_commands, "tail", "follow the workspace's events live (Ctrl-C ends)")
    tail.add_argument("--call", help="only this call's (its events so far first)")
    tail.add_argument("--after", help="go on after this event id (0: the oldest kept)")
    tail.add_argument("--max-seconds", type=int, help="end after this long")
    tail.set_defaults(handler=command(_calls_tail))
