"""The store's Lua scripts (`api.store.scripts`): the loader refuses a folder that does not
make whole scripts, every file in `api/store/lua` is part of a registered script, and each
script's typed wrapper passes, at each index, the key or argument the script binds there: its
fields are named as the script's locals."""

from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import pytest

import api.store
from api.store.events import EventArgs, EventKeys
from api.store.scripts import KEYS, SCRIPTS, Key, ScriptCall, ScriptError, expand, load

LUA = Path(api.store.__file__).parent / "lua"
LUACHECKRC = Path(__file__).resolve().parent.parent / ".luacheckrc"


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_includes_come_once_their_own_first_and_constants_are_filled(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        {
            "main.lua": "--@include b\n--@include a\nreturn f(@N@, '@@CALL@@')\n",
            "lib/a.lua": "local function f(x) return x end\n",
            "lib/b.lua": "--@include a\nlocal g = f\n",
        },
    )
    source = load(folder, {"N": "7"})["main"]
    assert source.count("local function f") == 1
    assert source.index("local function f") < source.index("local g = f")
    assert source.endswith("return f(7, '@@CALL@@')\n")


@pytest.mark.parametrize(
    ("files", "constants", "error"),
    [
        ({"main.lua": "return @MISSING@\n"}, {}, "@MISSING@ has no value"),
        ({"main.lua": "return 1\n"}, {"UNUSED": "1"}, "constants no script uses: ['UNUSED']"),
        ({"main.lua": "--@include nowhere\nreturn 1\n"}, {}, "unknown include 'nowhere'"),
        (
            {
                "main.lua": "--@include a\n",
                "lib/a.lua": "--@include b\n",
                "lib/b.lua": "--@include a\n",
            },
            {},
            "include cycle a -> b -> a",
        ),
        (
            {"main.lua": "return 1\n", "lib/orphan.lua": "local x = 1\n"},
            {},
            "libraries no script includes: ['orphan']",
        ),
        (
            {"main.lua": "-- @include a\nreturn f()\n", "lib/a.lua": "local f\n"},
            {},
            "main.lua:1: not `--@include <name>`: '-- @include a'",
        ),
        (
            {"main.lua": "--@include a b\nreturn f()\n", "lib/a.lua": "local f\n"},
            {},
            "main.lua:1: not `--@include <name>`: '--@include a b'",
        ),
        (
            {"main.lua": "--@include a\r\nreturn f()\r\n", "lib/a.lua": "local f\n"},
            {},
            "main.lua:1: not `--@include <name>`: '--@include a\\r'",
        ),
        (
            {"main.lua": "--@include a\n", "lib/a.lua": "--@include  b\n", "lib/b.lua": ""},
            {},
            "a.lua:1: not `--@include <name>`: '--@include  b'",
        ),
        ({"main.lua": "return '@@CALL@'\n"}, {}, "main: '@@CALL@' is neither"),
        ({"main.lua": "return '@CALL@@'\n"}, {}, "main: '@CALL@@' is neither"),
        ({"main.lua": "return '@lower@'\n"}, {}, "main: '@lower@' is neither"),
        ({"main.lua": "return '@@@N@@@'\n"}, {"N": "1"}, "main: '@@@N@@@' is neither"),
    ],
    ids=[
        "unfilled",
        "unused",
        "unknown-include",
        "cycle",
        "orphan",
        "include-spaced",
        "include-two-names",
        "include-crlf",
        "include-in-a-library",
        "run-time-half-closed",
        "run-time-half-opened",
        "lower-case",
        "triple",
    ],
)
def test_the_loader_refuses_a_folder_that_does_not_make_whole_scripts(
    tmp_path: Path, files: dict[str, str], constants: dict[str, str], error: str
) -> None:
    with pytest.raises(ScriptError, match=re.escape(error)):
        load(_folder(tmp_path, files), constants)


