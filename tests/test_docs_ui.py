"""`/docs` and `/redoc` load nothing from outside the API, and "Try it out" can authenticate.

The pages are fetched from a live API; every URL they name must be one of the API's own
paths, each asset must be served, and the OpenAPI document must carry the credentials as
security schemes, with a requirement on every route that takes them.
"""

from __future__ import annotations

import re

import httpx
import pytest

from api.routes.docs_ui import ASSETS_PATH

# src=, href=, spec-url= and url: values: the assets, and the OpenAPI URL the page loads
_URLS = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")


def named_urls(html: str) -> set[str]:
    return {first or second for first, second in _URLS.findall(html)}


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png"}),
    ],
)
async def test_the_docs_pages_use_only_local_assets(
    client: httpx.AsyncClient, page: str, assets: set[str]
) -> None:
    response = await client.get(page)
    assert response.status_code == 200, response.text
    html = response.text
    assert not re.search(r"https?://", html), "the page names an outside URL"
    urls = named_urls(html)
    assert {f"{ASSETS_PATH}/{name}" for name in assets} <= urls
    assert "/openapi.json" in urls
    for url in urls:
        assert url.startswith("/"), url
        served = await client.get(url)
        assert served.status_code == 200, url
        assert served.content, url


async def test_a_missing_asset_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{ASSETS_PATH}/nope.js")
    assert response.status_code == 404
    assert response.json()["status"] == "error"


async def test_swagger_keeps_no_credentials_in_the_browser(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text
    assert '"persistAuthorization": false' in page
    assert '"persistAuthorization": true' not in page


async def test_the_credentials_are_security_schemes(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["WorkspaceId"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-workspace-id",
        "description": schemes["WorkspaceId"]["description"],
    }
    assert schemes["WorkspaceKey"] == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    assert schemes["AdminToken"]["type"] == "http" and schemes["AdminToken"]["scheme"] == "bearer"
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            if path.startswith("/v1/api/"):
                assert {"WorkspaceId": [], "WorkspaceKey": []} in operation["security"], path
            elif path.startswith("/v1/admin/"):
                assert operation["security"] == [{"AdminToken": []}], path
    assert "/docs" not in schema["paths"] and "/redoc" not in schema["paths"]
