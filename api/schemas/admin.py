"""Admin bodies: a workspace as the operator sees it (never its key hash; the key and
webhook secret only in the answer that created them), and what the operator sends."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.base import ResponseModel, Timestamp, iso_from_ms
from api.schemas.billing import Balance
from api.schemas.call_windows import CallWindowOut, CallWindowSpec
from api.schemas.numbers import TRUNK_ID_PATTERN
from api.store.workspaces import NewWorkspace, Workspace
from sip.numbers import parse_countries


class WorkspaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)


class WorkspaceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disabled: bool


class TrunkAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sip_trunk_id: str = Field(pattern=TRUNK_ID_PATTERN)


class CallWindowUpdate(BaseModel):
    """The default window of the workspace's calls (a call's or its agent's own comes
    first); null: none."""

    model_config = ConfigDict(extra="forbid")
    call_window: CallWindowSpec | None


class CountriesUpdate(BaseModel):
    """`countries`: ISO 3166 alpha-2 codes the workspace may call ([] = every country);
    null: the deployment's OUTDIAL_ALLOWED_COUNTRIES."""

    model_config = ConfigDict(extra="forbid")
    countries: list[str] | None = Field(max_length=300)

    @field_validator("countries")
    @classmethod
    def _known(cls, countries: list[str] | None) -> list[str] | None:
        if countries is None:
            return None
        return sorted(parse_countries(",".join(countries)))


def _shown(workspace: Workspace) -> dict[str, Any]:
    countries = workspace.allowed_countries
    return {
        "workspace_id": workspace.id,
        "name": workspace.name,
        "disabled": workspace.disabled,
        "allowed_countries": None if countries is None else sorted(parse_countries(countries)),
        "call_window": None if workspace.call_window is None else json.loads(workspace.call_window),
        "created_at": iso_from_ms(workspace.created_at),
    }


class WorkspaceOut(ResponseModel):
    workspace_id: str
    name: str
    disabled: bool
    # ISO 3166 alpha-2 codes ([] = every country); null: the deployment's default list
    allowed_countries: list[str] | None
    # the default window of the workspace's calls; null: none
    call_window: CallWindowOut | None = None
    created_at: Timestamp
    # minutes left; null: unlimited (no credits ever given, the default)
    balance: Balance | None = None

    @classmethod
    def of(cls, workspace: Workspace, balance_s: int | None = None) -> WorkspaceOut:
        return cls(**_shown(workspace), balance=Balance.of(balance_s))


class WorkspaceList(ResponseModel):
    """Oldest first."""

    workspaces: list[WorkspaceOut]


class WorkspaceCreated(WorkspaceOut):
    api_key: str
    webhook_secret: str

    @classmethod
    def of_new(cls, created: NewWorkspace) -> WorkspaceCreated:
        return cls(
            **_shown(created.workspace),
            api_key=created.api_key,
            webhook_secret=created.workspace.webhook_secret,
        )


class KeyRotated(ResponseModel):
    workspace_id: str
    api_key: str


class TrunkAssignments(ResponseModel):
    workspace_id: str
    sip_trunk_ids: list[str]
