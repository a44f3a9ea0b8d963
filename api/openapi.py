"""The OpenAPI document as the API behaves: who may call each route, and every error each
route answers, in the one error shape of `api.errors`.

Invariants: no operation lists FastAPI's default 422 (`{"detail": [...]}`): validation
errors leave as VALIDATION_ERROR in the error shape, and a route that can refuse its input
declares 422 itself (`error_responses`). Credentials are security schemes, chosen by path
prefix (`_SECURITY`), so a new route cannot be published without them; the headers that
carry them are not listed again as parameters.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

ERROR_REF = "#/components/schemas/Error"


class Error(BaseModel):
    """Every error: `code` is stable, clients branch on it; `message` is for people."""

    model_config = ConfigDict(title="Error")

    status: Literal["error"]
    code: str
    message: str
    details: dict[str, Any]


# The errors routes share, by status: each description lists the codes a client may see.
STORAGE = {503: "SERVICE_UNAVAILABLE: storage is unavailable, retry after Retry-After"}
WORKSPACE_AUTH = {
    401: "UNAUTHORIZED: credentials missing, malformed or not recognised",
    403: "PERMISSION_DENIED (the key of another workspace), WORKSPACE_DISABLED",
}
ADMIN_AUTH = {
    401: "UNAUTHORIZED: admin token missing or wrong",
    403: "PERMISSION_DENIED: the admin API is disabled (OUTDIAL_ADMIN_TOKEN unset)",
}
BODY = {
    400: "BAD_REQUEST: the body is not JSON text",
    413: "PAYLOAD_TOO_LARGE",
    422: "VALIDATION_ERROR: the body or a parameter is invalid (`details.errors`: "
    "[{field, message}])",
}
NOT_FOUND = {404: "NOT_FOUND: no such resource, or a path id that is not an id"}


def error_responses(*groups: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses` for these errors; codes of one status from several groups join."""
    merged: dict[int, list[str]] = {}
    for group in groups:
        for status, codes in group.items():
            merged.setdefault(status, []).append(codes)
    return {
        status: {"model": Error, "description": "; ".join(codes)}
        for status, codes in sorted(merged.items())
    }


def raw_error_responses(*groups: dict[int, str]) -> dict[str, dict[str, Any]]:
    """`error_responses` as OpenAPI objects, for an operation written by hand."""
    content = {"application/json": {"schema": {"$ref": ERROR_REF}}}
    return {
        str(status): {"description": response["description"], "content": content}
        for status, response in error_responses(*groups).items()
    }


SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "WorkspaceId": {
        "type": "apiKey",
        "in": "header",
        "name": "x-workspace-id",
        "description": "The workspace id; always sent with its API key (x-api-key or Bearer)",
    },
    "WorkspaceKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "WorkspaceBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The workspace API key as a Bearer token",
    },
    "WorkspaceToken": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Token <API key>` (the vendor-compatible routes, which need no "
        "x-workspace-id: the key alone names its workspace)",
    },
    "AdminToken": {"type": "http", "scheme": "bearer", "description": "OUTDIAL_ADMIN_TOKEN"},
    "MetricsToken": {"type": "http", "scheme": "bearer", "description": "OUTDIAL_METRICS_TOKEN"},
    "EventToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The call's event token, from the agent's dispatch contract",
    },
    "LiveKitWebhook": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "The JWT LiveKit signs each webhook with (the API key and secret)",
    },
}

_WORKSPACE: list[dict[str, list[str]]] = [
    {"WorkspaceId": [], "WorkspaceKey": []},
    {"WorkspaceId": [], "WorkspaceBearer": []},
]
# The vendor-compatible routes: the key alone (docs/compat.md).
_KEY_ONLY: list[dict[str, list[str]]] = [
    {"WorkspaceKey": []},
    {"WorkspaceBearer": []},
    {"WorkspaceToken": []},
]
# Longest prefix first; `{}` makes the credentials optional (readiness details only).
_SECURITY: list[tuple[str, list[dict[str, list[str]]]]] = [
    ("/v1/livekit/webhook", [{"LiveKitWebhook": []}]),
    ("/v1/internal/", [{"EventToken": []}]),
    ("/v1/admin/", [{"AdminToken": []}]),
    ("/v1/api/", _WORKSPACE),
    ("/readyz", [{}, {"MetricsToken": []}, {"AdminToken": []}]),
    ("/initiateCall", _KEY_ONLY),
    ("/v1/calls/", _KEY_ONLY),
    ("/api/v1/business/", _KEY_ONLY),
]
_CREDENTIAL_HEADERS = {"authorization", "x-workspace-id", "x-api-key"}
_DEFAULT_422 = "#/components/schemas/HTTPValidationError"


def _security_for(path: str) -> list[dict[str, list[str]]] | None:
    for prefix, security in _SECURITY:
        if path.startswith(prefix):
            return security
    return None


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Completes FastAPI's generated `schema` (in place): security schemes and requirements,
    and no trace of FastAPI's default validation error."""
    components = schema.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in schema["paths"].items():
        security = _security_for(path)
        for operation in operations.values():
            if security is not None:
                operation["security"] = security
                parameters = [
                    parameter
                    for parameter in operation.get("parameters", [])
                    if not (
                        parameter["in"] == "header"
                        and parameter["name"].lower() in _CREDENTIAL_HEADERS
                    )
                ]
                if parameters:
                    operation["parameters"] = parameters
                else:
                    operation.pop("parameters", None)
            responses = operation.get("responses", {})
            default = responses.get("422", {}).get("content", {}).get("application/json", {})
            if default.get("schema", {}).get("$ref") == _DEFAULT_422:
                # Added by FastAPI for any route with parameters; a route whose input can
                # be refused declares its own 422.
                del responses["422"]
    schemas = components.get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return schema
