"""The README's first-call walkthrough runs as written, and its call-body table names exactly
the fields of `CallCreate`.

The walkthrough is the ```bash block (or blocks) after `<!-- walkthrough -->`. It runs with
bash in a scratch directory holding copies of `.env.example` and `deploy/init-env.sh`,
against the real API under uvicorn on loopback (Redis under the test's prefix, the LiveKit
test server behind it): only its `docker compose` lines are left out and `localhost:8000`
is the test API's address. `set -euo pipefail` makes any failed step, or a variable used
before it is set, fail the run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx

from api.schemas.calls import CallCreate
from tests.support import ADMIN_TOKEN, ApiServer

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()

ASSIGNMENT = re.compile(r"(?:^|[;&|(\s])(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")
READ = re.compile(r"\bread\s+(?:-r\s+)?((?:[A-Za-z_][A-Za-z0-9_]*\s*)+)")
EXPANSION = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
ENV_NAMES = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, flags=re.MULTILINE))
# Variables of the environment the walkthrough may take as given.
SHELL_NAMES = {"HOME", "PATH"}


def walkthrough(markdown: str = README) -> str:
    blocks = re.findall(r"<!-- walkthrough -->\s*```bash\n(.*?)```", markdown, flags=re.DOTALL)
    assert blocks, "README.md: no ```bash block after <!-- walkthrough -->"
    return "\n".join(blocks)


def undefined_variables(script: str) -> list[str]:
    """Variables expanded before any line of the script assigns them, other than the
    environment's and the ones `.env.example` documents."""
    assigned: set[str] = set()
    undefined = []
    for line in script.splitlines():
        code = "" if line.lstrip().startswith("#") else line.split(" #", 1)[0]
        assigned |= set(ASSIGNMENT.findall(code))
        for names in READ.findall(code):
            assigned |= set(names.split())
        undefined += [
            name
            for name in EXPANSION.findall(code)
            if name not in assigned and name not in ENV_NAMES | SHELL_NAMES
        ]
    return undefined


def test_undefined_variable_detection() -> None:
    assert undefined_variables('curl -H "x-api-key: $KEY"') == ["KEY"]
    assert undefined_variables('KEY=$(cat k)\ncurl -H "x-api-key: ${KEY}"') == []
    assert undefined_variables("read -r WS KEY < f\necho $WS $KEY # $NOT_CODE") == []
    assert undefined_variables("echo $OUTDIAL_ADMIN_TOKEN $HOME") == []
    assert undefined_variables("# $COMMENT\necho $LATER\nLATER=1") == ["LATER"]


def test_walkthrough_sets_every_variable_before_it_uses_it() -> None:
    assert undefined_variables(walkthrough()) == []


def runnable(script: str, api_url: str) -> str:
    """The walkthrough as the test runs it: strict, no compose, the test API's address."""
    kept = [line for line in script.splitlines() if not line.startswith("docker compose")]
    body = "\n".join(kept).replace("localhost:8000", api_url.removeprefix("http://"))
    # What the test checks afterwards, from the script's own variables.
    report = 'printf "%s\\n" "$WS" "$KEY" "$AGENT" "$CALL" > walkthrough.out'
    return f"set -euo pipefail\n{body}\n{report}\n"


def test_runnable_drops_compose_and_points_at_the_test_api() -> None:
    script = "docker compose up -d\ncurl -s localhost:8000/readyz\n  docker compose ps # kept"
    assert runnable(script, "http://127.0.0.1:4321").splitlines()[1:3] == [
        "curl -s 127.0.0.1:4321/readyz",
        "  docker compose ps # kept",
    ]


def _value(script: str, name: str) -> str:
    match = re.search(rf"^{name}=(\S+)", script, flags=re.MULTILINE)
    assert match, f"the walkthrough does not set {name}"
    return match.group(1)


