"""Numeric workspace aliases: the integer `businessId` vendor-compatible routes name a
workspace by.

Invariant: a workspace has at most one alias and an alias names at most one workspace. One
script gives it (assign_alias.lua): it takes the next number of one counter (`keys.last_alias`)
and writes it to the workspace's `alias` field together, and does nothing for a workspace
that has one already or does not exist. Workspace creation runs it inside the creating
transaction; a workspace created before aliases existed gets its alias the first time a
workspace read that shows one (`with_alias`) finds it missing. There is no index from alias
to workspace: a route that names a business compares it with the alias of the workspace
its credentials opened.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.store.base import Store
from api.store.scripts import Key, ScriptCall


@dataclass(frozen=True, slots=True, kw_only=True)
class AssignAlias(ScriptCall):
    NAME = "assign_alias"
    workspace: Key
    counter: Key


def assign_alias_call(store: Store, workspace_id: str) -> AssignAlias:
    """`AssignAlias` for the workspace. Inside the creating MULTI it runs with EVAL
    (`eval_args`): redis-py would put EVALSHA behind a SCRIPT EXISTS round trip first, and a
    NOSCRIPT inside EXEC could not be retried once the transaction's other commands ran."""
    return AssignAlias(
        workspace=store.keys.workspace(workspace_id), counter=store.keys.last_alias()
    )


async def assign_alias(store: Store, workspace_id: str) -> int | None:
    """The workspace's alias, given now if it had none; None when there is no such workspace."""
    reply = await store.run(assign_alias_call(store, workspace_id))
    return None if reply is None else int(reply)
