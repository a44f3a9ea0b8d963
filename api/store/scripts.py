"""The store's Lua scripts: read from `api/store/lua/` once, checked at import, called typed.

Layout: each `lua/<name>.lua` is one script, registered under `<name>`; `lua/lib/<name>.lua`
holds functions scripts share, pulled in by a line `--@include <name>` (each library once per
script, its own includes first). A script binds its `KEYS[i]`/`ARGV[i]` to named locals at
its top, and the call record's key is always the local `kcall`. `@NAME@` placeholders take
the Python values of `CONSTANTS` (the contract's status order, the feed's caps, ...);
`@@NAME@@` is left alone: the scripts fill those in themselves at run time.

Invariant: every script is expanded when this module is imported, and an unknown include,
an include cycle, a comment line naming `@include` that is not exactly `--@include <name>`,
a library no script includes, a placeholder without a value, a value no script uses or an
`@...@` left after filling that is not the run-time `@@NAME@@` raises `ScriptError` there,
so a script that reaches Redis is the one the files say. Each script is called through one
`ScriptCall` subclass, a frozen dataclass whose fields are its KEYS then its ARGV, in the
order the script binds them and named as its locals: the field `x` of a key is the local
`kx`, of an argument the local `x` (`tests/test_store_scripts.py` checks both).
`python -m api.store.scripts --expand DIR` writes the expanded scripts (luacheck reads
those, `scripts/test`).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from importlib.abc import Traversable
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, ClassVar, Protocol, get_type_hints, runtime_checkable

from agent_runtime.contract import STATUS_RANK, TERMINAL_RANK, TERMINAL_STATUSES

# What the scripts are generated with (their `@NAME@` placeholders).
# The workspace's event feed (lib/feed.lua): its length cap and an idle feed's lifetime.
FEED_MAXLEN = 5000
FEED_TTL_SECONDS = 86_400
# A workspace's day of usage is kept this long (a year's report, with a margin).
USAGE_TTL_SECONDS = 400 * 86_400
DAY_MS = 86_400_000
# The generation key of a balance is the balance's key with this suffix (`keys.py`).
GENERATION_SUFFIX = ":gen"
# How far past its call's deadline a renewed pacing lease runs (lib/pacing_slots.lua).
LEASE_RENEWAL_MS = 60_000
# How many turns a late admission may catch up (lib/pacing_slots.lua, `gcra_take`).
ADMIT_CATCH_UP = 4
# How far ahead of its turn a call may be admitted (lib/pacing_slots.lua, `gcra_wait`): a
# backlog's concurrent dispatches are not parked a turn apart at a high rate, and a call
# admitted ahead reaches its dial turn by the dial step's short sleep
# (`api.jobs.dial_turns.SLEEP_TO_TURN_MS`, not less than this), not by a re-sent step.
ADMIT_AHEAD_MS = 150
# A pacer looks at a trunk held by concurrency at least this often (pace.lua).
CONCURRENCY_LOOK_MS = 5000
# A pacer's step gives the limit now holding a workspace's waiting calls to this many of
# them at most (pace.lua).
WAITING_REFRESH_MAX = 500


def _lua_table(entries: Mapping[str, object]) -> str:
    return "{\n" + "".join(f"  {name}={value},\n" for name, value in entries.items()) + "}"


CONSTANTS: Mapping[str, str] = {
    "STATUS_RANK": _lua_table(STATUS_RANK),
    "TERMINAL_RANK": str(TERMINAL_RANK),
    "TERMINAL_STATUSES": _lua_table({status: "true" for status in sorted(TERMINAL_STATUSES)}),
    "FEED_MAXLEN": str(FEED_MAXLEN),
    "FEED_TTL_SECONDS": str(FEED_TTL_SECONDS),
    "USAGE_TTL_SECONDS": str(USAGE_TTL_SECONDS),
    "DAY_MS": str(DAY_MS),
    "GENERATION_SUFFIX": GENERATION_SUFFIX,
    "LEASE_RENEWAL_MS": str(LEASE_RENEWAL_MS),
    "ADMIT_CATCH_UP": str(ADMIT_CATCH_UP),
    "ADMIT_AHEAD_MS": str(ADMIT_AHEAD_MS),
    "CONCURRENCY_LOOK_MS": str(CONCURRENCY_LOOK_MS),
    "WAITING_REFRESH_MAX": str(WAITING_REFRESH_MAX),
}

LIBRARY = "lib"
_INCLUDE = re.compile(r"^--@include (\w+)$", re.M)
_PLACEHOLDER = re.compile(r"(?<!@)@([A-Z][A-Z0-9_]*)@(?!@)")
# After filling, what looks like a placeholder must be a run-time one (`@@NAME@@`).
_LEFT = re.compile(r"@+\w+@+")
_RUN_TIME = re.compile(r"@@[A-Z][A-Z0-9_]*@@")


class ScriptError(Exception):
    """A script folder that does not make whole scripts (see the module docstring)."""


def expand(folder: Traversable, name: str, included: set[str] | None = None) -> str:
    """The script `name` of `folder` with its includes in place, each library once (the
    names of those it took are added to `included`)."""
    taken: set[str] = set()

    def text_of(file: Traversable, chain: tuple[str, ...]) -> str:
        def include(match: re.Match[str]) -> str:
            library = match[1]
            if library in chain:
                raise ScriptError(f"{name}: include cycle {' -> '.join((*chain, library))}")
            if library in taken:
                return f"-- (lib/{library}.lua: above)"
            source = folder / LIBRARY / f"{library}.lua"
            if not source.is_file():
                raise ScriptError(f"{file.name}: unknown include {library!r}")
            taken.add(library)
            return f"-- lib/{library}.lua\n{text_of(source, (*chain, library)).rstrip()}"

        text = file.read_bytes().decode()  # as written: a CRLF include line is refused
        for number, line in enumerate(text.split("\n"), 1):
            if line.startswith("--") and "@include" in line and not _INCLUDE.fullmatch(line):
                raise ScriptError(f"{file.name}:{number}: not `--@include <name>`: {line!r}")
        return _INCLUDE.sub(include, text)

    script = folder / f"{name}.lua"
    if not script.is_file():
        raise ScriptError(f"no script {name!r}")
    text = text_of(script, ())
    if included is not None:
        included |= taken
    return text


def fill(source: str, constants: Mapping[str, str], name: str) -> tuple[str, set[str]]:
    """`source` with every `@NAME@` replaced by its constant, and the names used; any other
    `@...@` left but `@@NAME@@` is refused."""
    used: set[str] = set()

    def value(match: re.Match[str]) -> str:
        if match[1] not in constants:
            raise ScriptError(f"{name}: @{match[1]}@ has no value")
        used.add(match[1])
        return constants[match[1]]

    filled = _PLACEHOLDER.sub(value, source)
    for left in _LEFT.finditer(filled):
        if not _RUN_TIME.fullmatch(left[0]):
            raise ScriptError(f"{name}: {left[0]!r} is neither @NAME@ nor @@NAME@@")
    return filled, used


def load(folder: Traversable, constants: Mapping[str, str]) -> dict[str, str]:
    """Every script of `folder`, expanded and filled, by name."""
    scripts: dict[str, str] = {}
    included: set[str] = set()
    used: set[str] = set()
    for file in sorted(folder.iterdir(), key=lambda f: f.name):
        if file.is_file() and file.name.endswith(".lua"):
            name = file.name.removesuffix(".lua")
            scripts[name], names = fill(expand(folder, name, included), constants, name)
            used |= names
    libraries = folder / LIBRARY
    if libraries.is_dir():
        known = {
            f.name.removesuffix(".lua") for f in libraries.iterdir() if f.name.endswith(".lua")
        }
        if orphans := sorted(known - included):
            raise ScriptError(f"libraries no script includes: {orphans}")
    if unused := sorted(set(constants) - used):
        raise ScriptError(f"constants no script uses: {unused}")
    return scripts


SCRIPTS: Mapping[str, str] = load(files("api.store") / "lua", CONSTANTS)

# A field typed `Key` (or `Annotated[<KeyGroup>, KEYS]`) goes to KEYS; every other to ARGV.
KEYS = "KEYS"
Key = Annotated[str, KEYS]
Arg = str | bytes | int | float


@runtime_checkable
class Flat(Protocol):
    """Several keys or arguments in one field (apply_event's, `api.store.events`): a field
    whose type has `flat` is sent as what `flat` returns."""

    def flat(self) -> list[Any]: ...


class ScriptCall:
    """One call of the script `NAME`: subclasses are frozen dataclasses whose fields are the
    script's KEYS (typed `Key`) and ARGV, each in the order the script reads them."""

    NAME: ClassVar[str]
    # No `__dict__` under the subclasses' slots.
    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.NAME not in SCRIPTS:
            raise ScriptError(f"{cls.__name__}: no script {cls.NAME!r} in api/store/lua")

    def keys(self) -> list[str]:
        return _values(self, _layout(type(self)).keys)

    def args(self) -> list[Arg]:
        return _values(self, _layout(type(self)).args)

    def eval_args(self) -> tuple[Any, ...]:
        """EVAL's arguments: the source, the number of keys, the keys and the arguments
        (for a MULTI, where redis-py would first ask which scripts Redis has)."""
        keys = self.keys()
        return (SCRIPTS[self.NAME], len(keys), *keys, *self.args())


@dataclass(frozen=True, slots=True)
class _Layout:
    keys: tuple[tuple[str, bool], ...]  # the KEYS fields in order, each with: is it `Flat`
    args: tuple[tuple[str, bool], ...]  # the ARGV fields, the same way


_LAYOUTS: dict[type[ScriptCall], _Layout] = {}


def _layout(cls: type[ScriptCall]) -> _Layout:
    """Where a call's fields go (once per class, from their types)."""
    if cls not in _LAYOUTS:
        hints = get_type_hints(cls, include_extras=True)
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        keys = {n for n in names if KEYS in getattr(hints[n], "__metadata__", ())}
        types = {n: getattr(hints[n], "__origin__", hints[n]) for n in names}
        flat = {n for n, t in types.items() if isinstance(t, type) and issubclass(t, Flat)}
        _LAYOUTS[cls] = _Layout(
            tuple((n, n in flat) for n in names if n in keys),
            tuple((n, n in flat) for n in names if n not in keys),
        )
    return _LAYOUTS[cls]


def _values(call: ScriptCall, layout: tuple[tuple[str, bool], ...]) -> list[Any]:
    found: list[Any] = []
    for name, is_flat in layout:
        if is_flat:
            found += getattr(call, name).flat()
        else:
            found.append(getattr(call, name))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m api.store.scripts")
    parser.add_argument("--expand", metavar="DIR", required=True, type=Path)
    into: Path = parser.parse_args().expand
    into.mkdir(parents=True, exist_ok=True)
    for name, source in SCRIPTS.items():
        (into / f"{name}.lua").write_text(source)


if __name__ == "__main__":
    main()
