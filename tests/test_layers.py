"""Layers point one way: no module imports from a layer above its own.

The layers, top to bottom (a module may import its own layer and any layer of a lower
tier; layers in one tier do not import each other):

0. entry: `api.app`, `api.worker` and the command line `api.cli` (its `preflight`, `dev`,
   `agent_console` and HTTP `client` included): they wire everything together.
1. routes (`api.routes` and its HTTP plumbing: `api.deps`, `api.middleware`,
   `api.openapi`) and, beside it, jobs (`api.jobs`: the Dramatiq actors and their worker
   plumbing).
2. services: `api.services`, `api.schemas`, `api.auth`, `api.resources`.
3. relay: `api.relay`, callback delivery.
4. metrics: `api.metrics`, counted by the layers above, never by the store.
5. store: `api.store`, the only room that talks to Redis (Dramatiq's message layout
   included, since its scripts write it).
6. foundation: `api.settings`, `api.security`, `api.errors`, `api.ids`, `api.logs`,
   `api.livekit`, `api.callback_urls`.
7. sip: telephony on LiveKit.
8. contract: `agent_runtime.contract`, the schema the API and the agent share.

The agent worker (`agent_runtime`, its contract aside) is a program of its own: it imports
only itself, `sip` and the contract, and nothing in `api` imports it except the entry
points (`outdial agent` runs it). So: no store -> jobs/services/relay/routes, no relay ->
jobs/services/routes, no services -> routes/jobs, no sip -> api, no agent_runtime -> api.

Every import counts, those inside functions too (a late import is still an arrow). A new
module outside the layers fails here until it is given one.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "sip", "agent_runtime")

# Top to bottom; each tier holds layers, each layer the module prefixes it owns.
TIERS: tuple[dict[str, tuple[str, ...]], ...] = (
    {
        "entry": (
            "api.app",
            "api.worker",
            # the command line, its HTTP commands (`api.cli.client`) included
            "api.cli",
        )
    },
    {
        "routes": ("api.routes", "api.deps", "api.middleware", "api.openapi"),
        "jobs": ("api.jobs",),
    },
    {"services": ("api.services", "api.schemas", "api.auth", "api.resources")},
    {"relay": ("api.relay",)},
    {"metrics": ("api.metrics",)},
    {"store": ("api.store",)},
    {
        "foundation": (
            "api.settings",
            "api.security",
            "api.errors",
            "api.ids",
            "api.logs",
            "api.livekit",
            "api.callback_urls",
        )
    },
    {"sip": ("sip",)},
    {"contract": ("agent_runtime.contract",)},
)
# Outside the tiers: the agent worker, which the API never imports (the entry points run it).
AGENT_LAYER = "agent"
AGENT_PREFIXES = ("agent_runtime",)
AGENT_IMPORTS = frozenset({AGENT_LAYER, "sip", "contract"})

_TIER_OF = {layer: index for index, tier in enumerate(TIERS) for layer in tier}
_PREFIXES = [(prefix, layer) for tier in TIERS for layer, owned in tier.items() for prefix in owned]
_PREFIXES += [(prefix, AGENT_LAYER) for prefix in AGENT_PREFIXES]
# The longest prefix decides: `agent_runtime.contract` before `agent_runtime`.
_PREFIXES.sort(key=lambda pair: len(pair[0]), reverse=True)


def layer_of(module: str) -> str | None:
    if module == "api":  # the package itself: empty, and no prefix of the layers below it
        return "foundation"
    for prefix, layer in _PREFIXES:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def may_import(importer: str, imported: str) -> bool:
    if importer == imported:
        return True
    if importer == AGENT_LAYER:
        return imported in AGENT_IMPORTS
    if imported == AGENT_LAYER:
        return importer == "entry"
    return _TIER_OF[importer] < _TIER_OF[imported]


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    parts = module.split(".")
    # `from . import x` in a package's __init__ is relative to the package itself.
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, name] if name else base)


def imported_modules(source: str, module: str, is_package: bool, known: frozenset[str]) -> set[str]:
    """Every project module `source` imports, at any depth (functions, branches)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve_relative(module, is_package, node.level, node.module)
            else:
                base = node.module or ""
            for alias in node.names:
                # `from api import jobs` imports the module `api.jobs`.
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {name for name in found if name.split(".")[0] in PACKAGES}


@dataclass(frozen=True, slots=True)
class Arrow:
    importer: str
    imported: str

    def __str__(self) -> str:
        return (
            f"{self.importer} ({layer_of(self.importer)}) imports "
            f"{self.imported} ({layer_of(self.imported)})"
        )


