"""The shape of every id a request may name, checked before the id enters a Redis key.

Invariant: an id taken from a request (header, path, body) reaches `api.store.keys` only
after `is_valid_id` accepted it. Ids are 1-64 of `[A-Za-z0-9_-]`: no `:` (the key
separator), so `ws_x:numbers` can never name another key family of a workspace or call,
and no whitespace, braces or control characters. Everything Outdial mints (`ws_<hex>`,
call and agent ids in hex) fits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")

# Path parameters that name a key. `event_id` only selects a hash field and `number` is
# parsed as E.164 by its route, so neither is listed.
KEYED_PATH_PARAMS = ("workspace_id", "call_id", "agent_id", "sip_trunk_id")


def is_valid_id(value: str) -> bool:
    return _ID.match(value) is not None


def first_invalid_path_id(path_params: Mapping[str, str]) -> tuple[str, str] | None:
    """The first (name, value) among `KEYED_PATH_PARAMS` whose value is not an id."""
    for name in KEYED_PATH_PARAMS:
        value = path_params.get(name)
        if value is not None and not is_valid_id(value):
            return name, value
    return None
