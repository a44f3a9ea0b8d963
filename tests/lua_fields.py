"""The call-record hash fields the store's Lua reads and writes, found in its source text.

The convention the scripts keep: the call record's key is always a local named `kcall`, and
its fields are string literals in `redis.call('<hash command>', kcall, 'field', ...)`
(`'ts_' .. status` names a field per status by its prefix). A field given as anything else
(a variable: the field/value pairs an event writes, from `CallUpdate.to_fields`) is Python's
to name. The text is scanned wherever the Lua is: `.lua` files and the Lua strings of Python
modules alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "api" / "store"

# Where each command names its fields among the arguments after the key: one, all, or every
# other one (field/value pairs).
_ONE, _ALL, _PAIRS = "one", "all", "pairs"
HASH_COMMANDS = {
    "HGET": _ONE,
    "HEXISTS": _ONE,
    "HSETNX": _ONE,
    "HINCRBY": _ONE,
    "HINCRBYFLOAT": _ONE,
    "HMGET": _ALL,
    "HDEL": _ALL,
    "HSET": _PAIRS,
    "HMSET": _PAIRS,
}
WRITES = frozenset({"HSET", "HMSET", "HSETNX", "HINCRBY", "HINCRBYFLOAT"})

_CALL = re.compile(r"redis\.(?:p?call)\s*\(")
_LITERAL = re.compile(r"""^(?:'([^'\\]*)'|"([^"\\]*)")$""")
_PREFIX = re.compile(r"""^(?:'([^'\\]*)'|"([^"\\]*)")\s*\.\.""")


@dataclass(frozen=True, slots=True)
class FieldUse:
    """One call-record field a script names: `prefix` when it is `'<field>' .. x`."""

    where: str  # file:line
    command: str
    field: str
    prefix: bool

    @property
    def writes(self) -> bool:
        return self.command in WRITES


def lua_sources(store: Path = STORE) -> dict[Path, str]:
    """Every file of the store that holds Lua: its `.lua` files and the Python modules with
    `redis.call` in a string (the Lua not moved into files yet)."""
    found = {}
    for path in sorted([*store.rglob("*.lua"), *store.rglob("*.py")]):
        text = path.read_text()
        if _CALL.search(text):
            found[path] = text
    return found


def _arguments(text: str, start: int) -> list[str]:
    """The top-level arguments, comments left out, of the call whose `(` is just before
    `start`."""
    args: list[str] = []
    current: list[str] = []  # the argument's text so far, without comments
    depth, begin, i = 0, start, start
    while i < len(text):
        char = text[i]
        if char in "'\"":
            end = i + 1
            while end < len(text) and text[end] != char:
                end += 2 if text[end] == "\\" else 1
            i = end
        elif text.startswith("--", i):
            current.append(text[begin:i])
            i = text.find("\n", i)
            if i < 0:
                break
            begin = i
        elif char in "([{":
            depth += 1
        elif char in ")]}" and depth > 0:
            depth -= 1
        elif char in ")," and depth == 0:
            args.append("".join([*current, text[begin:i]]).strip())
            current, begin = [], i + 1
            if char == ")":
                return args
        i += 1
    raise ValueError(f"unclosed redis.call at offset {start}")


def _field_arguments(command: str, after_key: list[str]) -> list[str]:
    rule = HASH_COMMANDS[command]
    if rule == _ONE:
        return after_key[:1]
    if rule == _PAIRS:
        return after_key[::2]
    return after_key


def call_field_uses(text: str, name: str = "<lua>") -> list[FieldUse]:
    """Every call-record field named in `text`, by the convention above."""
    uses = []
    for match in _CALL.finditer(text):
        args = _arguments(text, match.end())
        command = _LITERAL.match(args[0]) if args else None
        if command is None or len(args) < 2 or args[1] != "kcall":
            continue
        verb = (command.group(1) or command.group(2)).upper()
        if verb not in HASH_COMMANDS:
            continue
        line = text.count("\n", 0, match.start()) + 1
        for arg in _field_arguments(verb, args[2:]):
            literal, prefix = _LITERAL.match(arg), _PREFIX.match(arg)
            found = literal or prefix
            if found is not None:
                field = found.group(1) if found.group(1) is not None else found.group(2)
                uses.append(FieldUse(f"{name}:{line}", verb, field, prefix=literal is None))
    return uses


def store_field_uses(store: Path = STORE) -> list[FieldUse]:
    """Every call-record field the store's Lua names."""
    return [
        use
        for path, text in lua_sources(store).items()
        for use in call_field_uses(text, str(path.relative_to(store.parent.parent)))
    ]
