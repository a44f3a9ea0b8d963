"""Agents of the calling workspace.

Every agent written passes the operator's policy (`check_agent_policy`): its worker name, model
base URLs and `sip:` transfer domain come from the operator's allowlists, so no workspace can
send a call's contract to another worker, the operator's model key to another host, or its
callees to an arbitrary SIP destination. The API stores and returns key names, never keys.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import SettingsDep, StoreDep, WorkspaceDep
from api.errors import ApiError, not_found
from api.openapi import BODY, NOT_FOUND, STORAGE, WORKSPACE_AUTH, error_responses
from api.schemas.agents import AgentCreate, AgentList, AgentOut, AgentUpdate, check_agent_policy
from api.store import agents

router = APIRouter(
    prefix="/v1/api/agents", tags=["agents"], responses=error_responses(WORKSPACE_AUTH, STORAGE)
)
# A route's 403 replaces the router's: routes that add codes repeat the router's.
_POLICY = WORKSPACE_AUTH | {
    403: f"{WORKSPACE_AUTH[403]}, WORKER_NAME_NOT_ALLOWED, MODEL_BASE_URL_NOT_ALLOWED, "
    "TRANSFER_NOT_ALLOWED (the operator's allowlists)"
}


async def _load(store: StoreDep, workspace_id: str, agent_id: str) -> dict[str, Any]:
    agent = await agents.get_agent(store, workspace_id, agent_id)
    if agent is None:
        raise not_found("agent", agent_id)
    return agent


@router.post("", status_code=201, responses=error_responses(BODY, _POLICY))
async def create_agent(
    body: AgentCreate, workspace: WorkspaceDep, store: StoreDep, settings: SettingsDep
) -> AgentOut:
    worker_name = body.worker_name or settings.agent_name
    check_agent_policy(body, worker_name, settings)
    fields = body.model_dump() | {"worker_name": worker_name}
    return AgentOut(**await agents.create_agent(store, workspace.id, fields))


@router.get("", response_model=AgentList)
async def list_agents(workspace: WorkspaceDep, store: StoreDep) -> dict[str, list[AgentOut]]:
    return {
        "agents": [AgentOut(**agent) for agent in await agents.list_agents(store, workspace.id)]
    }


@router.get("/{agent_id}", responses=error_responses(NOT_FOUND))
async def get_agent(agent_id: str, workspace: WorkspaceDep, store: StoreDep) -> AgentOut:
    return AgentOut(**await _load(store, workspace.id, agent_id))


@router.patch("/{agent_id}", responses=error_responses(NOT_FOUND, BODY, _POLICY))
async def update_agent(
    agent_id: str,
    body: AgentUpdate,
    workspace: WorkspaceDep,
    store: StoreDep,
    settings: SettingsDep,
) -> AgentOut:
    current = await _load(store, workspace.id, agent_id)
    merged = current | body.model_dump(exclude_unset=True)
    try:
        checked = AgentCreate(**{k: v for k, v in merged.items() if k in AgentCreate.model_fields})
    except ValueError as exc:
        raise ApiError(422, "VALIDATION_ERROR", f"agent would be invalid: {exc}") from exc
    worker_name = merged.get("worker_name") or current["worker_name"]
    # the whole result: an agent stored before the operator narrowed a list is fixed first
    check_agent_policy(checked, worker_name, settings)
    updated = current | checked.model_dump() | {"worker_name": worker_name}
    return AgentOut(**await agents.replace_agent(store, workspace.id, updated))


@router.delete("/{agent_id}", status_code=204, responses=error_responses(NOT_FOUND))
async def delete_agent(agent_id: str, workspace: WorkspaceDep, store: StoreDep) -> None:
    if not await agents.delete_agent(store, workspace.id, agent_id):
        raise not_found("agent", agent_id)
