"""Each entry point refuses a Redis or LiveKit it cannot reach with one line, and `outdial
api` logs every line, uvicorn's included, as JSON when asked.

The commands run as an operator runs them: `python -m api.cli ...` in a directory of its
own (so no `.env` of this checkout leaks in), with only the variables given here. Each
refusal must be one line on stderr naming the variable, with the URL's password hidden, a
non-zero exit, and no traceback.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, Field, ValidationError

from agent_runtime.environment import environment_problems
from api.cli import preflight
from api.cli.preflight import compose_hint, public_url_warning
from api.settings import Settings
from sip.reachability import livekit_unreachable
from tests.support import ROOT, TEST_API_KEY, TEST_API_SECRET, free_port, wait_until

PASSWORD = "hunter2-never-shown"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(tmp_path: Path, livekit_url: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "LIVEKIT_URL": livekit_url,
        "LIVEKIT_API_KEY": TEST_API_KEY,
        "LIVEKIT_API_SECRET": TEST_API_SECRET,
        "OUTDIAL_REDIS_PREFIX": f"odtest-start-{uuid.uuid4().hex[:8]}",
        "OUTDIAL_WORKER_METRICS_PORT": "0",
        "OPENAI_API_KEY": "sk-never-used",
        **extra,
    }


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], variable: str) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"({variable})" in result.stderr, result.stderr
    assert PASSWORD not in result.stderr
    return result.stderr


@pytest.mark.parametrize(
    "command", [["api"], ["worker"], ["dev"], ["workspace", "create", "--name", "x"]]
)
def test_a_closed_redis_port_is_one_line(
    command: list[str], tmp_path: Path, livekit_server: Any
) -> None:
    redis_url = f"redis://:{PASSWORD}@127.0.0.1:{closed_port()}/0"
    env = base_env(tmp_path, livekit_server.url, REDIS_URL=redis_url)
    line = assert_one_line_refusal(run(command, env, tmp_path), "REDIS_URL")
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{redis_url.rsplit(':', 1)[1]}" in line


class _BadGateway(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(502)

    def log_message(self, *_: Any) -> None:
        pass


def test_a_proxy_s_answer_does_not_pass_for_livekit(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _BadGateway)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.server_port}")
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        assert livekit_unreachable(f"ws://127.0.0.1:{closed_port()}") is not None
    finally:
        proxy.shutdown()
        proxy.server_close()


@pytest.mark.parametrize("command", [["api"], ["worker"], ["agent", "start"], ["agent", "dev"]])
def test_an_unreachable_livekit_is_one_line(
    command: list[str], tmp_path: Path, redis_client: Any
) -> None:
    from tests.conftest import REDIS_URL

    env = base_env(tmp_path, f"ws://127.0.0.1:{closed_port()}", REDIS_URL=REDIS_URL)
    line = assert_one_line_refusal(run(command, env, tmp_path), "LIVEKIT_URL")
    assert "cannot reach LiveKit at ws://127.0.0.1:" in line


def test_the_env_file_reaches_every_command(tmp_path: Path) -> None:
    """`.env` in the working directory is read by `outdial` itself, so the agent worker (which
    reads only its environment) sees it like the API; a variable already set wins."""
    (tmp_path / ".env").write_text(
        f"LIVEKIT_URL=ws://127.0.0.1:{closed_port()}\nOPENAI_API_KEY=sk-from-env-file\n"
        "OUTDIAL_AGENT_NAME=from-env-file\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    # the key from .env passes the model-key check; its LIVEKIT_URL is the one refused
    assert_one_line_refusal(run(["agent", "start"], env, tmp_path), "LIVEKIT_URL")
    env["OUTDIAL_AGENT_LOAD_THRESHOLD"] = "not-a-number"  # the environment wins over .env
    result = run(["agent", "start"], env, tmp_path)
    assert result.returncode == 2 and "OUTDIAL_AGENT_LOAD_THRESHOLD" in result.stderr


def test_a_bad_variable_is_one_line(tmp_path: Path, livekit_server: Any) -> None:
    env = base_env(tmp_path, livekit_server.url, OUTDIAL_WORKER_THREADS="many")
    result = run(["worker"], env, tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "OUTDIAL_WORKER_THREADS='many'" in result.stderr and "Traceback" not in result.stderr


def test_a_refusal_never_shows_a_secret(tmp_path: Path) -> None:
    # a rule across variables: pydantic hands it every setting as its input
    token = "admin-token-never-shown"
    env = base_env(
        tmp_path, "ws://127.0.0.1:1", OUTDIAL_WORKER_TIMEOUT_MS="5000", OUTDIAL_ADMIN_TOKEN=token
    )
    result = run(["worker"], env, tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "OUTDIAL_WORKER_TIMEOUT_MS must be at most a quarter" in result.stderr
    for secret in (TEST_API_SECRET, token, "sk-never-used"):
        assert secret not in result.stderr

    class Variables(BaseModel):
        token: int = Field(alias="OUTDIAL_METRICS_TOKEN")
        key: int = Field(alias="OUTDIAL_MODEL_KEY_WS1_MAIN")
        url: int = Field(alias="REDIS_URL")
        threads: int = Field(alias="OUTDIAL_WORKER_THREADS")

    with pytest.raises(ValidationError) as bad:
        Variables.model_validate(
            {
                "OUTDIAL_METRICS_TOKEN": token,
                "OUTDIAL_MODEL_KEY_WS1_MAIN": PASSWORD,
                "REDIS_URL": f"redis://:{PASSWORD}@cache:6379/0",
                "OUTDIAL_WORKER_THREADS": "many",
            }
        )
    line = environment_problems(bad.value)
    assert token not in line and PASSWORD not in line and "\n" not in line
    assert "OUTDIAL_METRICS_TOKEN: Input should be a valid integer" in line
    assert "OUTDIAL_MODEL_KEY_WS1_MAIN: " in line
    assert "REDIS_URL='redis://:***@cache:6379/0': " in line
    assert "OUTDIAL_WORKER_THREADS='many': " in line


def test_compose_host_names_say_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether `redis` resolves depends on the machine (inside compose it does): the
    resolution is fixed here, the refusal's wording is what runs."""
    monkeypatch.setattr(preflight, "_resolves", lambda host: False)
    line = preflight._cannot_reach(
        "Redis", "REDIS_URL", "redis://:pw@redis:6379/0", "Name or service not known"
    )
    assert line == (
        "cannot reach Redis at redis://:***@redis:6379/0 (REDIS_URL): Name or service not "
        "known; REDIS_URL points at redis:6379, a docker compose host name; "
        "set REDIS_URL=redis://localhost:6379/0 to run without Docker"
    )
    assert compose_hint("LIVEKIT_URL", "ws://127.0.0.1:7880") is None  # not a compose name
    monkeypatch.setattr(preflight, "_resolves", lambda host: True)  # inside compose
    assert compose_hint("REDIS_URL", "redis://redis:6379/0") is None


