"""`POST /v1/api/dnc/import` end to end: a real API on loopback (tests/support.py
`ApiServer`) and real Redis. The answer accounts for every row and says exactly what is on
the list afterwards; a workspace imports into its own list only; a refused upload writes
nothing, and one refused part way says what it had done."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis

from api.settings import Settings
from api.store.keys import Keys
from tests.conftest import Tenant, create_tenant
from tests.support import ApiServer, free_port, redis_snapshot

IMPORT = "/v1/api/dnc/import"
ALICE, BOB, CAROL = "+14155550101", "+14155550102", "+14155550103"


def listed(client: redis.Redis, settings: Settings, workspace_id: str) -> dict[str, str]:
    """The workspace's do-not-call list as stored: number -> `<added ms>:<source>`."""
    key = Keys(settings.redis_prefix).do_not_call(workspace_id)
    return {number.decode(): entry.decode() for number, entry in client.hgetall(key).items()}


def numbers_csv(count: int, first: int = 0) -> bytes:
    return ("phone\n" + "".join(f"+1415555{n:04d}\n" for n in range(first, first + count))).encode()


async def upload(tenant: Tenant, data: bytes, **params: str) -> httpx.Response:
    files = {"file": ("contacts.csv", data, "text/csv")}
    return await tenant.request("POST", IMPORT, files=files, params=params)


async def test_an_upload_lists_its_good_numbers_and_accounts_for_every_row(
    tenant: Tenant, redis_client: redis.Redis, settings: Settings
) -> None:
    data = (
        "\ufeffName;Mobile;metadata.crm\r\n"
        f"Alice;{ALICE};1\r\n"
        "Nobody;12345;2\r\n"
        "\r\n"
        f'"Bob; B";"+1 415 555 0102";3\r\n'
        f"Alice again;{ALICE};4\r\n"
    ).encode()
    response = await upload(tenant, data, phone_column="mobile")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert {key: answer[key] for key in answer if key != "rejections"} == {
        "rowsRead": 4,
        "added": 2,
        "alreadyListed": 0,
        "rejected": 2,
        "blankRows": 1,
    }
    assert [(r["row"], r["reason"]) for r in answer["rejections"]] == [
        (3, "invalid_number"),
        (6, "duplicate_number"),
    ]
    entries = listed(redis_client, settings, tenant.id)
    assert sorted(entries) == [ALICE, BOB]
    assert all(entry.endswith(":import") for entry in entries.values())


async def test_the_same_numbers_again_are_already_listed_and_text_csv_works_too(
    tenant: Tenant, redis_client: redis.Redis, settings: Settings
) -> None:
    first = await upload(tenant, numbers_csv(1500))
    assert first.status_code == 200, first.text
    assert (first.json()["added"], first.json()["alreadyListed"]) == (1500, 0)
    again = await tenant.request(
        "POST", IMPORT, content=numbers_csv(2000), headers={"content-type": "text/csv"}
    )
    assert again.status_code == 200, again.text
    answer = again.json()
    assert (answer["rowsRead"], answer["added"], answer["alreadyListed"]) == (2000, 500, 1500)
    assert len(listed(redis_client, settings, tenant.id)) == 2000


async def test_a_workspace_imports_into_its_own_list_only(
    client: httpx.AsyncClient, tenant: Tenant, redis_client: redis.Redis, settings: Settings
) -> None:
    other = await create_tenant(client, "other")
    response = await upload(other, f"phone\n{CAROL}\n".encode())
    assert response.status_code == 200, response.text
    before = redis_snapshot(redis_client, settings.redis_prefix)
    files = {"file": ("x.csv", f"phone\n{ALICE}\n".encode(), "text/csv")}
    as_other = {"x-workspace-id": tenant.id, "x-api-key": other.api_key}
    wrong_key = await client.post(IMPORT, files=files, headers=as_other)
    assert (wrong_key.status_code, wrong_key.json()["code"]) == (403, "PERMISSION_DENIED")
    no_key = await client.post(IMPORT, files=files, headers={"x-workspace-id": tenant.id})
    assert (no_key.status_code, no_key.json()["code"]) == (401, "UNAUTHORIZED")
    assert redis_snapshot(redis_client, settings.redis_prefix) == before
    assert listed(redis_client, settings, tenant.id) == {}
    assert list(listed(redis_client, settings, other.id)) == [CAROL]


