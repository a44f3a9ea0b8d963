"""Numeric workspace aliases: the integer `businessId` vendor-compatible routes name a
workspace by.

Invariant: a workspace has at most one alias and an alias names at most one workspace. One
script gives it (`ASSIGN_ALIAS`): it takes the next number of one counter (`keys.last_alias`)
and writes the workspace's `alias` field and the alias index (`keys.alias`) together, and
does nothing for a workspace that has one already or does not exist. Workspace creation runs
it inside the creating transaction; a workspace created before aliases existed gets its
alias the first time a workspace read that shows one (`with_alias`) finds it missing.
"""

from __future__ import annotations

from typing import cast

from api.store.base import Store

# KEYS[1]: the workspace hash, KEYS[2]: the alias counter; ARGV[1]: the alias index's key
# prefix (the alias is only known here), ARGV[2]: the workspace id.
# Returns the workspace's alias, or false when there is no such workspace.
ASSIGN_ALIAS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local alias = redis.call('HGET', KEYS[1], 'alias')
if alias then return tonumber(alias) end
alias = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'alias', alias)
redis.call('SET', ARGV[1] .. alias, ARGV[2])
return alias
"""

# Aliases are positive and small: a longer text is no alias (and never names a key).
MAX_ALIAS = 10**15


def assign_alias_call(store: Store, workspace_id: str) -> tuple[list[str], list[str]]:
    """The keys and arguments of `ASSIGN_ALIAS` for the workspace."""
    keys = store.keys
    return (
        [keys.workspace(workspace_id), keys.last_alias()],
        [keys.alias(""), workspace_id],
    )


async def assign_alias(store: Store, workspace_id: str) -> int | None:
    """The workspace's alias, given now if it had none; None when there is no such workspace."""
    script_keys, args = assign_alias_call(store, workspace_id)
    reply = await store.redis.eval(ASSIGN_ALIAS, len(script_keys), *script_keys, *args)
    return None if reply is None else int(reply)


async def workspace_id_for_alias(store: Store, alias: int) -> str | None:
    """The workspace the alias names (one GET of the alias index), None for no such alias."""
    if not 0 < alias < MAX_ALIAS:
        return None
    # `store.redis` decodes every reply (open_store): the client's `bytes | str` are str.
    return cast(str | None, await store.redis.get(store.keys.alias(alias)))
