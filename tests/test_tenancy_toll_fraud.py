"""Toll fraud (issue 10, item 4): destinations policy forbids, and trunks on internal hosts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis
from pydantic import ValidationError

from api.settings import Settings
from sip.numbers import NumberNotAllowedError, check_destination, parse_number
from sip.trunks import check_trunk_host
from tests.conftest import Tenant, create_tenant
from tests.support import ADMIN_TOKEN, ApiServer, free_port, redis_snapshot

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["status"], body["code"]) == ("error", code)
    assert body["message"]
    return body


@pytest.mark.parametrize(
    ("number", "rule"),
    [
        ("+19005550100", "high_cost_type"),  # US premium rate
        ("+448712345678", "high_cost_type"),  # UK 087x: premium rate
        ("+448431234567", "high_cost_type"),  # UK 084x: shared cost / UAN
        ("+447012345678", "high_cost_type"),  # UK 070: personal number
        ("+881612345678", "high_cost_range"),  # GMSS satellite
        ("+883510012345", "high_cost_range"),  # international networks
        ("+870773111632", "high_cost_range"),  # Inmarsat
    ],
)
async def test_high_cost_destinations_are_refused(
    number: str,
    rule: str,
    tenant: Tenant,
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    agent = await tenant.create_agent()
    await tenant.register_number()
    before = redis_snapshot(redis_client, settings.redis_prefix)
    refused = await tenant.place_call(to=number, call_agent_id=agent["id"])
    body = _error(refused, 403, "NUMBER_NOT_ALLOWED")
    assert body["details"] == {"to": number, "rule": rule}
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


def test_ordinary_destinations_pass_and_the_switch_allows_high_cost() -> None:
    for number in ("+14155552671", "+442071838750", "+18005550100", "+12505550100"):
        check_destination(
            parse_number(number), allowed_countries=frozenset(), allow_high_cost=False
        )
    check_destination(
        parse_number("+19005550100"), allowed_countries=frozenset(), allow_high_cost=True
    )
    # +1 876 is Jamaica, not the US: a shared country code is no way around the list.
    with pytest.raises(NumberNotAllowedError) as refused:
        check_destination(
            parse_number("+18765550123"), allowed_countries={"US", "CA"}, allow_high_cost=False
        )
    assert refused.value.rule == "country" and "JM" in str(refused.value)


def test_country_list_setting_is_checked_at_start() -> None:
    assert Settings(OUTDIAL_ALLOWED_COUNTRIES="us, ca").allowed_countries == {"US", "CA"}
    with pytest.raises(ValidationError, match="UK"):
        Settings(OUTDIAL_ALLOWED_COUNTRIES="UK")


async def test_deployment_country_list_and_workspace_override(settings: Settings, lk: Any) -> None:
    only_us = settings.model_copy(update={"allowed_countries_text": "US"})
    server = ApiServer(only_us, free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            tenant = await create_tenant(http)
            agent = await tenant.create_agent()
            await tenant.register_number()
            uk = {"to": "+442071838750", "call_agent_id": agent["id"]}
            refused = _error(await tenant.place_call(**uk), 403, "NUMBER_NOT_ALLOWED")
            assert refused["details"]["rule"] == "country"
            assert "GB" in refused["message"] and "US" in refused["message"]

            path = f"/v1/admin/workspaces/{tenant.id}/allowed-countries"
            widened = await http.put(path, json={"countries": ["gb", "US"]}, headers=ADMIN)
            assert widened.status_code == 200, widened.text
            assert widened.json()["allowedCountries"] == ["GB", "US"]
            assert (await tenant.place_call(**uk)).status_code == 200

            typo = await http.put(path, json={"countries": ["UK"]}, headers=ADMIN)
            _error(typo, 422, "VALIDATION_ERROR")
            reset = await http.put(path, json={"countries": None}, headers=ADMIN)
            assert reset.json()["allowedCountries"] is None
            _error(await tenant.place_call(**uk), 403, "NUMBER_NOT_ALLOWED")
    finally:
        server.stop()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3:5060",
        "192.168.1.10",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "localhost",
        "pbx",
        "pbx.internal",
        "sip.local",
        "gw.lan",
        "127.1",
    ],
)
async def test_trunks_on_internal_hosts_are_refused(
    address: str, tenant: Tenant, lk: Any, redis_client: redis.Redis, settings: Settings
) -> None:
    before = redis_snapshot(redis_client, settings.redis_prefix)
    refused = await tenant.request(
        "POST", "/v1/api/numbers", json={"number": "+15105550100", "trunk": {"address": address}}
    )
    body = _error(refused, 422, "VALIDATION_ERROR")
    assert body["details"]["errors"][0]["field"] == "trunk.address"
    assert lk.count("SIP", "CreateSIPOutboundTrunk") == 0
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


def test_public_trunk_hosts_pass() -> None:
    for address in (
        "sip.example-carrier.com",
        "sip.example.net:5061",
        "8.8.8.8",
        "xn--bcher-kva.de",
    ):
        check_trunk_host(address)
