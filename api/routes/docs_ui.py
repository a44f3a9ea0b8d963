"""`/docs` (Swagger UI) and `/redoc` (ReDoc), served with no request leaving this host.

Invariant: the pages name only this API's own URLs. Their scripts, styles and icon come
from the pinned `fastapi-offline` package (Swagger UI 5, which renders OpenAPI 3.1, and
ReDoc's standalone bundle), mounted under `/docs-assets`, so the docs work on a network
without internet and never load code from a CDN next to an admin token typed into "Try it
out". The pages are left out of the OpenAPI document.
"""

from __future__ import annotations

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
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{ASSETS_PATH}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=favicon,
            # the credentials given under "Authorize" survive a reload of the page
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} API",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )
