"""A call with what its workspace says about it, read in one script (call_with_workspace.lua;
apply_then_read_workspace.lua and dial_step.lua read it with their mark): the webhook
secret its callbacks are signed with and whether the operator disabled the workspace.

Invariant: the call comes out typed or not at all (`read_call`: gone or unreadable is None,
`api.store.records`); a call whose workspace is gone reads as not disabled, with no secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio.client import Pipeline

from api.store.base import Store
from api.store.call_record import CallRecord, read_call
from api.store.scripts import Key, ScriptCall


@dataclass(frozen=True, slots=True)
class CallWithWorkspace:
    call: CallRecord | None  # None: gone or unreadable
    webhook_secret: str  # '' when the workspace has none
    workspace_disabled: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CallWithWorkspaceScript(ScriptCall):
    NAME = "call_with_workspace"
    call: Key
    workspace_prefix: str  # the workspace's key is this and its id


def _script(store: Store, call_id: str) -> CallWithWorkspaceScript:
    return CallWithWorkspaceScript(
        call=store.keys.call(call_id), workspace_prefix=store.keys.workspace("")
    )


async def queue_call_with_workspace(store: Store, pipe: Pipeline, call_id: str) -> None:
    """Add the read to `pipe`; its reply goes to `call_with_workspace`."""
    await store.run(_script(store, call_id), client=pipe)


def call_with_workspace(reply: list[Any], call_id: str) -> CallWithWorkspace:
    """The script's reply, typed."""
    fields, secret, disabled = reply
    raw = dict(zip(fields[::2], fields[1::2], strict=True))
    return CallWithWorkspace(read_call(raw, call_id), secret or "", disabled == "1")
