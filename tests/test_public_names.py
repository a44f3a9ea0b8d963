"""One public function per name in each program: a helper lives once, in the lowest layer
its users may import (tests/test_layers.py), and two different things get two names.

The programs: the API (`api`, `sip`, the contract) and the agent worker (`agent_runtime`,
`sip`), which may not import `api`: a helper both need lives in `sip` or the contract.
Route handlers do not count: FastAPI registers them, nobody imports them by name, and a
native route's name is its default operationId in /openapi.json (renaming one changes the
API). Names defined twice on purpose are in `DELIBERATELY_TWICE`, each with its reason.
"""

from __future__ import annotations

import ast
from collections import defaultdict

from tests.test_layers import project_modules

HTTP_METHODS = frozenset(
    {"get", "post", "put", "patch", "delete", "head", "options", "api_route", "websocket"}
)


def in_api(module: str) -> bool:
    return module.split(".")[0] in ("api", "sip") or module.startswith("agent_runtime.contract")


def in_agent(module: str) -> bool:
    return module.split(".")[0] in ("agent_runtime", "sip")


PROGRAMS = {"api": in_api, "agent": in_agent}

DELIBERATELY_TWICE = {
    # each command's entry point and argument parser: `outdial`, `outdial agent console`
    "main": "a command's entry point",
    "build_parser": "a command's argument parser",
    # one per vendor route module, each its vendor's rules, called in its own module only
    "native_body": "a vendor's request translated into the native call body",
}


def _is_route_handler(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(
        isinstance(d, ast.Call)
        and isinstance(d.func, ast.Attribute)
        and d.func.attr in HTTP_METHODS
        for d in node.decorator_list
    )


def public_functions(source: str) -> list[str]:
    """The public top-level functions of a module, its route handlers aside."""
    return [
        node.name
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and not node.name.startswith("_")
        and not _is_route_handler(node)
    ]


def defined_twice(sources: dict[str, str]) -> dict[str, list[str]]:
    """Each public function name defined in more than one of `sources` (module -> text);
    a name defined again in its own module (`typing.overload`) counts once."""
    where: defaultdict[str, set[str]] = defaultdict(set)
    for module, source in sources.items():
        for name in public_functions(source):
            where[name].add(module)
    return {name: sorted(modules) for name, modules in where.items() if len(modules) > 1}


def test_each_program_defines_each_public_function_once() -> None:
    modules = project_modules()
    found = {}
    for program, belongs in PROGRAMS.items():
        sources = {name: path.read_text() for name, path in modules.items() if belongs(name)}
        twice = defined_twice(sources)
        found |= {f"{program}: {name}": where for name, where in twice.items()}
    unexplained = {k: v for k, v in found.items() if k.split(": ")[1] not in DELIBERATELY_TWICE}
    assert not unexplained, (
        "keep one (in the lowest layer its users may import) or rename the one whose name "
        f"says less, or add it to DELIBERATELY_TWICE with its reason: {unexplained}"
    )
    stale = set(DELIBERATELY_TWICE) - {key.split(": ")[1] for key in found}
    assert not stale, f"no longer defined twice, drop from DELIBERATELY_TWICE: {stale}"


def test_a_name_defined_twice_is_found_and_a_route_handler_is_not() -> None:
    sources = {
        "api.jobs.fake": "async def drop_room(call): ...\n",
        "api.services.fake": "async def drop_room(livekit, room, call_id): ...\n",
        "api.routes.a": "@router.get('/a')\nasync def get_call(): ...\n",
        "api.routes.b": "@router.post('/b', operation_id='b')\nasync def get_call(): ...\n",
        "api.store.fake": "async def get_call(store, call_id): ...\ndef _private(): ...\n",
        "api.other": "def _private(): ...\n",
        "api.typed": "@overload\ndef one(x: int) -> int: ...\ndef one(x): ...\n",
    }
    assert defined_twice(sources) == {"drop_room": ["api.jobs.fake", "api.services.fake"]}
