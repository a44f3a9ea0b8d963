"""Limit bodies: what the operator sets (per trunk, per workspace) and what a workspace sees
(`GET /v1/api/limits`). 0 means unlimited; null in a request puts the deployment's default
back. Rates are calls per second (decimals allowed, at most 1000)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.base import ResponseModel
from api.settings import checked_rate
from api.store.limits import TrunkOverrides, TrunkUse, WorkspaceUse

MAX_RATE = 1000.0
MAX_CONCURRENCY = 100_000


class TrunkLimitsUpdate(BaseModel):
    """`PUT /v1/admin/trunks/{sip_trunk_id}/limits`: the trunk's own limits; an omitted or
    null field is the deployment's default."""

    model_config = ConfigDict(extra="forbid")
    max_calls_per_second: float | None = Field(None, ge=0, le=MAX_RATE, allow_inf_nan=False)
    max_concurrent_calls: int | None = Field(None, ge=0, le=MAX_CONCURRENCY)

    @field_validator("max_calls_per_second")
    @classmethod
    def _a_usable_rate(cls, value: float | None) -> float | None:
        return None if value is None else checked_rate(value)

    def overrides(self) -> TrunkOverrides:
        return TrunkOverrides(self.max_calls_per_second, self.max_concurrent_calls)


class WorkspaceLimitsUpdate(BaseModel):
    """`PUT /v1/admin/workspaces/{workspace_id}/limits`: null is the deployment's default."""

    model_config = ConfigDict(extra="forbid")
    max_concurrent_calls: int | None = Field(ge=0, le=MAX_CONCURRENCY)


class TrunkLimitsOut(ResponseModel):
    """The limits in force (0 = unlimited) and whether each is the trunk's own (`…Own`)."""

    sip_trunk_id: str
    max_calls_per_second: float
    max_concurrent_calls: int
    max_calls_per_second_own: bool
    max_concurrent_calls_own: bool

    @classmethod
    def of(
        cls, sip_trunk_id: str, rate: float, concurrency: int, own: TrunkOverrides
    ) -> TrunkLimitsOut:
        return cls(
            sip_trunk_id=sip_trunk_id,
            max_calls_per_second=rate,
            max_concurrent_calls=concurrency,
            max_calls_per_second_own=own.max_calls_per_second is not None,
            max_concurrent_calls_own=own.max_concurrent_calls is not None,
        )


class TrunkUseOut(TrunkLimitsOut):
    """`inUse`: calls holding one of the trunk's slots now (every workspace using the trunk);
    `waiting`: this workspace's calls waiting for it."""

    in_use: int
    waiting: int

    @classmethod
    def of_use(cls, use: TrunkUse) -> TrunkUseOut:
        limits = TrunkLimitsOut.of(
            use.sip_trunk_id, use.max_calls_per_second, use.max_concurrent_calls, use.overridden
        )
        return cls(**limits.model_dump(by_alias=False), in_use=use.in_use, waiting=use.waiting)


class WorkspaceLimitsOut(ResponseModel):
    workspace_id: str
    max_concurrent_calls: int
    max_concurrent_calls_own: bool
    in_use: int


class LimitsView(ResponseModel):
    """`GET /v1/api/limits`: the workspace's limit and use, and each of its trunks'."""

    workspace: WorkspaceLimitsOut
    trunks: list[TrunkUseOut]

    @classmethod
    def of(cls, use: WorkspaceUse) -> LimitsView:
        return cls(
            workspace=WorkspaceLimitsOut(
                workspace_id=use.workspace_id,
                max_concurrent_calls=use.max_concurrent_calls,
                max_concurrent_calls_own=use.overridden,
                in_use=use.in_use,
            ),
            trunks=[TrunkUseOut.of_use(t) for t in use.trunks],
        )
