"""Every error leaves the API as `{"status": "error", "code", "message", "details"}`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("outdial.api")

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


class ApiError(Exception):
    """An error with a stable code that clients can branch on."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def unauthorized(message: str = "missing or invalid credentials") -> ApiError:
    return ApiError(401, "UNAUTHORIZED", message)


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{what} {ident} not found", {"id": ident})


def service_unavailable(message: str = "storage is unavailable, nothing was stored") -> ApiError:
    return ApiError(503, "SERVICE_UNAVAILABLE", message)


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    body = {"status": "error", "code": code, "message": message, "details": details or {}}
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(body, status_code=status, headers=headers)


def storage_unavailable(exc: RedisError) -> JSONResponse:
    """The answer to any request that Redis failed: 503 and Retry-After (see docs/operations.md
    for a write whose reply was lost: retry it with the same Idempotency-Key)."""
    logger.error("redis unavailable: %s", exc)
    return error_response(503, "SERVICE_UNAVAILABLE", "storage is unavailable, retry later")


def validation_error(errors: Sequence[Any]) -> ApiError:
    """VALIDATION_ERROR from pydantic-style errors (`loc`, `msg`), first one in the message."""
    details = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        details.append({"field": ".".join(location), "message": error.get("msg", "invalid")})
    first = details[0] if details else {"field": "", "message": "invalid"}
    message = f"{first['field'] or 'request'}: {first['message']}"
    return ApiError(422, "VALIDATION_ERROR", message, {"errors": details})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        error = validation_error(exc.errors())
        return error_response(error.status, error.code, error.message, error.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RedisError)
    async def _redis(_: Request, exc: RedisError) -> JSONResponse:
        return storage_unavailable(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return error_response(500, "INTERNAL_ERROR", "unexpected error")
