"""Agents of the calling workspace (every write under the operator's policy:
`api.services.agents`). The API stores and returns key names, never keys."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SettingsDep, StoreDep, WorkspaceDep
from api.errors import not_found
from api.openapi import BODY, NOT_FOUND, STORAGE, WORKSPACE_AUTH, error_responses
from api.schemas.agents import AgentCreate, AgentList, AgentOut, AgentUpdate
from api.services import agents
from api.store import agents as stored_agents

router = APIRouter(
    prefix="/v1/api/agents", tags=["agents"], responses=error_responses(WORKSPACE_AUTH, STORAGE)
)
# A route's 403 replaces the router's: routes that add codes repeat the router's.
_POLICY = WORKSPACE_AUTH | {
    403: f"{WORKSPACE_AUTH[403]}, WORKER_NAME_NOT_ALLOWED, MODEL_BASE_URL_NOT_ALLOWED, "
    "TRANSFER_NOT_ALLOWED (the operator's allowlists)"
}


@router.post("", status_code=201, responses=error_responses(BODY, _POLICY))
async def create_agent(
    body: AgentCreate, workspace: WorkspaceDep, store: StoreDep, settings: SettingsDep
) -> AgentOut:
    return AgentOut.of(await agents.create_agent(store, settings, workspace.id, body))


@router.get("")
async def list_agents(workspace: WorkspaceDep, store: StoreDep) -> AgentList:
    found = await stored_agents.list_agents(store, workspace.id)
    return AgentList(agents=[AgentOut.of(agent) for agent in found])


@router.get("/{agent_id}", responses=error_responses(NOT_FOUND))
async def get_agent(agent_id: str, workspace: WorkspaceDep, store: StoreDep) -> AgentOut:
    return AgentOut.of(await agents.load_agent(store, workspace.id, agent_id))


@router.patch("/{agent_id}", responses=error_responses(NOT_FOUND, BODY, _POLICY))
async def update_agent(
    agent_id: str,
    body: AgentUpdate,
    workspace: WorkspaceDep,
    store: StoreDep,
    settings: SettingsDep,
) -> AgentOut:
    updated = await agents.update_agent(store, settings, workspace.id, agent_id, body)
    return AgentOut.of(updated)


@router.delete("/{agent_id}", status_code=204, responses=error_responses(NOT_FOUND))
async def delete_agent(agent_id: str, workspace: WorkspaceDep, store: StoreDep) -> None:
    if not await stored_agents.delete_agent(store, workspace.id, agent_id):
        raise not_found("agent", agent_id)
