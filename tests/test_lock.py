"""The lock agrees with pyproject.toml, and the environment the suite runs in is the lock.

Invariant: a fresh clone installs exactly what `requirements/` names (scripts/venv for the
suite, requirements/server.txt for the image), and every version named there satisfies the
range pyproject.toml states. `scripts/lock` writes both files; these tests fail when
pyproject.toml moved without it (a range the locked version does not satisfy, a dependency
with no lock entry, a locked direct dependency pyproject.toml no longer names), when the
image's lock drifts from the suite's, or when the virtualenv holds other versions than the
lock (a stale `.venv`).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "requirements"
PROJECT_VIA = "outdial (pyproject.toml)"
BUILD_VIA = "-r requirements/build.in"


@dataclass(frozen=True)
class LockEntry:
    name: str
    version: str
    marker: str | None
    hashes: tuple[str, ...]
    via: frozenset[str]

    def applies_here(self) -> bool:
        return self.marker is None or Marker(self.marker).evaluate()


_ENTRY = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)"
    r"(?: ; (?P<marker>[^\\]+?))?\s*\\?$"
)


def parse_lock(text: str) -> dict[str, list[LockEntry]]:
    """uv's requirements output: one `name==version ; marker` line, its hashes, its `# via`."""
    entries: dict[str, list[LockEntry]] = {}
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    for block in blocks:
        lines = block.splitlines()
        match = _ENTRY.match(lines[0]) if lines else None
        if match is None:
            continue
        via = _via(lines[1:])
        entry = LockEntry(
            name=canonicalize_name(match["name"]),
            version=match["version"],
            marker=match["marker"],
            hashes=tuple(re.findall(r"--hash=(sha256:[0-9a-f]{64})", block)),
            via=frozenset(via),
        )
        entries.setdefault(entry.name, []).append(entry)
    return entries


def _via(lines: list[str]) -> set[str]:
    comments = [line.strip().lstrip("#").strip() for line in lines if line.strip().startswith("#")]
    if comments and comments[0].startswith("via "):
        return {comments[0].removeprefix("via ").strip()}
    return {comment for comment in comments[1:] if comment}


def project_requirements(pyproject: dict[str, Any], extras: tuple[str, ...]) -> list[Requirement]:
    """What the lock is resolved from: dependencies, the named extras, the build backend."""
    texts = list(pyproject["project"]["dependencies"])
    for extra in extras:
        texts += pyproject["project"]["optional-dependencies"][extra]
    texts += pyproject["build-system"]["requires"]
    return [Requirement(text) for text in texts]


def disagreements(requirements: list[Requirement], lock: dict[str, list[LockEntry]]) -> list[str]:
    """Every way the lock fails the requirements it was meant to be resolved from."""
    problems = []
    named = {canonicalize_name(req.name) for req in requirements}
    for req in requirements:
        entries = lock.get(canonicalize_name(req.name), [])
        if not entries:
            problems.append(f"{req}: no lock entry")
        problems += [
            f"{req}: the lock has {entry.name}=={entry.version}"
            for entry in entries
            if not req.specifier.contains(entry.version, prereleases=True)
        ]
    for name, entries in lock.items():
        direct = any(PROJECT_VIA in entry.via or BUILD_VIA in entry.via for entry in entries)
        if direct and name not in named:
            problems.append(f"{name}: locked as a direct dependency pyproject.toml does not name")
        problems += [f"{name}=={entry.version}: no hash" for entry in entries if not entry.hashes]
    return problems


def load_pyproject(text: str | None = None) -> dict[str, Any]:
    return tomllib.loads(text if text is not None else (ROOT / "pyproject.toml").read_text())


def load_lock(name: str) -> dict[str, list[LockEntry]]:
    return parse_lock((LOCKS / name).read_text())


@pytest.mark.parametrize(("lock_file", "extras"), [("dev.txt", ("dev",)), ("server.txt", ())])
def test_lock_satisfies_pyproject(lock_file: str, extras: tuple[str, ...]) -> None:
    lock = load_lock(lock_file)
    assert len(lock) > 50, "the lock parsed to almost nothing: has uv's format changed?"
    assert disagreements(project_requirements(load_pyproject(), extras), lock) == []


