"""What `outdial api`, `outdial worker` and `outdial dev` check before they start.

Invariant: a process that cannot work refuses to start with one line on stderr naming what
failed, the variable to fix and its URL without a password (never a secret's value), and a
non-zero exit; never a traceback, never a process that runs on and logs the same connection
error forever. The checks run once, in the command line, before any server or worker
starts: nothing here is on a request's or a job's path.

Outside docker compose the host names of `.env.example` (`redis`, `livekit`, `api`) mean
nothing: a failure on such a name says so, with the value that works on a laptop.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

# python-dotenv comes with pydantic-settings, which reads the same file (Settings.env_file).
from dotenv import load_dotenv
from pydantic import ValidationError

from agent_runtime.environment import environment_problems
from api.settings import Settings, get_settings
from api.store.reachability import redis_unreachable
from sip.reachability import livekit_unreachable, redacted_url

ENV_FILE = ".env"
# docker-compose.yml's services: their names resolve only on the compose network.
COMPOSE_HOSTS = frozenset(
    {"redis", "livekit", "livekit-sip", "api", "worker", "agent", "ollama", "speaches"}
)
# What each variable is on one machine without Docker (the defaults of Settings).
LOCAL_VALUES = {
    "REDIS_URL": "redis://localhost:6379/0",
    "LIVEKIT_URL": "ws://localhost:7880",
    "OUTDIAL_PUBLIC_URL": "http://127.0.0.1:8000",
}


def load_env_file(path: str = ENV_FILE) -> None:
    """Puts `path`'s variables into this process's environment, so the agent worker (which
    reads only the environment) and a command's children see the `.env` the API reads;
    a variable already set wins."""
    if Path(path).is_file():
        load_dotenv(path, override=False)


def load_settings(program: str) -> Settings:
    """The settings, or exit 2 with one line naming each variable that does not parse
    (never a secret's value: `environment_problems`)."""
    try:
        return get_settings()
    except ValidationError as exc:
        _refuse(program, "invalid environment: " + environment_problems(exc))


def require_services(program: str, settings: Settings, *, livekit: bool = True) -> None:
    """Exit 2 with one line unless Redis answers and (with `livekit`) LiveKit's server is
    listening."""
    error = redis_unreachable(settings)
    if error is not None and settings.redis_sentinels:
        service, sentinels = settings.redis_sentinel_service, settings.redis_sentinels_text
        where = f"the primary of {service!r} through the sentinels {sentinels!r}"
        _refuse(program, f"cannot reach {where} (REDIS_SENTINELS): {error}")
    if error is not None:
        _refuse(program, _cannot_reach("Redis", "REDIS_URL", settings.redis_url, error))
    if not livekit:
        return
    error = livekit_unreachable(settings.livekit_url)
    if error is not None:
        _refuse(program, _cannot_reach("LiveKit", "LIVEKIT_URL", settings.livekit_url, error))


def public_url_warning(settings: Settings, port: int) -> str | None:
    """Why agents may not reach this API at OUTDIAL_PUBLIC_URL (they post events there), or
    None. Only a compose host name or a local address on another port is caught: behind a
    proxy the public URL's port is rightly not the API's."""
    url = settings.public_url
    if hint := compose_hint("OUTDIAL_PUBLIC_URL", url, port):
        return hint
    parts = urlsplit(url)
    if _is_local(parts.hostname or "") and (parts.port or 80) != port:
        return (
            f"OUTDIAL_PUBLIC_URL is {url} but the API listens on port {port}: agents post "
            f"their events there; set OUTDIAL_PUBLIC_URL=http://127.0.0.1:{port}"
        )
    return None


def compose_hint(variable: str, url: str, api_port: int = 8000) -> str | None:
    """What to set instead when `url` names a compose service this machine cannot resolve."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host not in COMPOSE_HOSTS or _resolves(host):
        return None
    local = LOCAL_VALUES.get(variable, "")
    if variable == "OUTDIAL_PUBLIC_URL":
        local = f"http://127.0.0.1:{api_port}"
    where = f"{host}:{parts.port}" if parts.port else host
    return (
        f"{variable} points at {where}, a docker compose host name; "
        f"set {variable}={local} to run without Docker"
    )


def _cannot_reach(what: str, variable: str, url: str, error: str) -> str:
    line = f"cannot reach {what} at {redacted_url(url)} ({variable}): {error}"
    hint = compose_hint(variable, url)
    return f"{line}; {hint}" if hint else line


def _refuse(program: str, message: str) -> NoReturn:
    print(f"outdial {program}: {message}", file=sys.stderr)
    raise SystemExit(2)


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return True


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
