"""Fields of a request body sent as a form (multipart or urlencoded) or as a JSON object.

Invariant: the body is read within its limit before it is parsed (`common.read_body`), a
form holds text fields only (no file part is ever written anywhere), and a refusal is an
`ApiError` naming the field, so the vendor module shapes it like any other.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser

from api.errors import ApiError
from api.routes.compat.common import json_object, read_body

# What a form may hold: far more fields than a call needs.
MAX_FORM_FIELDS = 1000
FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


async def read_fields(request: Request, limit: int, maps: tuple[str, ...]) -> dict[str, Any]:
    """The body's fields. In a form, a field `Name[Key]` of a `Name` in `maps` is gathered
    into a `Name` object, as JSON sends it; `Name` sent both ways is a VALIDATION_ERROR."""
    raw = await read_body(request, limit)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json":
        body = json_object(raw)
        if body is None:
            raise ApiError(400, "BAD_REQUEST", "the body must be a JSON object")
        return body
    if media not in FORMS:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "send multipart/form-data or JSON")
    fields: dict[str, Any] = {}
    for name, value in (await _parse(request, raw, media, limit)).multi_items():
        if isinstance(value, UploadFile):
            raise ApiError(400, "BAD_REQUEST", f"{name}: a file where a text field belongs")
        head, bracket, rest = name.partition("[")
        is_map_entry = bracket and rest.endswith("]") and head in maps
        target = head if is_map_entry else name
        if target in maps and (is_map_entry != isinstance(fields.get(target, {}), dict)):
            errors = {"errors": [{"field": target, "message": "send one object"}]}
            raise ApiError(422, "VALIDATION_ERROR", f"{target} must be an object", errors)
        if is_map_entry:
            fields.setdefault(head, {})[rest[:-1]] = value
        else:
            fields[name] = value
    return fields


async def _parse(request: Request, raw: bytes, media: str, limit: int) -> FormData:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield raw

    try:
        if media == "multipart/form-data":
            parser = MultiPartParser(
                request.headers,
                stream(),
                max_files=0,
                max_fields=MAX_FORM_FIELDS,
                max_part_size=limit,
            )
            return await parser.parse()
        return await FormParser(request.headers, stream()).parse()
    except (MultiPartException, ValueError) as exc:
        raise ApiError(400, "BAD_REQUEST", f"the form does not parse: {exc}") from exc