def test_server_lock_is_the_dev_lock_without_the_dev_extras() -> None:
    """The image ships the versions the suite ran on, and none of the dev tools."""
    dev, server = load_lock("dev.txt"), load_lock("server.txt")
    for name, entries in server.items():
        assert [(e.version, e.marker, e.hashes) for e in entries] == [
            (e.version, e.marker, e.hashes) for e in dev[name]
        ], name
    dev_extras = {
        canonicalize_name(Requirement(text).name)
        for text in load_pyproject()["project"]["optional-dependencies"]["dev"]
    }
    # A dev extra is in the image's lock only when a server package needs it (packaging, ...)
    for name in dev_extras & set(server):
        needed_by = set().union(*(entry.via for entry in server[name]))
        assert needed_by - {PROJECT_VIA, "-c requirements/dev.txt"}, f"{name}: a dev tool"
    assert {"pytest", "mypy", "ruff", "uv"}.isdisjoint(server)


def test_installed_environment_is_the_lock() -> None:
    """Walks what pyproject.toml asks for through the installed metadata: each distribution
    reached is locked, at the version installed (a stale virtualenv fails here)."""
    lock = load_lock("dev.txt")
    pending = [
        req
        for req in project_requirements(load_pyproject(), ("dev",))
        if req.marker is None or req.marker.evaluate({"extra": ""})  # not for this platform
    ]
    seen: set[str] = set()
    problems = []
    while pending:
        req = pending.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        installed = metadata.version(req.name)
        here = [entry for entry in lock.get(name, []) if entry.applies_here()]
        if not here:
            problems.append(f"{name}=={installed} is installed and needed, but not locked")
        elif here[0].version != installed:
            problems.append(f"{name}=={installed} is installed, the lock has {here[0].version}")
        for text in metadata.requires(req.name) or []:
            dependency = Requirement(text)
            wanted = [{"extra": extra} for extra in req.extras] or [{"extra": ""}]
            if dependency.marker is None or any(dependency.marker.evaluate(env) for env in wanted):
                pending.append(dependency)
    assert len(seen) > 50
    assert problems == []


def test_the_environment_holds_nothing_the_lock_does_not_name() -> None:
    """scripts/venv removes what an earlier lock installed (pip itself and Outdial stay)."""
    locked = set(load_lock("dev.txt"))
    installed = {canonicalize_name(d.metadata["Name"]) for d in metadata.distributions()}
    assert installed - locked - {"pip", "outdial"} == set()


# The checks above are only worth something if they fail on a lock that disagrees: each case
# edits pyproject.toml the way a change without `scripts/lock` would, and must be caught.
MOVED_PYPROJECT = [
    ('"phonenumbers>=8.13"', '"phonenumbers>=99"', "phonenumbers>=99: the lock has phonenumbers=="),
    (
        '"aiohttp>=3.10",',
        '"aiohttp>=3.10",\n    "left-pad-never-locked>=1",',
        "left-pad-never-locked>=1: no lock entry",
    ),
    ('"prometheus-client>=0.20",', "", "prometheus-client: locked as a direct dependency"),
    ('requires = ["setuptools>=68"]', 'requires = ["setuptools<1"]', "setuptools<1: the lock has"),
]


@pytest.mark.parametrize(("old", "new", "expected"), MOVED_PYPROJECT)
def test_a_pyproject_moved_without_the_lock_is_caught(old: str, new: str, expected: str) -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert old in text
    moved = project_requirements(load_pyproject(text.replace(old, new)), ("dev",))
    problems = disagreements(moved, load_lock("dev.txt"))
    assert any(problem.startswith(expected) for problem in problems), problems


def test_an_unhashed_entry_is_caught() -> None:
    text = (LOCKS / "server.txt").read_text()
    unhashed = re.sub(r"(\nredis==[^\n]+?) \\\n(    --hash=[^\n]+\n)+", r"\1\n", text)
    assert unhashed != text
    problems = disagreements(project_requirements(load_pyproject(), ()), parse_lock(unhashed))
    assert any(
        problem.startswith("redis==") and problem.endswith("no hash") for problem in problems
    )
