"""The one response style: every response body is camelCase JSON, every timestamp an ISO 8601
UTC string with milliseconds (`2026-11-29T02:11:04.123Z`).

Response models inherit `ResponseModel` and declare snake_case attributes; its alias
generator names them in camelCase on the wire and in the OpenAPI document. A timestamp is a
`Timestamp`, filled by `iso_from_ms` from the epoch milliseconds the store keeps.
`tests/test_response_style.py` walks the OpenAPI document so the style cannot regress.
Request bodies keep their documented snake_case fields.
"""

from __future__ import annotations

from typing import Annotated, overload

from pydantic import BaseModel, ConfigDict, WithJsonSchema
from pydantic.alias_generators import to_camel

from api.store.events import iso_timestamp


class ResponseModel(BaseModel):
    """A response body: snake_case attributes, camelCase JSON. Built from snake_case names
    (records) or camelCase ones (dicts already in the wire shape) alike."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True
    )


# An ISO 8601 UTC string (`iso_timestamp`), described as such in the OpenAPI document.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


@overload
def iso_from_ms(epoch_ms: int) -> str: ...
@overload
def iso_from_ms(epoch_ms: int | None) -> str | None: ...
def iso_from_ms(epoch_ms: int | None) -> str | None:
    """The `Timestamp` of an instant kept as epoch milliseconds; None (not reached: "never",
    "not yet") stays None. Every int is an instant, 0 too (1970-01-01T00:00:00.000Z): a
    field that keeps "never" as 0 passes `value or None`."""
    return None if epoch_ms is None else iso_timestamp(epoch_ms / 1000)
