"""The conversation as the `call.transcript` event reports it."""

from __future__ import annotations

from typing import Any

from livekit.agents import ChatContext


def transcript_turns(history: ChatContext) -> list[dict[str, Any]]:
    """User and assistant messages in order, with speaking times when the session has them."""
    turns: list[dict[str, Any]] = []
    for item in history.items:
        if item.type != "message" or item.role not in ("user", "assistant"):
            continue
        text = item.text_content
        if not text:
            continue
        started = item.metrics.get("started_speaking_at", item.created_at)
        turns.append(
            {
                "role": item.role,
                "text": text,
                "started_at": started,
                "ended_at": item.metrics.get("stopped_speaking_at", started),
                "interrupted": item.interrupted,
            }
        )
    return turns
