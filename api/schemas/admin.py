"""Admin bodies: a workspace as the operator sees it (never its key or token hash; the key,
the integration base URL and the webhook secret only in the answer that created them, the
key and the URL again only in a rotation's), and what the operator sends."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.base import ResponseModel, Timestamp, iso_from_ms
from api.schemas.billing import Balance
from api.schemas.call_windows import CallWindowOut, CallWindowSpec
from api.schemas.numbers import TRUNK_ID_PATTERN
from api.security import integration_base_url
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
        "alias": workspace.alias,
        "name": workspace.name,
        "disabled": workspace.disabled,
        "allowed_countries": None if countries is None else sorted(parse_countries(countries)),
        "call_window": None if workspace.call_window is None else json.loads(workspace.call_window),
        "created_at": iso_from_ms(workspace.created_at),
    }


class WorkspaceOut(ResponseModel):
    workspace_id: str
    # the numeric id vendor-compatible routes name the workspace by (their businessId)
    alias: int | None
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
    # `{base}/hooks/<token>`: vendor-compatible routes under it answer without a header
    integration_base_url: str
    webhook_secret: str

    @classmethod
    def of_new(cls, created: NewWorkspace, base_url: str) -> WorkspaceCreated:
        """`base_url`: where callers reach the API (`api.deps.public_base_url`)."""
        return cls(
            **_shown(created.workspace),
            api_key=created.api_key,
            integration_base_url=integration_base_url(base_url, created.hook_token),
            webhook_secret=created.workspace.webhook_secret,
        )


class KeyRotated(ResponseModel):
    workspace_id: str
    api_key: str


class HookTokenRotated(ResponseModel):
    workspace_id: str
    # the new integration base URL (the old one stopped working)
    integration_base_url: str


class TrunkAssignments(ResponseModel):
    workspace_id: str
    sip_trunk_ids: list[str]
