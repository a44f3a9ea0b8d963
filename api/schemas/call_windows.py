"""The `call_window` body (a call, an agent, a workspace default), checked into a
`CallWindow` (api/services/call_windows.py, which states its rules).

Invariant: a window that is accepted can be used: its days and times parse, its start and
end differ and its zone exists (`"callee"` is checked per call, against the number).
"""

from __future__ import annotations

from datetime import time
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.schemas.base import ResponseModel
from api.services.call_windows import CALLEE, DAY_NAMES, CallWindow, zone

DayName = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WALL_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"


class CallWindowSpec(BaseModel):
    """When calls may start: on `days`, from `start` to `end` (24 h `HH:MM` or
    `HH:MM:SS`; an `end` before `start` runs into the next day), in the callee's zones
    (`"callee"`) or an IANA zone."""

    model_config = ConfigDict(extra="forbid")

    days: list[DayName] = Field(min_length=1, max_length=7)
    start: str = Field(pattern=_WALL_TIME)
    end: str = Field(pattern=_WALL_TIME)
    timezone: str = Field(CALLEE, min_length=1, max_length=64)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        if name != CALLEE:
            zone(name)  # ValueError for an unknown zone
        return name

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if time.fromisoformat(self.start) == time.fromisoformat(self.end):
            raise ValueError("start and end must differ")
        if len(set(self.days)) != len(self.days):
            raise ValueError("days must not repeat")
        return self

    def window(self) -> CallWindow:
        return CallWindow(
            days=frozenset(DAY_NAMES.index(day) for day in self.days),
            start=time.fromisoformat(self.start),
            end=time.fromisoformat(self.end),
            timezone=self.timezone,
        )


class CallWindowOut(ResponseModel):
    """A stored window as the API shows it (the fields of `CallWindowSpec`)."""

    days: list[str]
    start: str
    end: str
    timezone: str