def test_the_public_url_must_follow_the_api_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "_resolves", lambda host: False)  # outside compose

    def warning(url: str, port: int) -> str | None:
        return public_url_warning(Settings(OUTDIAL_PUBLIC_URL=url), port)

    assert warning("http://127.0.0.1:8000", 8000) is None
    assert warning("https://outdial.example.com", 8000) is None  # behind a proxy
    moved = warning("http://localhost:8000", 9000)
    assert moved is not None and "OUTDIAL_PUBLIC_URL=http://127.0.0.1:9000" in moved
    compose = warning("http://api:8000", 9000)
    assert compose is not None and "a docker compose host name" in compose


def test_api_logs_are_json_lines_uvicorn_included(
    tmp_path: Path, livekit_server: Any, redis_client: Any
) -> None:
    from tests.conftest import REDIS_URL

    port = free_port()
    env = base_env(
        tmp_path,
        livekit_server.url,
        REDIS_URL=REDIS_URL,
        OUTDIAL_LOG_JSON="true",
        OUTDIAL_LOG_LEVEL="INFO",
        OUTDIAL_PUBLIC_URL="http://127.0.0.1:1",  # a warning line, logged as JSON too
    )
    api = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    lines: list[bytes] = []

    def collect(stream: Any) -> None:
        lines.extend(stream)

    readers = [threading.Thread(target=collect, args=(s,)) for s in (api.stdout, api.stderr)]
    for reader in readers:
        reader.start()
    try:

        def answered() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answered, timeout=60, what="the API to answer")
        assert httpx.get(f"http://127.0.0.1:{port}/v1/api/calls", timeout=5).status_code == 401
    finally:
        api.terminate()
        api.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=10)
    parsed = [json.loads(line) for line in lines]  # every line, or this raises
    access = [entry for entry in parsed if entry["logger"] == "uvicorn.access"]
    assert {(e["method"], e["path"], e["status"]) for e in access} >= {
        ("GET", "/healthz", 200),
        ("GET", "/v1/api/calls", 401),
    }
    assert any(e["logger"] == "uvicorn.error" for e in parsed)
    assert any("OUTDIAL_PUBLIC_URL" in e["msg"] for e in parsed)
