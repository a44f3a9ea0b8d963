"""`/docs` (Swagger UI) and `/redoc` (ReDoc), served with no request leaving this host.

Invariant: the pages name only this API's own URLs. Their scripts, styles and icon come
from the pinned `fastapi-offline` package (Swagger UI 5, which renders OpenAPI 3.1, and
ReDoc's standalone bundle), mounted under `/docs-assets`, so the docs work on a network
without internet and never load code from a CDN next to an admin token typed into "Try it
out". The pages are left out of the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
# The package's one folder of assets: swagger-ui-bundle.js, swagger-ui.css,
# redoc.standalone.js, favicon.png.
ASSETS_DIRECTORY = str(files("fastapi_offline") / "static")


def install_docs(app: FastAPI, title: str) -> None:
    """Adds the two pages and their assets to `app` (made with docs_url=redoc_url=None)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIRECTORY), name="docs-assets")
    openapi_url, page_title = app.openapi_url or "/openapi.json", f"{title} API"
    favicon = f"{ASSETS_PATH}/favicon.png"
    pages = {
        "/docs": get_swagger_ui_html(
            openapi_url=openapi_url,
            title=page_title,
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=favicon,
            # Off: kept, the admin token typed into "Authorize" would stay in the browser's
            # localStorage after the tab closes; it is typed again after a reload instead.
            swagger_ui_parameters={"persistAuthorization": False},
        ),
        "/redoc": get_redoc_html(
            openapi_url=openapi_url,
            title=page_title,
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        ),
    }
    for path, page in pages.items():
        app.add_api_route(path, _serve(bytes(page.body)), include_in_schema=False)


def _serve(body: bytes) -> Callable[[], Awaitable[HTMLResponse]]:
    async def page() -> HTMLResponse:
        return HTMLResponse(body)

    return page