def _wrappers() -> dict[str, type[ScriptCall]]:
    for module in pkgutil.iter_modules(api.store.__path__):
        importlib.import_module(f"api.store.{module.name}")
    found: dict[str, type[ScriptCall]] = {}
    pending = list(ScriptCall.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        # `dataclass(slots=True)` makes a new class: the one its module names is the wrapper.
        if getattr(sys.modules[cls.__module__], cls.__name__, None) is cls:
            found[cls.NAME] = cls
    return found


def test_the_wrappers_carry_no_dict() -> None:
    for wrapper in _wrappers().values():
        assert not hasattr(object.__new__(wrapper), "__dict__"), wrapper.__name__


def test_every_lua_file_is_part_of_a_script_with_a_typed_wrapper() -> None:
    scripts = {path.stem for path in LUA.glob("*.lua")}
    assert scripts == set(SCRIPTS) == set(_wrappers())
    included: set[str] = set()
    for name in scripts:
        expand(LUA, name, included)
    assert included == {path.stem for path in (LUA / "lib").glob("*.lua")}


def _code(text: str) -> str:
    """`text` without its comments (a `--` inside a string is not one)."""
    return re.sub(r"('[^'\n]*'|\"[^\"\n]*\")|--.*", lambda m: m[1] or "", text)


_READ = re.compile(r"\b(KEYS|ARGV)\[(\d+)\]")
_EVENT_TABLE = re.compile(r"\b(event_keys|event_args)\((\d+)\)")


@dataclass
class Bindings:
    """What a script reads: KEYS/ARGV index -> the Lua local bound to it, where apply_event's
    keys and arguments start (lib/event_argv.lua's tables; None: not read) and what breaks
    the layout (a read not bound at the top, an index bound twice)."""

    keys: dict[int, str] = field(default_factory=dict)
    args: dict[int, str] = field(default_factory=dict)
    event_keys: int | None = None
    event_args: int | None = None
    errors: list[str] = field(default_factory=list)


def _statements(code: str) -> Iterator[tuple[list[str], list[str]]]:
    """Each top-level `local a, b = x, y` of `code` (continued over lines ending in `=` or
    `,`) as its names and its expressions."""
    lines = code.split("\n")
    at = 0
    while at < len(lines):
        line = lines[at]
        at += 1
        if not line.startswith("local ") or line.startswith("local function"):
            continue
        while line.rstrip().endswith(("=", ",")) and at < len(lines):
            line += " " + lines[at]
            at += 1
        if "=" in line:
            names, values = line.removeprefix("local ").split("=", 1)
            yield [n.strip() for n in names.split(",")], _top_level(values)


def _top_level(values: str) -> list[str]:
    """`values` cut at its commas outside brackets."""
    parts, depth, start = [], 0, 0
    for at, char in enumerate(values):
        depth += (char in "([{") - (char in ")]}")
        if char == "," and depth == 0:
            parts.append(values[start:at])
            start = at + 1
    return [*parts, values[start:]]


def _bindings(*sources: str) -> Bindings:
    """The bindings of a script's files (its own, its libraries'): every `KEYS[i]` and
    `ARGV[i]` must be the one read of an expression of a top-level `local`."""
    found = Bindings()
    for source in sources:
        code = _code(source)
        bound = 0
        for names, values in _statements(code):
            for name, value in zip(names, values, strict=False):
                reads = _READ.findall(value)
                if len(reads) > 1:
                    found.errors.append(f"{name} = {value.strip()}: more than one read")
                for kind, index in reads[:1]:
                    table = found.keys if kind == "KEYS" else found.args
                    if table.setdefault(int(index), name) != name:
                        found.errors.append(
                            f"{kind}[{index}]: bound to {table[int(index)]} and {name}"
                        )
                    bound += 1
        if (unbound := len(re.findall(r"\b(?:KEYS|ARGV)\[", code)) - bound) > 0:
            found.errors.append(f"{unbound} KEYS/ARGV read(s) not bound to a local at the top")
        for table, first in _EVENT_TABLE.findall(code):
            if getattr(found, table) not in (None, int(first)):
                found.errors.append(f"{table} read from two places")
            setattr(found, table, int(first))
    return found


def _script_bindings(name: str) -> Bindings:
    """A script's bindings, its libraries' included (lib/event_argv.lua, where apply_event's
    tables are built, is checked on its own)."""
    libraries: set[str] = set()
    expand(LUA, name, libraries)
    files = [LUA / f"{name}.lua"]
    files += [LUA / "lib" / f"{lib}.lua" for lib in sorted(libraries - {"event_argv"})]
    return _bindings(*(file.read_text() for file in files))


def _mismatches(bound: Bindings, wrapper: type[Any]) -> list[str]:
    """Where `wrapper`'s fields and the script's bindings differ: a field typed `Key` named
    `x` reads the local `kx` at its KEYS index (an `EventKeys` field: 8 keys, `kcall` ...
    by its own fields), any other field the local of its name at its ARGV index, and an
    `EventArgs` field, last, apply_event's arguments at the index `event_args` names."""
    hints = get_type_hints(wrapper, include_extras=True)
    keys: list[tuple[str, str]] = []  # (field, the local it is bound to)
    args: list[str] = []
    event_keys = event_args = None
    for item in dataclasses.fields(wrapper):
        hint = hints[item.name]
        kind = getattr(hint, "__origin__", hint)
        if event_args is not None:
            return [f"{item.name}: after the EventArgs field, which takes the rest of ARGV"]
        if kind is EventKeys:
            event_keys = len(keys) + 1
            keys += [(item.name, f"k{key.name}") for key in dataclasses.fields(EventKeys)]
        elif KEYS in getattr(hint, "__metadata__", ()):
            keys.append((item.name, f"k{item.name}"))
        elif kind is EventArgs:
            event_args = len(args) + 1
        else:
            args.append(item.name)
    found = list(bound.errors)
    if (bound.event_keys, bound.event_args) != (event_keys, event_args):
        found.append(
            f"apply_event's keys, arguments from {(bound.event_keys, bound.event_args)} in the"
            f" script, {(event_keys, event_args)} in the wrapper"
        )
    in_event = set(range(event_keys, event_keys + 8)) if event_keys else set()
    for index, (name, local) in enumerate(keys, 1):
        lua = bound.keys.get(index)
        if lua is None and index not in in_event:
            found.append(f"KEYS[{index}] ({name}): the script does not bind it")
        elif lua is not None and lua != local:
            found.append(f"KEYS[{index}]: {name} in the wrapper, {lua} in the script")
    for index, name in enumerate(args, 1):
        if (lua := bound.args.get(index)) != name:
            found.append(f"ARGV[{index}]: {name} in the wrapper, {lua} in the script")
    found += [f"KEYS[{i}] ({bound.keys[i]}): no field" for i in bound.keys if i > len(keys)]
    found += [f"ARGV[{i}] ({bound.args[i]}): no field" for i in bound.args if i > len(args)]
    return found


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_each_wrapper_names_what_its_script_binds_at_each_index(name: str) -> None:
    assert _mismatches(_script_bindings(name), _wrappers()[name]) == []


def test_apply_events_tables_read_the_fields_of_its_wrappers_in_their_order() -> None:
    code = _code((LUA / "lib" / "event_argv.lua").read_text())
    read = re.compile(r"(\w+) = (?:tonumber\()?(KEYS|ARGV)\[first(?: \+ (\d+))?\]")
    offsets: dict[str, dict[int, str]] = {"KEYS": {}, "ARGV": {}}
    for name, kind, offset in read.findall(code):
        offsets[kind][int(offset or 0)] = name
    assert list(offsets["KEYS"].values()) == [f.name for f in dataclasses.fields(EventKeys)]
    assert sorted(offsets["KEYS"]) == list(range(8))
    # The field/value pairs last: their count, then the pairs (`fields = fields`).
    assert [*offsets["ARGV"].values(), "fields"] == [f.name for f in dataclasses.fields(EventArgs)]
    assert sorted(offsets["ARGV"]) == list(range(len(offsets["ARGV"])))
    assert f"ARGV[first + {len(offsets['ARGV'])}]" in code


def test_a_swapped_pair_of_fields_is_caught() -> None:
    script = (
        "local kcall, klock =\n"
        "  KEYS[1], KEYS[2]  -- a comment with KEYS[9]\n"
        "local token, call_id = ARGV[1], ARGV[2]\n"
        "local lease_ms = tonumber(ARGV[3])\n"
        "return redis.call('SET', klock, token, 'PX', lease_ms)\n"
    )

    @dataclass(frozen=True, kw_only=True)
    class Right:
        call: Key
        lock: Key
        token: str
        call_id: str
        lease_ms: int

    @dataclass(frozen=True, kw_only=True)
    class Swapped:
        call: Key
        lock: Key
        call_id: str
        token: str
        lease_ms: int

    bound = _bindings(script)
    assert (bound.keys, bound.args) == (
        {1: "kcall", 2: "klock"},
        {1: "token", 2: "call_id", 3: "lease_ms"},
    )
    assert _mismatches(bound, Right) == []
    assert _mismatches(bound, Swapped) == [
        "ARGV[1]: call_id in the wrapper, token in the script",
        "ARGV[2]: token in the wrapper, call_id in the script",
    ]
    for inline in ("ARGV[4]", "ARGV[#ARGV]"):
        found = _bindings(script.replace("token, 'PX'", f"{inline}, 'PX'"))
        assert found.errors == ["1 KEYS/ARGV read(s) not bound to a local at the top"], inline


def _luacheck(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("luacheck") is None:
        if os.environ.get("OUTDIAL_REQUIRE_LUACHECK") == "1":
            pytest.fail("luacheck is missing (apt-get install lua-check)")
        pytest.skip("luacheck is not installed (apt-get install lua-check)")
    (tmp_path / "script.lua").write_text(source)
    command = ["luacheck", "--config", str(LUACHECKRC), "--no-color", str(tmp_path)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_luacheck_knows_only_what_redis_gives_a_script(tmp_path: Path) -> None:
    allowed = (
        "local kcall, n = KEYS[1], tonumber(ARGV[1])\n"
        "local ok = pcall(cjson.decode, '{}') and bit.band(3, 1) == 1\n"
        "return {redis.call('GET', kcall), math.floor(n), string.format('%d', n),\n"
        "        table.concat({}, ','), select('#', unpack({1})), ok, type(n)}\n"
    )
    assert _luacheck(tmp_path, allowed).returncode == 0
    for read in ("os.time()", "io.open('x')", "require('x')", "dofile('x')", "loadfile('x')"):
        report = _luacheck(tmp_path, f"return {read}\n")
        assert report.returncode != 0, read
        assert f"undefined variable '{read.split('.')[0].split('(')[0]}'" in report.stdout
    written = _luacheck(tmp_path, "KEYS = {}\nreturn KEYS\n")
    assert "setting read-only global variable 'KEYS'" in written.stdout
