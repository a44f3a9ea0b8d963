"""The `outdial` HTTP commands (api/cli/client) as a user runs them: real processes against a
live API on loopback (real Redis, the LiveKit test server), their output, exit codes and
error lines; `call --wait` follows a call to its end through the event stream."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from api.cli.client import calls
from api.cli.client.config import Target
from api.cli.client.http import Api
from api.security import event_token
from api.settings import Settings
from api.store.keys import Keys
from tests.conftest import Tenant
from tests.support import ADMIN_TOKEN, ROOT, ApiServer, async_wait_until, free_port

CALLEE = "+15105550123"


@pytest.fixture
def cli_env(api_server: ApiServer, tmp_path: Path) -> dict[str, str]:
    """A user's shell: the API's URL, a config directory of its own, no credentials."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "OUTDIAL_API_URL": api_server.url,
    }


def _as(tenant: Tenant, env: dict[str, str]) -> dict[str, str]:
    return env | {"OUTDIAL_WORKSPACE_ID": tenant.id, "OUTDIAL_API_KEY": tenant.api_key}


def outdial(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # cwd: no `.env` of the repository's is read
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env, cwd=env["HOME"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def ok(env: dict[str, str], *args: str) -> str:
    result = outdial(env, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _exports(line: str) -> dict[str, str]:
    words = shlex.split(line)
    assert words[0] == "export", line
    return dict(word.split("=", 1) for word in words[1:])


def test_workspaces_through_the_admin_api(cli_env: dict[str, str]) -> None:
    admin = cli_env | {"OUTDIAL_ADMIN_TOKEN": ADMIN_TOKEN}
    created = _exports(ok(admin, "workspace", "create", "--name", "demo", "--exports"))
    assert created["WS"].startswith("ws_") and created["KEY"].startswith("od_")
    listed = json.loads(ok(admin, "workspace", "list", "--json"))["workspaces"]
    assert [w["name"] for w in listed if w["workspaceId"] == created["WS"]] == ["demo"]
    alias = next(w["alias"] for w in listed if w["workspaceId"] == created["WS"])
    table = ok(admin, "workspace", "list").splitlines()
    assert table[0].split()[:2] == ["WORKSPACE", "ALIAS"]
    assert [created["WS"], str(alias), "demo"] in [row.split()[:3] for row in table]
    shown = ok(admin, "workspace", "create", "--name", "shown")
    assert "/hooks/hk_" in shown and "integration url" in shown
    as_demo = cli_env | {"OUTDIAL_WORKSPACE_ID": created["WS"], "OUTDIAL_API_KEY": created["KEY"]}
    assert ok(as_demo, "agents", "list").split() == ["AGENT", "NAME", "WORKER", "CREATED"]

    disabled = json.loads(ok(admin, "workspace", "disable", created["WS"], "--json"))
    assert disabled["disabled"] is True
    refused = outdial(as_demo, "agents", "list")
    assert refused.returncode == 2
    assert refused.stderr.startswith("outdial: 403 WORKSPACE_DISABLED: ")
    assert refused.stderr.count("\n") == 1 and refused.stdout == ""
    # without the token, the admin API is not even asked
    missing = outdial(cli_env, "workspace", "list")
    assert missing.returncode == 2 and "OUTDIAL_ADMIN_TOKEN" in missing.stderr


def test_agents_numbers_and_calls(
    cli_env: dict[str, str], tenant: Tenant, lk: Any, tmp_path: Path
) -> None:
    env = _as(tenant, cli_env)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You remind {{firstName}} of the appointment.")
    agent = _exports(
        ok(env, "agents", "create", "--name", "reminder", "--instructions", f"@{prompt}",
           "--body", '{"ring_timeout_seconds": 20}', "--exports")
    )["AGENT"]  # fmt: skip
    shown = json.loads(ok(env, "agents", "show", agent, "--json"))
    assert shown["instructions"] == prompt.read_text() and shown["ringTimeoutSeconds"] == 20
    assert agent in ok(env, "agents", "list")

    added = ok(env, "numbers", "add", "+15105550100", "--trunk-address", "sip.example.net")
    assert "+15105550100" in added and "yes" in added  # the first number is the default
    numbers = json.loads(ok(env, "numbers", "list", "--json"))["numbers"]
    assert [n["number"] for n in numbers] == ["+15105550100"]
    assert ok(env, "numbers", "list").splitlines()[1].split()[:2] == [
        "num_15105550100",
        "+15105550100",
    ]

    placed = ok(
        env, "call", CALLEE, "--agent", agent, "--var", "firstName=Ada", "--meta", "crm=42",
        "--json",
    )  # fmt: skip
    call_id = json.loads(placed)["callId"]
    call = json.loads(ok(env, "calls", "show", call_id, "--json"))
    assert call["call"]["dynamicVariables"] == {"firstName": "Ada"}
    assert call["call"]["metadata"] == {"crm": "42"}
    assert [e["type"] for e in call["events"]] == ["call.queued"]
    readable = ok(env, "calls", "show", call_id)
    assert "call.queued" in readable and call_id in readable
    assert call_id in ok(env, "calls", "list", "--status", "queued")
    assert call_id not in ok(env, "calls", "list", "--status", "completed")
    page = json.loads(ok(env, "calls", "list", "--json"))
    assert [c["callId"] for c in page["calls"]] == [call_id]

    # the workspace's events so far, then the stream ends (--max-seconds)
    tail = ok(env, "calls", "tail", "--after", "0", "--max-seconds", "1", "--json")
    assert [(e["callId"], e["type"]) for e in map(json.loads, tail.splitlines())] == [
        (call_id, "call.queued")
    ]

    bad = outdial(env, "call", CALLEE, "--agent", "nope")
    assert bad.returncode == 2 and bad.stderr.startswith("outdial: 404 INVALID_AGENT: ")
    unusable = outdial(env, "call", CALLEE, "--agent", agent, "--var", "firstName")
    assert unusable.returncode == 2
    assert unusable.stderr == "outdial: --var takes name=value, not 'firstName'\n"
    missing = outdial(env, "agents", "create", "--name", "x", "--instructions", "@nowhere.txt")
    assert missing.returncode == 2 and missing.stderr.startswith("outdial: --instructions: ")


def test_a_wrong_key_or_no_api_is_one_line(cli_env: dict[str, str], tenant: Tenant) -> None:
    wrong = outdial(_as(tenant, cli_env), "calls", "list", "--key", "od_wrong")
    assert wrong.returncode == 2, wrong.stderr
    assert wrong.stderr.startswith("outdial: 401 UNAUTHORIZED: ")
    assert wrong.stderr.count("\n") == 1

    nowhere = f"http://127.0.0.1:{free_port()}"
    gone = outdial(_as(tenant, cli_env), "agents", "list", "--api-url", nowhere)
    assert gone.returncode == 3
    assert gone.stderr.startswith(f"outdial: cannot reach the Outdial API at {nowhere}: ")
    assert "connection refused" in gone.stderr and gone.stderr.count("\n") == 1


def test_login_saves_the_credentials_for_the_owner_only(
    cli_env: dict[str, str], tenant: Tenant
) -> None:
    config = Path(cli_env["XDG_CONFIG_HOME"]) / "outdial" / "config.json"
    refused = outdial(cli_env, "login", "--workspace", tenant.id, "--key", "od_wrong")
    assert refused.returncode == 2 and not config.exists()

    ok(cli_env, "login", "--workspace", tenant.id, "--key", tenant.api_key)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    saved = json.loads(config.read_text())
    assert saved == {
        "api_url": cli_env["OUTDIAL_API_URL"],
        "workspace_id": tenant.id,
        "api_key": tenant.api_key,
    }
    # no URL and no credentials in the environment: the saved ones are used
    bare = {name: value for name, value in cli_env.items() if name != "OUTDIAL_API_URL"}
    assert ok(bare, "agents", "list").startswith("AGENT")


class WebPage:
    """A plain web server on loopback (not Outdial): every path answers an HTML page, 404
    under /missing; it keeps the headers of each request it got."""

    def __init__(self) -> None:
        seen = self.seen = []  # type: list[dict[str, str]]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(dict(self.headers))
                page = b"<html>\n<body>\nIt works!\n</body>\n</html>\n"
                self.send_response(404 if "/missing" in self.path else 200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def web_page() -> Iterator[WebPage]:
    page = WebPage()
    thread = threading.Thread(target=page.server.serve_forever, daemon=True)
    thread.start()
    yield page
    page.server.shutdown()
    page.server.server_close()
    thread.join(timeout=10)


def test_the_saved_key_goes_only_to_the_saved_api(
    cli_env: dict[str, str], tenant: Tenant, web_page: WebPage
) -> None:
    ok(cli_env, "login", "--workspace", tenant.id, "--key", tenant.api_key)
    bare = {name: value for name, value in cli_env.items() if name != "OUTDIAL_API_URL"}
    # a `.env` where the command runs is not read: the saved URL is used
    (Path(bare["HOME"]) / ".env").write_text(f"OUTDIAL_API_URL={web_page.url}\n")
    assert ok(bare, "agents", "list").startswith("AGENT")
    # another URL, from the environment or the flag: the saved key is not sent there
    by_env = bare | {"OUTDIAL_API_URL": web_page.url}
    for env, flag in [(by_env, []), (bare, ["--api-url", web_page.url])]:
        result = outdial(env, "agents", "list", *flag)
        assert result.returncode == 2 and "no workspace credentials" in result.stderr
    assert web_page.seen == []
    # its own key, given with it, is
    mine = bare | {"OUTDIAL_WORKSPACE_ID": "ws_other", "OUTDIAL_API_KEY": "od_other"}
    outdial(mine, "agents", "list", "--api-url", web_page.url)
    assert [seen.get("x-api-key") for seen in web_page.seen] == ["od_other"]


def test_a_server_that_is_not_outdial_is_one_line(
    cli_env: dict[str, str], tenant: Tenant, web_page: WebPage
) -> None:
    env = _as(tenant, cli_env) | {"OUTDIAL_API_URL": web_page.url}
    for args in (["agents", "list"], ["calls", "tail", "--max-seconds", "1"]):
        result = outdial(env, *args)
        assert result.returncode == 3, result.stderr
        assert result.stderr.startswith(f"outdial: cannot reach the Outdial API at {web_page.url}")
        assert "not an Outdial API" in result.stderr and result.stderr.count("\n") == 1
    missing = outdial(env | {"OUTDIAL_API_URL": web_page.url + "/missing"}, "agents", "list")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert missing.stderr.startswith("outdial: 404 HTTP_ERROR: <html> <body> It works!")


def test_a_login_that_cannot_be_saved_is_one_line(cli_env: dict[str, str], tenant: Tenant) -> None:
    blocked = Path(cli_env["HOME"]) / "not-a-directory"
    blocked.write_text("")
    env = cli_env | {"XDG_CONFIG_HOME": str(blocked)}
    result = outdial(env, "login", "--workspace", tenant.id, "--key", tenant.api_key)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"outdial: cannot save the login in {blocked}/outdial/")
    assert result.stderr.count("\n") == 1


def test_workspace_create_at_a_chosen_url_needs_the_admin_token(
    cli_env: dict[str, str], tenant: Tenant
) -> None:
    # a Redis it could write into: it must not, the URL says where workspaces are made
    from tests.conftest import REDIS_URL

    redis = {"REDIS_URL": REDIS_URL, "OUTDIAL_REDIS_PREFIX": "odtest-cli-never-written"}
    result = outdial(cli_env | redis, "workspace", "create", "--name", "x")
    assert result.returncode == 2 and result.stdout == "", result.stdout
    assert result.stderr == (
        f"outdial: workspace create at {cli_env['OUTDIAL_API_URL']} needs --admin-token "
        "(or OUTDIAL_ADMIN_TOKEN)\n"
    )
    ok(cli_env, "login", "--workspace", tenant.id, "--key", tenant.api_key)
    bare = {name: value for name, value in cli_env.items() if name != "OUTDIAL_API_URL"}
    saved = outdial(bare | redis, "workspace", "create", "--name", "x")
    assert saved.returncode == 2 and "needs --admin-token" in saved.stderr


async def _agent_event(
    http: httpx.AsyncClient, settings: Settings, call_id: str, kind: str, data: dict[str, Any]
) -> None:
    token = event_token(call_id, settings.event_signing_key)
    response = await http.post(
        f"/v1/internal/calls/{call_id}/events",
        json={"type": kind, "data": data},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text


# `outdial` as a terminal's foreground process runs it: Ctrl-C (SIGINT) at its default. A
# test run started in the background (`.ci/run &` from a script) ignores SIGINT, and a child
# inherits an ignored signal, so the command puts the default back before it starts.
_AS_IN_A_TERMINAL = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'outdial'; runpy.run_module('api.cli', run_name='__main__', alter_sys=True)"
)


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _AS_IN_A_TERMINAL, *args], env=env, cwd=env["HOME"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("end", ["completed", "canceled"])
async def test_call_wait_follows_the_call_to_its_end(
    cli_env: dict[str, str], tenant: Tenant, settings: Settings, lk: Any, end: str
) -> None:
    agent = await tenant.create_agent()
    await tenant.register_number()
    waiting = _start(_as(tenant, cli_env), "call", CALLEE, "--agent", agent["id"], "--wait")
    try:
        assert waiting.stdout is not None
        accepted = waiting.stdout.readline()  # blocking: the API runs in its own thread
        assert accepted.startswith("call "), waiting.stderr.read() if waiting.stderr else ""
        call_id = accepted.split()[1]
        assert "call.queued" in waiting.stdout.readline()  # following the call now
        if end == "completed":
            await _agent_event(tenant.http, settings, call_id, "call.answered", {})
            await _agent_event(
                tenant.http, settings, call_id, "call.ended",
                {"status": "completed", "reason": "hangup_by_callee"},
            )  # fmt: skip
        else:
            canceled = await tenant.request("POST", f"/v1/api/call/{call_id}/cancel")
            assert canceled.status_code == 200, canceled.text
        rest, errors = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    expected = ["call.answered", "call.ended"] if end == "completed" else ["call.canceled"]
    assert [line.split()[3] for line in rest.splitlines()] == expected, rest + errors
    assert waiting.returncode == (0 if end == "completed" else 1), errors


async def test_calls_tail_follows_a_call_live_until_interrupted(
    cli_env: dict[str, str], tenant: Tenant, lk: Any
) -> None:
    agent = await tenant.create_agent()
    await tenant.register_number()
    placed = await tenant.place_call(to=CALLEE, call_agent_id=agent["id"])
    call_id = placed.json()["callId"]
    # PYTHONFAULTHANDLER: should Ctrl-C not end it, SIGABRT makes it print where it waits.
    env = _as(tenant, cli_env) | {"PYTHONFAULTHANDLER": "1"}
    tail = _start(env, "calls", "tail", "--call", call_id, "--json")
    try:
        assert tail.stdout is not None
        assert json.loads(tail.stdout.readline())["type"] == "call.queued"
        await tenant.request("POST", f"/v1/api/call/{call_id}/cancel")
        live = json.loads(tail.stdout.readline())
        assert (live["callId"], live["type"], live["status"]) == (
            call_id,
            "call.canceled",
            "canceled",
        )
        tail.send_signal(signal.SIGINT)
        try:
            _, errors = tail.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            tail.send_signal(signal.SIGABRT)
            _, stacks = tail.communicate(timeout=10)
            message = f"Ctrl-C did not end `calls tail`; it waited in:\n{stacks}"
            raise AssertionError(message) from None
    finally:
        tail.kill()
    assert tail.returncode == 130 and errors == ""


async def test_call_wait_ends_on_the_call_s_status_when_its_end_never_streams(
    api_server: ApiServer,
    tenant: Tenant,
    settings: Settings,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # In this process, to cut the status check's interval; the API runs in its own thread.
    monkeypatch.setattr(calls, "STATUS_CHECK_SECONDS", 1)
    agent = await tenant.create_agent()
    await tenant.register_number()
    target = Target(api_server.url, True, tenant.id, tenant.api_key, None)
    args = argparse.Namespace(
        to=CALLEE, agent=agent["id"], var=[], meta=[], callback=None,
        from_number=None, campaign=None, json=True, wait=True,
    )  # fmt: skip
    async with Api(target) as api:
        waiting = asyncio.create_task(calls._call(api, args))

        async def placed() -> list[dict[str, Any]]:
            return (await tenant.request("GET", "/v1/api/calls")).json()["calls"]

        await async_wait_until(placed, what="the call to be placed")
        call_id = (await placed())[0]["callId"]
        # The call ends with no event in the feed (as when the feed's cap trimmed it).
        redis_client.hset(Keys(settings.redis_prefix).call(call_id), "status", "completed")
        assert await asyncio.wait_for(waiting, timeout=20) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert shown[0]["callId"] == call_id and shown[1]["type"] == "call.queued"
