"""Minute balances and usage: the operator's credits, a workspace's balance as shown, the
usage report and the agent's reservation answer."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.base import ResponseModel

# A top-up larger than this is a typo (about 19 years of one call).
MAX_CREDIT_MINUTES = 10_000_000


class CreditsAdd(BaseModel):
    """Minutes to add to the workspace's balance (decimals allowed, counted to the second).
    A workspace never given credits is unlimited; its first credits make it metered."""

    model_config = ConfigDict(extra="forbid")
    minutes: float = Field(gt=0, le=MAX_CREDIT_MINUTES, allow_inf_nan=False)

    @property
    def seconds(self) -> int:
        # at least one: a positive top-up never rounds to nothing
        return max(round(self.minutes * 60), 1)


class Balance(ResponseModel):
    """What a metered workspace has left (minutes to two decimals)."""

    seconds: int
    minutes: float

    @classmethod
    def of(cls, seconds: int | None) -> Balance | None:
        return None if seconds is None else cls(seconds=seconds, minutes=round(seconds / 60, 2))


class WorkspaceBalance(ResponseModel):
    workspace_id: str
    # null: unlimited (never given credits, or returned to unlimited)
    balance: Balance | None


class UsageDay(ResponseModel):
    date: str  # YYYY-MM-DD (UTC), the day the calls ended
    calls: int
    minutes: float  # billed, to two decimals
    billed_seconds: int
    # Calls by terminal status (completed, no_answer, busy, failed, canceled).
    outcomes: dict[str, int]


class UsageTotal(ResponseModel):
    calls: int
    minutes: float
    billed_seconds: int
    outcomes: dict[str, int]


class UsageReport(ResponseModel):
    """Days without calls are left out."""

    from_: str = Field(alias="from")
    to: str
    days: list[UsageDay]
    total: UsageTotal


class WorkspaceUsage(UsageReport):
    workspace_id: str


class AllUsage(ResponseModel):
    from_: str = Field(alias="from")
    to: str
    workspaces: list[WorkspaceUsage]


class ReservationAnswer(ResponseModel):
    """`granted`: the call may go on; `reservedSeconds`: what it holds from the answer on
    (0: not metered, or not any more). A grant that does not add to what the agent holds
    tells it to stop asking."""

    granted: bool
    reserved_seconds: int