def wrong_arrows(module: str, imports: set[str]) -> list[Arrow]:
    """The imports of `module` that point up (or sideways), or from/to a module without a
    layer."""
    own = layer_of(module)
    wrong = []
    for name in sorted(imports):
        target = layer_of(name)
        if own is None or target is None or not may_import(own, target):
            wrong.append(Arrow(module, name))
    return wrong


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(name for name in project_modules() if layer_of(name) is None)
    assert not unplaced, f"give these modules a layer in tests/test_layers.py: {unplaced}"


def test_no_import_points_up() -> None:
    modules = project_modules()
    known = frozenset(modules)
    wrong = []
    for name, path in sorted(modules.items()):
        imports = imported_modules(path.read_text(), name, path.name == "__init__.py", known)
        wrong += wrong_arrows(name, imports)
    assert not wrong, "imports against the layers:\n" + "\n".join(map(str, wrong))


# The HTTP commands reach Outdial as any client would: through the API, never its layers.
HTTP_CLIENT = "api.cli.client"
HTTP_CLIENT_IMPORTS = ("api.cli.client", "agent_runtime.contract")


def test_the_http_commands_import_only_themselves_and_the_contract() -> None:
    modules = project_modules()
    known = frozenset(modules)
    wrong = []
    for name, path in sorted(modules.items()):
        if name != HTTP_CLIENT and not name.startswith(HTTP_CLIENT + "."):
            continue
        imports = imported_modules(path.read_text(), name, path.name == "__init__.py", known)
        wrong += [
            f"{name} imports {target}"
            for target in sorted(imports)
            if not any(target == p or target.startswith(p + ".") for p in HTTP_CLIENT_IMPORTS)
        ]
    assert not wrong, "the HTTP commands reach past the API:\n" + "\n".join(wrong)


# The check itself, on synthetic modules: each bad arrow is caught, each good one passes.
_KNOWN = frozenset(
    {"api.jobs", "api.jobs.dispatch", "api.store", "api.store.base", "api.store.messages"}
)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("api.store.fake", "from api.jobs.dispatch import dispatch"),
        ("api.store.fake", "def late():\n    from api.services.calls import place_call\n"),
        ("api.store.fake", "import api.routes.calls"),
        ("api.store.fake", "from api import jobs"),
        ("api.store.fake", "from ..jobs import dispatch"),
        ("api.store.fake", "from api.metrics import CALLS_ENDED"),
        ("api.relay.fake", "from api.jobs.relay import relay_call"),
        ("api.services.fake", "if True:\n    from api.routes.calls import router\n"),
        ("api.services.fake", "from api.jobs.dispatch import dispatch"),
        ("api.routes.fake", "from api.jobs.dispatch import dispatch"),
        ("sip.fake", "from api.settings import Settings"),
        ("agent_runtime.fake", "from api.store.base import Store"),
        ("api.services.fake", "from agent_runtime.server import main"),
        ("agent_runtime.contract", "from agent_runtime.server import main"),
        # a module without a layer: neither its imports nor imports of it are let through
        ("api.newthing", "from api.store.base import Store"),
        ("api.store.fake", "from api.newthing import x"),
    ],
)
def test_an_arrow_against_the_layers_is_caught(module: str, source: str) -> None:
    imports = imported_modules(source, module, False, _KNOWN)
    assert wrong_arrows(module, imports), f"{module}: {source!r} was let through"


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("api.jobs.fake", "from api.store.messages import DIAL_QUEUE"),
        ("api.jobs.fake", "from api.services.calls import place_call"),
        ("api.routes.fake", "from api.relay.views import events_with_delivery"),
        ("api.services.fake", "from api.store import base"),
        ("api.relay.fake", "from api.metrics import CALLBACK_DELIVERIES"),
        ("api.store.fake", "from .messages import encode_message"),
        ("api.store.fake", "from agent_runtime.contract import CallStatus\nimport sip"),
        ("agent_runtime.fake", "from sip import CallOutcome\nfrom agent_runtime import contract"),
        ("api.cli", "def agent():\n    from agent_runtime import run_cli\n"),
    ],
)
def test_an_arrow_along_the_layers_passes(module: str, source: str) -> None:
    known = _KNOWN | {"agent_runtime.contract", "sip"}
    imports = imported_modules(source, module, False, known)
    assert imports
    assert not wrong_arrows(module, imports)
