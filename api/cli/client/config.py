"""Where the HTTP commands find the API and their credentials.

Each value comes from its flag, else the environment (`OUTDIAL_API_URL`,
`OUTDIAL_WORKSPACE_ID`, `OUTDIAL_API_KEY`, `OUTDIAL_ADMIN_TOKEN`), else the file
`outdial login` wrote ($XDG_CONFIG_HOME/outdial/config.json, or ~/.config/outdial/...), which
holds a workspace's key and so is written readable by its owner only (0600). The admin token
is never written there: it is the operator's, not a workspace's.

Invariant: the saved key goes only to the API it was saved for. A URL from the flag or the
environment other than the saved one takes its workspace and key from the flag or the
environment too, never from the file (a `.env` or a shell naming another host must not
receive it). These commands do not read `./.env` (api/cli/main.py).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_API_URL = "http://localhost:8000"


class ConfigError(Exception):
    """The file cannot be written: one line naming it and why."""


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "outdial" / "config.json"


def read_config() -> dict[str, str]:
    """The saved values (empty when there is no file, or it does not parse)."""
    try:
        saved = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in saved.items() if isinstance(v, str)} if isinstance(saved, dict) else {}


def write_config(values: dict[str, str]) -> Path:
    """Replace the file with `values`, created 0600 (never readable by others, not even
    for a moment: the mode is set when the file is created)."""
    path = config_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_suffix(".tmp")
        partial.unlink(missing_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(values, handle, indent=2)
        os.replace(partial, path)
    except OSError as exc:
        raise ConfigError(f"cannot save the login in {path}: {exc.strerror or exc}") from exc
    return path


@dataclass(frozen=True, slots=True)
class Target:
    api_url: str
    # Whether the URL was chosen (flag, environment, login) rather than the default.
    api_url_given: bool
    workspace_id: str | None
    api_key: str | None
    admin_token: str | None


def _first(*values: str | None) -> str | None:
    return next((value for value in values if value), None)


def resolve(args: argparse.Namespace) -> Target:
    saved = read_config()
    saved_url = saved.get("api_url")
    chosen = _first(args.api_url, os.environ.get("OUTDIAL_API_URL"))
    api_url = (chosen or saved_url or DEFAULT_API_URL).rstrip("/")
    if api_url != (saved_url or DEFAULT_API_URL).rstrip("/"):
        saved = {}  # the saved key is for the saved API only
    return Target(
        api_url=api_url,
        api_url_given=bool(chosen or saved_url),
        workspace_id=_first(
            args.workspace, os.environ.get("OUTDIAL_WORKSPACE_ID"), saved.get("workspace_id")
        ),
        api_key=_first(args.key, os.environ.get("OUTDIAL_API_KEY"), saved.get("api_key")),
        admin_token=_first(args.admin_token, os.environ.get("OUTDIAL_ADMIN_TOKEN")),
    )