def _refusals() -> list[tuple[str, dict[str, Any], int, str]]:
    good = f"phone\n{ALICE}\n".encode()
    return [
        ("json", {"json": {"numbers": [ALICE]}}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (
            "no phone column",
            {"files": {"file": ("x.csv", b"tel\n+1\n")}},
            422,
            "CSV_NO_PHONE_COLUMN",
        ),
        ("no file part", {"files": {"other": ("x.csv", good)}}, 422, "CSV_FILE_MISSING"),
        ("empty", {"files": {"file": ("x.csv", b"")}}, 400, "CSV_EMPTY"),
        ("bad name", {"files": {"file": ("x.csv", b"phone,a b\n")}}, 422, "VALIDATION_ERROR"),
        (
            "broken multipart",
            {
                "content": b"--xyz\r\nnot a part",
                "headers": {"content-type": "multipart/form-data; boundary=xyz"},
            },
            400,
            "BAD_REQUEST",
        ),
        (
            "no boundary",
            {"content": good, "headers": {"content-type": "multipart/form-data"}},
            400,
            "BAD_REQUEST",
        ),
        (
            "phone_column",
            {"files": {"file": ("x.csv", good)}, "params": {"phone_column": ""}},
            422,
            "VALIDATION_ERROR",
        ),
    ]


@pytest.mark.parametrize(("case", "request_args", "status", "code"), _refusals())
async def test_a_refused_upload_writes_nothing(
    tenant: Tenant,
    redis_client: redis.Redis,
    settings: Settings,
    case: str,
    request_args: dict[str, Any],
    status: int,
    code: str,
) -> None:
    before = redis_snapshot(redis_client, settings.redis_prefix)
    response = await tenant.request("POST", IMPORT, **request_args)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert response.json()["status"] == "error"
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


@pytest.fixture
def small_api(settings: Settings, lk: Any) -> Iterator[ApiServer]:
    """An API whose files may hold 40,000 bytes and 1,500 rows."""
    limited = settings.model_copy(update={"csv_max_bytes": 40_000, "csv_max_rows": 1500})
    server = ApiServer(limited, free_port()).start()
    yield server
    server.stop()


async def _streamed(data: bytes) -> AsyncIterator[bytes]:
    """The body in 1,000-byte chunks, with no Content-Length (chunked)."""
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


async def test_an_upload_declared_too_large_is_refused_before_it_is_read(
    small_api: ApiServer, redis_client: redis.Redis, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=small_api.url, timeout=30) as http:
        tenant = await create_tenant(http)
        before = redis_snapshot(redis_client, settings.redis_prefix)
        response = await upload(tenant, numbers_csv(9000))  # ~117 KB
        assert (response.status_code, response.json()["code"]) == (413, "CSV_TOO_LARGE")
        assert redis_snapshot(redis_client, settings.redis_prefix) == before


async def test_a_file_past_the_row_limit_says_what_it_had_listed(
    small_api: ApiServer, redis_client: redis.Redis, settings: Settings
) -> None:
    """Rows are listed a batch (1,000) at a time as they stream in: row 1,501 stops the
    import; the answer says the first batch was listed, and only it is."""
    async with httpx.AsyncClient(base_url=small_api.url, timeout=30) as http:
        tenant = await create_tenant(http)
        response = await tenant.request(
            "POST",
            IMPORT,
            content=_streamed(numbers_csv(2000)),
            headers={"content-type": "text/csv"},
        )
        assert (response.status_code, response.json()["code"]) == (413, "CSV_TOO_MANY_ROWS")
        details = response.json()["details"]
        assert details == {
            "limit": 1500,
            "row": 1502,
            "rowsRead": 1501,
            "added": 1000,
            "alreadyListed": 0,
        }
        assert sorted(listed(redis_client, settings, tenant.id)) == [
            f"+1415555{n:04d}" for n in range(1000)
        ]


async def test_a_streamed_file_past_the_size_limit_is_refused_when_it_gets_there(
    small_api: ApiServer, redis_client: redis.Redis, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=small_api.url, timeout=30) as http:
        tenant = await create_tenant(http)
        note = "n" * 60
        data = "phone,note\n" + "".join(f"+1415555{n:04d},{note}\n" for n in range(800))
        response = await tenant.request(
            "POST", IMPORT, content=_streamed(data.encode()), headers={"content-type": "text/csv"}
        )
        assert (response.status_code, response.json()["code"]) == (413, "CSV_TOO_LARGE")
        details = response.json()["details"]
        assert details["rowsRead"] <= 540  # 40,000 bytes hold 540 rows of 74 bytes
        assert len(listed(redis_client, settings, tenant.id)) == details["added"] == 0


async def test_a_file_the_list_has_no_room_for_says_what_it_had_listed(
    settings: Settings, lk: Any, redis_client: redis.Redis
) -> None:
    """The list takes 1,500 numbers: the first batch (1,000) fits, the second does not and
    is refused whole; the answer says so, and the list holds exactly the first batch."""
    limited = settings.model_copy(update={"dnc_max_numbers": 1500})
    server = ApiServer(limited, free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            tenant = await create_tenant(http)
            response = await upload(tenant, numbers_csv(2500))
    finally:
        server.stop()
    assert (response.status_code, response.json()["code"]) == (409, "DNC_LIST_FULL")
    details = response.json()["details"]
    assert (details["added"], details["alreadyListed"], details["limit"]) == (1000, 0, 1500)
    assert sorted(listed(redis_client, settings, tenant.id)) == [
        f"+1415555{n:04d}" for n in range(1000)
    ]
