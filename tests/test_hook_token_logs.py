"""No log line carries an integration token (issue 22): requests under `/hooks/<token>` are
logged as `/hooks/<redacted>/…`, by `outdial api` (its JSON lines) and by a uvicorn that
keeps its own log config. Real servers on loopback; the token is a real workspace's."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.logs import ACCESS_LOGGER, HookTokenRedaction, configure_logging
from api.settings import Settings
from tests.conftest import Tenant
from tests.support import ROOT, free_port, settings_env, wait_until

# What a vendor integration sends under the token, query and all.
PATHS = ("/initiateCall", "/api/v1/business/1/call/abc?expand=1", "")


def _token(tenant: Tenant) -> str:
    return tenant.integration_url.rsplit("/hooks/", 1)[1]


def _hook_requests(base_url: str, token: str) -> None:
    with httpx.Client(base_url=base_url, timeout=5) as http:
        for path in PATHS:
            http.post(f"/hooks/{token}{path}", json={})
        # Not a token's shape: redacted all the same (it may be a mistyped token).
        http.get("/hooks/hk_mistyped-token/initiateCall")


def test_outdial_api_access_lines_redact_the_token(tenant: Tenant, settings: Settings) -> None:
    token = _token(tenant)
    port = free_port()
    env = settings_env(settings) | {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "OUTDIAL_LOG_JSON": "true",
        "OUTDIAL_LOG_LEVEL": "INFO",
        "OUTDIAL_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    api = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    lines: list[bytes] = []
    readers = [
        threading.Thread(target=lambda stream=stream: lines.extend(stream))
        for stream in (api.stdout, api.stderr)
    ]
    for reader in readers:
        reader.start()
    try:

        def answered() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answered, timeout=60, what="the API to answer")
        _hook_requests(f"http://127.0.0.1:{port}", token)
    finally:
        api.terminate()
        api.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=10)
    output = b"".join(lines)
    assert token.encode() not in output
    assert b"hk_mistyped-token" not in output
    access = [json.loads(line) for line in lines if b'"uvicorn.access"' in line]
    paths = {entry["path"] for entry in access}
    assert {
        "/hooks/<redacted>/initiateCall",
        "/hooks/<redacted>/api/v1/business/1/call/abc?expand=1",
        "/hooks/<redacted>",
    } <= paths
    assert all("/hooks/<redacted>" in entry["msg"] for entry in access if "hooks" in entry["msg"])


def test_a_uvicorn_log_config_of_its_own_redacts_the_token_too(
    tenant: Tenant, settings: Settings
) -> None:
    """An embedding that keeps uvicorn's default log config: its access logger has its own
    handler and does not propagate, so the filter sits on the logger itself."""
    token = _token(tenant)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="info", access_log=True
    )
    server = uvicorn.Server(config)
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(logging.Formatter("%(message)s"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10, what="uvicorn to start")
        logging.getLogger(ACCESS_LOGGER).addHandler(handler)
        _hook_requests(f"http://127.0.0.1:{port}", token)
    finally:
        logging.getLogger(ACCESS_LOGGER).removeHandler(handler)
        server.should_exit = True
        thread.join(timeout=10)
    text = captured.getvalue()
    assert token not in text and "hk_mistyped-token" not in text
    assert text.count("/hooks/<redacted>") == len(PATHS) + 1, text
    assert "/hooks/<redacted>/initiateCall" in text


def test_any_line_naming_a_hook_path_is_redacted() -> None:
    """Records of any logger, whatever their arguments' form."""
    secret = "hk_" + "s" * 32
    redaction = HookTokenRedaction()
    records = [
        logging.LogRecord(
            "outdial.api", logging.INFO, __file__, 1, "GET %s", (f"/hooks/{secret}/x",), None
        ),
        logging.LogRecord(
            "outdial.api", logging.INFO, __file__, 1, f"at /hooks/{secret}", None, None
        ),
        logging.LogRecord(
            "outdial.api",
            logging.INFO,
            __file__,
            1,
            "%(path)s",
            ({"path": f"/hooks/{secret}"},),
            None,
        ),
    ]
    for record in records:
        assert redaction.filter(record)
        message = record.getMessage()
        assert secret not in message and "/hooks/<redacted>" in message


@pytest.mark.parametrize("json_lines", [True, False])
def test_a_traceback_naming_a_token_is_redacted(json_lines: bool) -> None:
    """An exception whose text names a hooks path (logged with its traceback) shows none of
    the token, in either line format."""
    token = "hk_" + "T" * 32
    root = logging.getLogger()
    kept = root.handlers[:], root.level
    written = io.StringIO()
    try:
        configure_logging("INFO", json_lines)
        root.handlers[0].setStream(written)
        try:
            raise ValueError(f"cannot route /hooks/{token}/initiateCall")
        except ValueError:
            logging.getLogger("outdial.api").exception("unhandled error")
    finally:
        root.handlers[:], level = kept
        root.setLevel(level)
    assert "cannot route /hooks/<redacted>/initiateCall" in written.getvalue()
    assert token not in written.getvalue()
