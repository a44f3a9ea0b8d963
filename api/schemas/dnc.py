"""Do-not-call list bodies: numbers to add (as people type them; each is parsed on its own),
the answer that accounts for every one of them, and the list's entries."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.base import ResponseModel, Timestamp, iso_from_ms
from api.store.dnc import DncEntry

MAX_NUMBERS_PER_ADD = 10_000
# 10,000 numbers of up to 64 characters, JSON-quoted, with room for escapes.
DNC_BODY_LIMIT = 1024 * 1024
# A cursor is the last number of a page (E.164).
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"


class DncAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    numbers: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1, max_length=MAX_NUMBERS_PER_ADD
    )


class InvalidDncNumber(ResponseModel):
    index: int  # in the request's `numbers`
    number: str
    reason: str


class DncAdded(ResponseModel):
    """Every item of the request in one of three places: `added + alreadyListed +
    len(invalid)` is the request's count (an item repeated in it is already listed after
    its first)."""

    added: int
    already_listed: int
    invalid: list[InvalidDncNumber]


class DncEntryOut(ResponseModel):
    number: str
    added_at: Timestamp
    # `api`, `opt_out` (the callee asked the agent) or `import`
    source: str

    @classmethod
    def of(cls, entry: DncEntry) -> DncEntryOut:
        return cls(number=entry.number, added_at=iso_from_ms(entry.added_at), source=entry.source)


class DncPage(ResponseModel):
    """In number order; `nextCursor` null at the end of the list; `total` the list's size."""

    numbers: list[DncEntryOut]
    next_cursor: str | None
    total: int
