"""The API contract, fuzzed: `/openapi.json` describes the API as it behaves.

schemathesis generates requests for every operation in the published schema, valid and
invalid ones, and sends them to a live API on loopback (real Redis, the LiveKit test
server), with real credentials for the routes that need them: no answer may be a 5xx, a
status code the operation does not list, or a body its schema does not describe.

Bounded and deterministic: a fixed number of examples per operation and generation mode,
`derandomize=True` (the same requests on every run), no example database, no shrinking.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.routes.compat import PATH_PREFIXES as COMPAT_PATHS
from api.security import event_token
from api.settings import Settings
from tests.conftest import Tenant, create_tenant
from tests.support import ADMIN_TOKEN, ApiServer

ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

EXAMPLES_PER_MODE = 25
EVENT_STREAM = "/v1/api/events/stream"
# The vendor-compatible routes: their errors are their vendors' shapes (docs/compat.md).
COMPAT_ERRORS = ("VoiceGenieError", "ContactshipError", "IqraError")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _credentials(path: str, case: Any, tenant: Tenant, settings: Settings) -> dict[str, str]:
    """The headers that open `path`, so generated requests get past authentication."""
    if path.startswith("/v1/admin/"):
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    if path.startswith("/v1/internal/"):
        call_id = str(case.path_parameters.get("call_id", ""))
        return {"Authorization": f"Bearer {event_token(call_id, settings.event_signing_key)}"}
    if path.startswith("/v1/api/"):
        return tenant.headers
    if path.startswith(COMPAT_PATHS):  # the key alone names the workspace
        return {"x-api-key": tenant.api_key}
    # `/v1/livekit/webhook` is fuzzed unsigned (its 401s and their shape): schemathesis
    # cannot sign the body it serialises; signed webhooks are tests/test_webhook_api.py's.
    return {}


def _bounded(case: Any) -> None:
    """The live event stream ends when its client leaves: a valid (or absent) `max_seconds`
    becomes 0, so the stream answers the events there are and ends; an invalid one stays
    (its 422 is the subject)."""
    query = case.query if isinstance(case.query, dict) else {}
    seconds = query.get("max_seconds")
    if seconds is None or (isinstance(seconds, int) and 0 <= seconds <= 86_400):
        case.query = query | {"max_seconds": 0}


def _fuzz(run: Callable[[Any], None], strategy: Any) -> None:
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_MODE,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        run(case)

    fuzz()


async def _existing_ids(http: httpx.AsyncClient, tenant: Tenant) -> dict[str, str]:
    """Ids of real resources, for the path parameters of every other request: random ids
    only ever reach the 404s. Admin routes get a workspace of their own, which they may
    disable or re-key without locking the tenant out."""
    target = await create_tenant(http, "fuzzed by the admin routes")
    agent = await tenant.create_agent()
    number = await tenant.register_number()
    placed = await tenant.place_call(
        to="+14155552671", call_agent_id=agent["id"], callback_url="http://127.0.0.1:9/hook"
    )
    assert placed.status_code == 200, placed.text
    call_id = placed.json()["callId"]
    events = (await tenant.request("GET", f"/v1/api/call/{call_id}/events")).json()["events"]
    shown = await http.get(f"/v1/admin/workspaces/{tenant.id}", headers=ADMIN_HEADERS)
    return {
        "business_id": str(shown.json()["alias"]),
        "workspace_id": target.id,
        "sip_trunk_id": number["sipTrunkId"],
        "agent_id": agent["id"],
        "number": number["number"],
        "call_id": call_id,
        "event_id": events[0]["id"],
    }


async def test_every_operation_keeps_the_published_contract(
    api_server: ApiServer, lk: Any, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    existing = await _existing_ids(client, tenant)
    # Blocking calls from here on: the API is another process, nothing else uses this loop.
    schema = schemathesis.openapi.from_url(f"{api_server.url}/openapi.json")
    failures: list[str] = []
    operations = 0
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        def run(case: Any, label: str = operation.label) -> None:
            nonlocal sent
            sent += 1
            if sent % 2 and case.path_parameters:
                # every other request names real resources (those the path has)
                for name in case.path_parameters.keys() & existing.keys():
                    case.path_parameters[name] = existing[name]
            if case.operation.path == EVENT_STREAM:
                _bounded(case)
            headers = _credentials(case.operation.path, case, tenant, settings)
            response = case.call(base_url=api_server.url, headers=headers, timeout=15)
            try:
                case.validate_response(response, checks=CHECKS)
            except (AssertionError, BaseExceptionGroup) as exc:
                failures.append(f"{label}: {exc}\n{case.as_curl_command(headers=headers)}")

        _fuzz(run, operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        try:
            _fuzz(run, operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        except Unsatisfiable:
            # nothing to make invalid: no parameters and no body (`/healthz`)
            assert not operation.body and not list(operation.iter_parameters()), operation.label
    assert operations == 49, "an operation is missing from /openapi.json"
    assert not failures, "\n\n".join(failures[:20])


async def test_the_schema_documents_credentials_and_the_one_error_shape(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    text = json.dumps(schema)
    assert "HTTPValidationError" not in text and '"detail"' not in text
    assert set(schema["components"]["securitySchemes"]) >= {
        "WorkspaceId",
        "WorkspaceKey",
        "WorkspaceBearer",
        "AdminToken",
        "EventToken",
    }
    error_ref = "#/components/schemas/Error"
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            if path != "/healthz":
                assert operation.get("security"), f"{where} has no security requirement"
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path.startswith(COMPAT_PATHS):
                    body = response["content"]["application/json"]["schema"]
                    vendor = body["$ref"].rsplit("/", 1)[1]
                    assert vendor in COMPAT_ERRORS, f"{where} {status} is not its vendor's"
                elif status.startswith(("4", "5")) and path != "/readyz":
                    body = response["content"]["application/json"]["schema"]
                    assert body == {"$ref": error_ref}, f"{where} {status} is not an Error"
            success = next(s for s in operation["responses"] if s.startswith("2"))
            if success != "204":
                content = operation["responses"][success]["content"]
                if path == EVENT_STREAM:  # each event's `data` is the schema
                    stream = content["text/event-stream"]["itemSchema"]
                    body = stream["properties"]["data"]["contentSchema"]
                else:
                    body = content["application/json"]["schema"]
                assert "$ref" in body or "properties" in body, f"{where}: untyped {success}"
    call = schema["paths"]["/v1/api/call"]["post"]
    assert call["security"] == schema["paths"]["/v1/api/calls"]["get"]["security"]
    assert {"400", "401", "403", "404", "409", "413", "422", "503"} <= set(call["responses"])


async def test_a_non_numeric_sip_status_code_from_an_agent_does_not_break_the_call(
    lk: Any, tenant: Tenant, settings: Settings
) -> None:
    """Regression: the code was stored as sent, and reading the call back (`int()` on a
    stored field) answered 500 for every later read of the call."""
    agent = await tenant.create_agent()
    await tenant.register_number()
    placed = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
    call_id = placed.json()["callId"]
    token = event_token(call_id, settings.event_signing_key)
    event = {"type": "call.failed", "data": {"reason": "error", "sip_status_code": "busy"}}
    response = await tenant.http.post(
        f"/v1/internal/calls/{call_id}/events",
        json=event,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    read = await tenant.request("GET", f"/v1/api/call/{call_id}")
    assert read.status_code == 200, read.text
    assert read.json()["sipStatusCode"] is None
