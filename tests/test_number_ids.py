"""Number ids (issue 22): every registered caller number has an id, `num_` and its E.164
digits, shown by the numbers API and accepted wherever the number is. Real API, real Redis,
the LiveKit test server."""

from __future__ import annotations

from typing import Any

import pytest

from sip.numbers import number_from_id, number_id
from tests.conftest import Tenant

CALLER = "+15105550100"


def test_an_id_and_its_number_convert_both_ways() -> None:
    assert number_id("+14155550123") == "num_14155550123"
    assert number_from_id("num_14155550123") == "+14155550123"
    assert number_from_id(number_id(CALLER)) == CALLER
    for not_an_id in (
        "+14155550123",
        "num_",
        "num_0123",
        "num_1",
        "num_1234567890123456",
        "num_12a",
        "NUM_1415",
        "num_14155550123\n",
    ):
        assert number_from_id(not_an_id) is None, not_an_id


async def test_numbers_are_shown_with_their_ids(tenant: Tenant, lk: Any) -> None:
    saved = await tenant.register_number(CALLER)
    assert saved["id"] == "num_15105550100"
    listed = (await tenant.request("GET", "/v1/api/numbers")).json()["numbers"]
    assert [(n["id"], n["number"]) for n in listed] == [("num_15105550100", CALLER)]


async def test_a_call_names_its_caller_by_id(tenant: Tenant, lk: Any) -> None:
    agent = await tenant.create_agent()
    await tenant.register_number(CALLER)
    await tenant.register_number("+15105550101", default=True)
    placed = await tenant.place_call(
        to="+14155550123", call_agent_id=agent["id"], from_number="num_15105550100"
    )
    assert placed.status_code == 200, placed.text
    view = await tenant.request("GET", f"/v1/api/call/{placed.json()['callId']}")
    assert view.json()["from"] == CALLER  # not the default number


@pytest.mark.parametrize("from_number", ["num_15105550199", "num_abc", "num_"])
async def test_an_unknown_or_malformed_id_is_an_invalid_number_id(
    tenant: Tenant, lk: Any, from_number: str
) -> None:
    agent = await tenant.create_agent()
    await tenant.register_number(CALLER, default=True)
    placed = await tenant.place_call(
        to="+14155550123", call_agent_id=agent["id"], from_number=from_number
    )
    assert placed.status_code == 400, placed.text
    assert (placed.json()["status"], placed.json()["code"]) == ("error", "INVALID_NUMBER_ID")


async def test_a_number_is_deleted_by_its_id(tenant: Tenant, lk: Any) -> None:
    await tenant.register_number(CALLER)
    deleted = await tenant.request("DELETE", "/v1/api/numbers/num_15105550100")
    assert deleted.status_code == 204, deleted.text
    assert (await tenant.request("GET", "/v1/api/numbers")).json()["numbers"] == []
    again = await tenant.request("DELETE", "/v1/api/numbers/num_15105550100")
    assert (again.status_code, again.json()["code"]) == (404, "NOT_FOUND")
