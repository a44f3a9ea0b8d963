"""Numeric workspace aliases: the integer `businessId` vendor-compatible routes name a
workspace by.

Invariant: a workspace has at most one alias and an alias names at most one workspace. One
script gives it (`ASSIGN_ALIAS`): it takes the next number of one counter (`keys.last_alias`)
and writes it to the workspace's `alias` field together, and does nothing for a workspace
that has one already or does not exist. Workspace creation runs it inside the creating
transaction; a workspace created before aliases existed gets its alias the first time a
workspace read that shows one (`with_alias`) finds it missing. There is no index from alias
to workspace: a route that names a business compares it with the alias of the workspace
its credentials opened.
"""

from __future__ import annotations

from api.store.base import Store

# KEYS[1]: the workspace hash, KEYS[2]: the alias counter.
# Returns the workspace's alias, or false when there is no such workspace.
ASSIGN_ALIAS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local alias = redis.call('HGET', KEYS[1], 'alias')
if alias then return tonumber(alias) end
alias = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'alias', alias)
return alias
"""


def assign_alias_keys(store: Store, workspace_id: str) -> list[str]:
    """The keys of `ASSIGN_ALIAS` for the workspace."""
    return [store.keys.workspace(workspace_id), store.keys.last_alias()]


async def assign_alias(store: Store, workspace_id: str) -> int | None:
    """The workspace's alias, given now if it had none; None when there is no such workspace."""
    script_keys = assign_alias_keys(store, workspace_id)
    reply = await store.redis.eval(ASSIGN_ALIAS, len(script_keys), *script_keys)
    return None if reply is None else int(reply)
