"""The workspace's events, live: `GET /v1/api/events/stream` (server-sent events)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from api.deps import SettingsDep, StoreDep, WorkspaceDep
from api.ids import ID_PATTERN
from api.openapi import STORAGE, WORKSPACE_AUTH, raw_error_responses
from api.schemas.feed import StreamedEvent
from api.services.event_stream import FEED_POSITION_PATTERN, StreamRequest, open_event_stream

# Errors are JSON (`raw_error_responses`): only the 200 is an event stream.
router = APIRouter(prefix="/v1/api", tags=["events"])


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


# Written out (as FastAPI writes a generator's SSE route, OpenAPI 3.2 style): the route
# returns its response itself, and a `model` would be documented as the whole body.
_STREAM: dict[str, dict[str, Any]] = {
    "200": {
        "description": "Server-sent events: each is `id: <position>` (a feed entry id, or "
        "`history-<sequence>` for a call's events so far) and one `data:` line, a "
        "StreamedEvent; a comment line (`: heartbeat`) after 15 s without events",
        "content": {
            "text/event-stream": {
                "itemSchema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": StreamedEvent.model_json_schema(by_alias=True),
                        },
                        "id": {"type": "string"},
                    },
                }
            }
        },
    }
}
_ERRORS = raw_error_responses(
    WORKSPACE_AUTH,
    STORAGE,
    {
        404: "NOT_FOUND: no such call (`call_id`)",
        422: "VALIDATION_ERROR: a parameter is invalid (`after` beyond a feed entry id's range, "
        "a `history-` position without `call_id`)",
        429: "TOO_MANY_STREAMS: the workspace has OUTDIAL_EVENT_STREAMS_PER_WORKSPACE streams "
        "open; EVENT_STREAMS_FULL: the deployment has OUTDIAL_EVENT_STREAMS_MAX open",
    },
)
_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: response for status, response in (_STREAM | _ERRORS).items()
}


@router.get(
    "/events/stream",
    # No media type: FastAPI adds no body schema of its own to the 200 above.
    response_class=StreamingResponse,
    responses=_RESPONSES,
)
async def stream_events(
    workspace: WorkspaceDep,
    store: StoreDep,
    settings: SettingsDep,
    call_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    after: Annotated[str | None, Query(pattern=FEED_POSITION_PATTERN)] = None,
    max_seconds: Annotated[int | None, Query(ge=0, le=86_400)] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", pattern=FEED_POSITION_PATTERN)
    ] = None,
) -> EventStreamResponse:
    """Every event recorded for the workspace's calls from now on, in the order recorded,
    or only `call_id`'s (its events so far first). `Last-Event-ID` (or `after`, the header
    wins) goes on after the item of that id; `after=0` starts at the oldest event the feed
    keeps.
    `max_seconds` ends the stream (0: the events there are now)."""
    request = StreamRequest(workspace.id, last_event_id or after, call_id, max_seconds)
    stream = await open_event_stream(store, settings, request)
    # No buffering by a proxy in front (nginx), no caching.
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return EventStreamResponse(stream, headers=headers)
