"""The operator's allowlists for agents (issue 10, items 1, 7 and the transfer part of 4),
over real HTTP against real Redis: a workspace's agent may name only the model base URLs,
worker names and `sip:` transfer domains the operator allows; refusals are 403 with a
stable code and store nothing; the worker name is checked again when a call is accepted.

The worker's own defence is in tests/test_tenancy_model_keys.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from api.settings import Settings
from tests.conftest import Tenant
from tests.support import ApiServer, free_port

ACME_URL = "https://models.acme.example/v1"


@pytest.fixture
def settings(settings: Settings) -> Iterator[Settings]:
    """The test stack's settings plus this module's allowlists."""
    yield settings.model_copy(
        update={
            "allowed_worker_names_text": "acme-worker, acme-eu",
            "allowed_model_base_urls_text": ACME_URL + "/",
            "allowed_transfer_domains_text": "PBX.acme.example",
        }
    )


async def expect_refusal(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and body["code"] == code, body
    return body


async def agent_count(tenant: Tenant) -> int:
    listed = await tenant.request("GET", "/v1/api/agents")
    return len(listed.json()["agents"])


async def test_a_model_base_url_must_be_allowlisted_and_brings_its_own_key(
    tenant: Tenant,
) -> None:
    create = {"name": "A", "instructions": "Hi."}
    attacker = {"llm": {"base_url": "https://attacker.example/v1"}}
    # fails on the old code: any base_url was stored, and the worker sent it the operator's key
    refused = await tenant.request("POST", "/v1/api/agents", json=create | {"pipeline": attacker})
    body = await expect_refusal(refused, 403, "MODEL_BASE_URL_NOT_ALLOWED")
    assert body["details"] == {"field": "pipeline.llm.base_url"}
    internal = {"tts": {"base_url": "http://169.254.169.254/latest"}}
    refused = await tenant.request("POST", "/v1/api/agents", json=create | {"pipeline": internal})
    await expect_refusal(refused, 403, "MODEL_BASE_URL_NOT_ALLOWED")
    # a key reference is for the workspace's own endpoint, never the operator's
    key_only = {"stt": {"api_key_ref": "acme-openai"}}
    refused = await tenant.request("POST", "/v1/api/agents", json=create | {"pipeline": key_only})
    body = await expect_refusal(refused, 403, "MODEL_BASE_URL_NOT_ALLOWED")
    assert body["details"] == {"field": "pipeline.stt.api_key_ref"}
    assert await agent_count(tenant) == 0

    # allowlisted (the trailing slash does not matter), with the workspace's key by name
    own = {"llm": {"base_url": ACME_URL, "api_key_ref": "acme-openai"}}
    agent = await tenant.create_agent(pipeline=own)
    assert agent["pipeline"]["llm"]["apiKeyRef"] == "acme-openai"
    assert "apiKey" not in agent["pipeline"]["llm"]

    # a PATCH is checked as a whole: the agent stays as it was
    patched = await tenant.request(
        "PATCH", f"/v1/api/agents/{agent['id']}", json={"pipeline": attacker}
    )
    await expect_refusal(patched, 403, "MODEL_BASE_URL_NOT_ALLOWED")
    kept = await tenant.request("GET", f"/v1/api/agents/{agent['id']}")
    assert kept.json() == agent
    # a key itself is not a field: nothing takes a key value
    with_key = {"llm": {"base_url": ACME_URL, "api_key": "sk-live"}}
    refused = await tenant.request("POST", "/v1/api/agents", json=create | {"pipeline": with_key})
    await expect_refusal(refused, 422, "VALIDATION_ERROR")


async def test_worker_names_come_from_the_operators_list(tenant: Tenant) -> None:
    # fails on the old code: any well-formed worker name was taken
    refused = await tenant.request(
        "POST",
        "/v1/api/agents",
        json={"name": "A", "instructions": "Hi.", "worker_name": "other-tenant-worker"},
    )
    body = await expect_refusal(refused, 403, "WORKER_NAME_NOT_ALLOWED")
    assert body["details"] == {"workerName": "other-tenant-worker"}
    assert await agent_count(tenant) == 0
    assert (await tenant.create_agent())["workerName"] == "outdial-agent"  # always allowed
    agent = await tenant.create_agent(worker_name="acme-eu")
    patched = await tenant.request(
        "PATCH", f"/v1/api/agents/{agent['id']}", json={"worker_name": "other-tenant-worker"}
    )
    await expect_refusal(patched, 403, "WORKER_NAME_NOT_ALLOWED")


async def test_call_accept_rechecks_the_worker_name(
    tenant: Tenant, settings: Settings, redis_client: redis.Redis
) -> None:
    agent = await tenant.create_agent(worker_name="acme-worker")
    # the operator narrows the list after the agent was stored
    narrowed = ApiServer(settings.model_copy(update={"allowed_worker_names_text": ""}), free_port())
    narrowed.start()
    try:
        async with httpx.AsyncClient(base_url=narrowed.url, timeout=15) as http:
            response = await http.post(
                "/v1/api/call",
                json={"to": "+14155552671", "call_agent_id": agent["id"]},
                headers=tenant.headers,
            )
    finally:
        narrowed.stop()
    await expect_refusal(response, 403, "WORKER_NAME_NOT_ALLOWED")
    assert redis_client.zcard(f"{settings.redis_prefix}:ws:{tenant.id}:calls") == 0
    assert redis_client.llen(f"{settings.broker_namespace}:outdial.dial") == 0


async def test_sip_transfer_targets_need_an_allowlisted_domain(tenant: Tenant) -> None:
    create = {"name": "A", "instructions": "Hi."}
    # fails on the old code: any sip: URI was a transfer target
    refused = await tenant.request(
        "POST", "/v1/api/agents", json=create | {"transfer_to": "sip:+4930123@evil.example"}
    )
    body = await expect_refusal(refused, 403, "TRANSFER_NOT_ALLOWED")
    assert body["details"] == {"transferTo": "sip:+4930123@evil.example"}
    # a URI whose host is ambiguous is malformed, not smuggled past the allowlist
    smuggled = {"transfer_to": "sip:desk@pbx.acme.example;x=y@evil.example"}
    refused = await tenant.request("POST", "/v1/api/agents", json=create | smuggled)
    await expect_refusal(refused, 422, "VALIDATION_ERROR")
    assert await agent_count(tenant) == 0

    allowed = await tenant.create_agent(transfer_to="sip:desk@pbx.ACME.example:5060;transport=tcp")
    assert allowed["transferTo"] == "sip:desk@pbx.ACME.example:5060;transport=tcp"
    number = await tenant.create_agent(transfer_to="+1 415 555 2671")
    assert number["transferTo"] == "+14155552671"
    patched = await tenant.request(
        "PATCH", f"/v1/api/agents/{number['id']}", json={"transfer_to": "sip:desk@evil.example"}
    )
    await expect_refusal(patched, 403, "TRANSFER_NOT_ALLOWED")
