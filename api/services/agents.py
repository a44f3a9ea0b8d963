"""Agents of a workspace: every write under the operator's policy.

Invariant: every agent written passes the operator's policy (`check_agent_policy`) as a
whole: its worker name, model base URLs and `sip:` transfer domain come from the operator's
allowlists, so no workspace can send a call's contract to another worker, the operator's
model key to another host, or its callees to an arbitrary SIP destination. An update is
merged into the stored agent and the result validated again, so an agent stored before the
operator narrowed a list is fixed by its next write. (The worker name is checked once more
when a call is accepted: the list may have changed since.)
"""

from __future__ import annotations

from api.errors import ApiError, not_found
from api.schemas.agents import AgentCreate, AgentUpdate, transfer_sip_domain
from api.settings import Settings
from api.store import agents
from api.store.agents import AgentRecord
from api.store.base import Store


async def load_agent(store: Store, workspace_id: str, agent_id: str) -> AgentRecord:
    """The workspace's agent; NOT_FOUND when it has none such."""
    agent = await agents.get_agent(store, workspace_id, agent_id)
    if agent is None:
        raise not_found("agent", agent_id)
    return agent


async def create_agent(
    store: Store, settings: Settings, workspace_id: str, body: AgentCreate
) -> AgentRecord:
    worker_name = body.worker_name or settings.agent_name
    check_agent_policy(body, worker_name, settings)
    fields = body.model_dump() | {"worker_name": worker_name}
    return await agents.insert_agent(store, workspace_id, fields)


async def update_agent(
    store: Store, settings: Settings, workspace_id: str, agent_id: str, body: AgentUpdate
) -> AgentRecord:
    """Only the fields sent change; the result is validated (and policed) as a whole."""
    current = await load_agent(store, workspace_id, agent_id)
    merged = current.fields() | body.model_dump(exclude_unset=True)
    try:
        checked = AgentCreate(**{k: v for k, v in merged.items() if k in AgentCreate.model_fields})
    except ValueError as exc:
        raise ApiError(422, "VALIDATION_ERROR", f"agent would be invalid: {exc}") from exc
    worker_name = merged.get("worker_name") or current.worker_name
    check_agent_policy(checked, worker_name, settings)
    updated = current.fields() | checked.model_dump() | {"worker_name": worker_name}
    return await agents.replace_agent(store, workspace_id, AgentRecord.from_fields(updated))


def check_worker_name(name: str, settings: Settings) -> None:
    """WORKER_NAME_NOT_ALLOWED unless the operator lets workspaces dispatch to `name`."""
    if not settings.worker_name_allowed(name):
        raise ApiError(
            403,
            "WORKER_NAME_NOT_ALLOWED",
            f"worker_name {name!r} is not one the operator allows (OUTDIAL_ALLOWED_WORKER_NAMES)",
            {"workerName": name},
        )


def _check_models(agent: AgentCreate, settings: Settings) -> None:
    allowed = settings.allowed_model_base_urls
    for stage in ("llm", "stt", "tts"):
        model = getattr(agent.pipeline, stage)
        if model.base_url is not None and model.base_url.rstrip("/") not in allowed:
            raise ApiError(
                403,
                "MODEL_BASE_URL_NOT_ALLOWED",
                f"pipeline.{stage}.base_url is not one the operator allows "
                "(OUTDIAL_ALLOWED_MODEL_BASE_URLS); leave it out to use the operator's models",
                {"field": f"pipeline.{stage}.base_url"},
            )
        if model.api_key_ref is not None and model.base_url is None:
            # the workspace's key is for its own endpoint, not the operator's
            raise ApiError(
                403,
                "MODEL_BASE_URL_NOT_ALLOWED",
                f"pipeline.{stage}.api_key_ref needs a pipeline.{stage}.base_url the operator "
                "allows",
                {"field": f"pipeline.{stage}.api_key_ref"},
            )


def _check_transfer(agent: AgentCreate, settings: Settings) -> None:
    domain = transfer_sip_domain(agent.transfer_to) if agent.transfer_to else None
    if domain is not None and domain not in settings.allowed_transfer_domains:
        raise ApiError(
            403,
            "TRANSFER_NOT_ALLOWED",
            f"transfer_to domain {domain!r} is not one the operator allows "
            "(OUTDIAL_ALLOWED_TRANSFER_DOMAINS); E.164 numbers are always allowed",
            {"transferTo": agent.transfer_to},
        )


def check_agent_policy(agent: AgentCreate, worker_name: str, settings: Settings) -> None:
    """The operator's allowlists (403 with a stable code): worker name, model base URLs
    (and key references only with one), `sip:` transfer domain."""
    check_worker_name(worker_name, settings)
    _check_models(agent, settings)
    _check_transfer(agent, settings)
