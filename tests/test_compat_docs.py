"""docs/compat.md's examples run as written against a live API, and answer what the page says.

Each example is the ```bash block after a `<!-- compat-example: NAME -->` marker, run with
bash (and curl) against the API on loopback; the ```json block after it is its answer, with
`<...>` standing for any string (an id, a time, a message).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.compat import CALLER, compat_tenant
from tests.support import ApiServer

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "compat.md").read_text()
EXAMPLE = re.compile(
    r"<!-- compat-example: ([\w-]+) -->\s*```bash\n(.*?)```\s*```json\n(.*?)```", re.DOTALL
)


def examples() -> list[tuple[str, str, Any]]:
    return [(name, script, json.loads(answer)) for name, script, answer in EXAMPLE.findall(PAGE)]


def matches(documented: Any, actual: Any) -> bool:
    if isinstance(documented, str) and re.fullmatch(r"<[^>]+>", documented):
        return isinstance(actual, str) and actual != ""
    if isinstance(documented, dict):
        return (
            isinstance(actual, dict)
            and documented.keys() == actual.keys()
            and all(matches(documented[k], actual[k]) for k in documented)
        )
    if isinstance(documented, list):
        return (
            isinstance(actual, list)
            and len(documented) == len(actual)
            and all(matches(d, a) for d, a in zip(documented, actual, strict=True))
        )
    return bool(documented == actual)


def test_the_page_has_each_vendors_examples() -> None:
    names = [name for name, _, _ in examples()]
    assert len(names) == len(set(names)) == PAGE.count("<!-- compat-example:")
    for vendor in ("voicegenie", "iqra", "contactship"):
        assert vendor in names and f"{vendor}-error" in names


async def test_every_example_answers_as_documented(
    api_server: ApiServer, client: httpx.AsyncClient
) -> None:
    ws = await compat_tenant(client)
    assert CALLER == "+15105550100"  # the number the examples name
    placed = await ws.tenant.place_call(to="+14155552671", call_agent_id=ws.agent_id)
    env = {
        "PATH": "/usr/bin:/bin",
        "OUTDIAL_URL": api_server.url,
        "OUTDIAL_API_KEY": ws.key,
        "OUTDIAL_INTEGRATION_URL": api_server.url + ws.hook_path,
        "AGENT_ID": ws.agent_id,
        "BUSINESS_ID": str(ws.alias),
        "CALL_ID": placed.json()["callId"],
    }
    for name, script, documented in examples():
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert run.returncode == 0, f"{name}: {run.stderr}"
        actual = json.loads(run.stdout)
        assert matches(documented, actual), f"{name}: documented {documented}, got {actual}"
