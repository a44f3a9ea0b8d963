"""Admin response bodies: a workspace as the operator sees it (never its key hash; the key
and webhook secret only in the answer that created them)."""

from __future__ import annotations

from pydantic import BaseModel


class WorkspaceOut(BaseModel):
    workspaceId: str
    name: str
    disabled: bool
    # ISO 3166 alpha-2 codes ([] = every country); null: the deployment's default list
    allowedCountries: list[str] | None
    createdAt: int


class WorkspaceCreated(WorkspaceOut):
    apiKey: str
    webhookSecret: str


class KeyRotated(BaseModel):
    workspaceId: str
    apiKey: str


class TrunkAssignments(BaseModel):
    workspaceId: str
    sipTrunkIds: list[str]
