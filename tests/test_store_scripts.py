"""The store's Lua scripts (`api.store.scripts`): the loader refuses a folder that does not
make whole scripts, every file in `api/store/lua` is part of a registered script, and each
script's typed wrapper passes as many keys and arguments as the script reads."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from typing import get_type_hints

import pytest

import api.store
from api.store.events import EventArgs, EventKeys
from api.store.scripts import SCRIPTS, ScriptCall, ScriptError, expand, load

LUA = Path(api.store.__file__).parent / "lua"


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
    ],
    ids=["unfilled", "unused", "unknown-include", "cycle", "orphan"],
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
        found[cls.NAME] = cls
    return found


def test_every_lua_file_is_part_of_a_script_with_a_typed_wrapper() -> None:
    scripts = {path.stem for path in LUA.glob("*.lua")}
    assert scripts == set(SCRIPTS) == set(_wrappers())
    included: set[str] = set()
    for name in scripts:
        expand(LUA, name, included)
    assert included == {path.stem for path in (LUA / "lib").glob("*.lua")}


def _reads(name: str) -> tuple[int, int | None, int]:
    """What a script's own file reads: its highest KEYS index, the ARGV index its event
    arguments start at (None: none) and its highest ARGV index otherwise."""
    text = (LUA / f"{name}.lua").read_text()
    keys = [int(n) for n in re.findall(r"KEYS\[(\d+)\]", text)]
    keys += [int(n) + 7 for n in re.findall(r"event_keys\((\d+)\)", text)]
    event = [int(n) for n in re.findall(r"event_args\((\d+)\)", text)]
    args = [int(n) for n in re.findall(r"ARGV\[(\d+)\]", text)]
    return max(keys, default=0), (event[0] if event else None), max(args, default=0)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_each_wrapper_passes_what_its_script_reads(name: str) -> None:
    wrapper = _wrappers()[name]
    hints = get_type_hints(wrapper, include_extras=True)
    keys = args = 0
    event_args = False
    for field, hint in hints.items():
        if field == "NAME":
            continue
        kind = getattr(hint, "__origin__", hint)
        if kind is EventKeys:
            keys += 8
        elif kind is EventArgs:
            event_args = True
        elif "KEYS" in getattr(hint, "__metadata__", ()):
            keys += 1
        else:
            args += 1
    max_key, event_first, max_arg = _reads(name)
    assert keys == max_key
    if event_first is None:
        assert not event_args and args == max_arg
    else:
        assert event_args and args == event_first - 1 and max_arg <= args
