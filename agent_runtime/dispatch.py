"""Reading the job's metadata: a `DispatchMetadata`, or what is needed to report why not."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError

from .contract import DispatchMetadata


@dataclass(frozen=True)
class DispatchFailure:
    """The metadata is not a valid dispatch. When the call id, events URL and token still
    parse, the failure can be reported to the API (`reportable`)."""

    message: str
    call_id: str | None = None
    events_url: str | None = None
    event_token: str | None = None

    @property
    def reportable(self) -> bool:
        return bool(self.call_id and self.events_url and self.event_token)


def parse_dispatch(raw: str) -> DispatchMetadata | DispatchFailure:
    try:
        document = json.loads(raw)
    except (TypeError, ValueError) as exc:
        return DispatchFailure(f"metadata is not JSON: {exc}")
    if not isinstance(document, dict):
        return DispatchFailure("metadata is not a JSON object")
    try:
        return DispatchMetadata.model_validate(document)
    except ValidationError as exc:
        fields = [".".join(str(p) for p in err["loc"]) for err in exc.errors()]
        return DispatchFailure(
            message=f"invalid dispatch metadata (fields: {', '.join(fields)})",
            call_id=_text(document.get("call_id")),
            events_url=_text(document.get("events_url")),
            event_token=_text(document.get("event_token")),
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