def _scratch_checkout(directory: Path) -> None:
    """The files the walkthrough's first line uses; the admin token preset to the test API's
    (init-env.sh keeps a value that is set, and fills the other secrets)."""
    example = ENV_EXAMPLE.replace(
        "\nOUTDIAL_ADMIN_TOKEN=\n", f"\nOUTDIAL_ADMIN_TOKEN={ADMIN_TOKEN}\n"
    )
    assert example != ENV_EXAMPLE, ".env.example has no empty OUTDIAL_ADMIN_TOKEN= line"
    (directory / ".env.example").write_text(example)
    (directory / "deploy").mkdir()
    shutil.copy2(ROOT / "deploy" / "init-env.sh", directory / "deploy" / "init-env.sh")


def _environment() -> dict[str, str]:
    """This process's environment without Outdial's, LiveKit's or proxy settings."""
    dropped = ("OUTDIAL_", "LIVEKIT_", "REDIS_")
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(dropped) and "proxy" not in name.lower()
    }


def test_walkthrough_runs_and_places_the_call(
    api_server: ApiServer, lk: Any, tmp_path: Path
) -> None:
    script = walkthrough()
    _scratch_checkout(tmp_path)
    done = subprocess.run(
        ["bash", "-c", runnable(script, api_server.url)],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    workspace_id, api_key, agent_id, call_id = (tmp_path / "walkthrough.out").read_text().split()
    assert f"call {call_id}" in done.stdout
    assert "LIVEKIT_API_SECRET=\n" not in (tmp_path / ".env").read_text()  # init-env.sh ran

    # The trunk Outdial created at LiveKit carries the walkthrough's carrier details.
    trunks = [t for t in lk.trunks.values() if t.address == _value(script, "TRUNK_ADDRESS")]
    assert len(trunks) == 1
    assert list(trunks[0].numbers) == [_value(script, "FROM")]
    assert trunks[0].auth_username == _value(script, "TRUNK_USER")
    assert trunks[0].auth_password == _value(script, "TRUNK_PASSWORD")

    headers = {"x-workspace-id": workspace_id, "x-api-key": api_key}
    call = httpx.get(f"{api_server.url}/v1/api/call/{call_id}", headers=headers, timeout=10)
    assert call.status_code == 200, call.text
    record = call.json()
    assert record["status"] == "queued"  # accepted; no worker runs in this test
    assert record["to"] == _value(script, "TO")
    assert record["from"] == _value(script, "FROM")
    assert record["agentId"] == agent_id
    assert record["sipTrunkId"] == trunks[0].sip_trunk_id
    assert record["dynamicVariables"] == {"firstName": "Ada"}
    # step 7 printed the status
    assert done.stdout.rstrip().endswith("queued")


def call_body_table(markdown: str = README) -> list[list[str]]:
    """The rows of the table after `<!-- call-body-fields -->`, cells stripped."""
    section = markdown.split("<!-- call-body-fields -->", 1)[1].lstrip("\n")
    rows = []
    for line in section.splitlines()[2:]:  # after the header and its rule
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_call_body_table_names_exactly_the_request_fields() -> None:
    rows = call_body_table()
    named = [row[0].strip("`") for row in rows]
    assert named == list(CallCreate.model_fields), "README's call-body table drifted"
    required = {name for name, field in CallCreate.model_fields.items() if field.is_required()}
    assert {row[0].strip("`") for row in rows if row[2] == "required"} == required


def test_call_body_table_check_catches_drift() -> None:
    head, table = README.split("<!-- call-body-fields -->", 1)
    added = table.replace("| `to` |", "| `new_field` | string | none | x |\n| `to` |", 1)
    dropped = re.sub(r"^\| `campaign_id` \|.*\n", "", table, count=1, flags=re.MULTILINE)
    for drifted in (added, dropped):
        assert drifted != table
        rows = call_body_table(f"{head}<!-- call-body-fields -->{drifted}")
        assert [row[0].strip("`") for row in rows] != list(CallCreate.model_fields)
