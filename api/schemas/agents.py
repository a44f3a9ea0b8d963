"""Agent bodies. Templates are checked when written, so a call never meets bad syntax; the
operator's allowlists too (`check_agent_policy`), so a stored agent names only the workers,
model endpoints and SIP transfer domains the operator allows (the worker name is checked
again when a call is accepted: the list may have changed since)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from agent_runtime.contract import PipelineConfig, TemplateError, template_variables
from api.errors import ApiError
from api.settings import Settings
from sip.numbers import InvalidNumberError, to_e164

WORKER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


def _template(value: str | None) -> str | None:
    if value is not None:
        try:
            template_variables(value)
        except TemplateError as exc:
            raise ValueError(str(exc)) from exc
    return value


# sip:[user@]host[:port][;param]...: strict, so the host the allowlist checks is the host
# the REFER goes to (no `@` after the host, no headers, no password).
_SIP_URI = re.compile(
    r"sip:(?:[^@\s:;?]+@)?(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::[0-9]{1,5})?(?:;[^@\s;?]+)*"
)


def transfer_sip_domain(value: str) -> str | None:
    """The host of a `sip:` transfer target (lower case), None for a phone number."""
    match = _SIP_URI.fullmatch(value)
    return match.group("host").lower() if match else None


def _transfer_target(value: str | None) -> str | None:
    if value is None:
        return value
    if value.startswith("sip:"):
        if transfer_sip_domain(value) is None:
            raise ValueError("transfer_to sip: URI must be sip:[user@]host[:port][;params]")
        return value
    try:
        return to_e164(value)
    except InvalidNumberError as exc:
        raise ValueError(f"transfer_to must be an E.164 number or a sip: URI ({exc})") from exc


Template = Annotated[str, AfterValidator(_template)]
TransferTarget = Annotated[str, AfterValidator(_transfer_target)]


class _AgentFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    instructions: Template = Field(min_length=1, max_length=20_000)
    first_message: Template | None = Field(None, max_length=2_000)
    worker_name: str | None = Field(None, pattern=WORKER_NAME_PATTERN)
    pipeline: PipelineConfig = PipelineConfig()
    max_duration_seconds: int | None = Field(None, ge=10, le=14_400)
    ring_timeout_seconds: int | None = Field(None, ge=5, le=80)
    silence_timeout_seconds: int | None = Field(None, ge=5, le=600)
    voicemail_action: Literal["hangup", "leave_message"] = "hangup"
    voicemail_message: Template | None = Field(None, max_length=2_000)
    transfer_to: TransferTarget | None = None

    @model_validator(mode="after")
    def _voicemail_message_when_leaving_one(self) -> _AgentFields:
        if self.voicemail_action == "leave_message" and not self.voicemail_message:
            raise ValueError("voicemail_message is required when voicemail_action is leave_message")
        return self


class AgentCreate(_AgentFields):
    pass


class AgentUpdate(BaseModel):
    """PATCH: only the fields sent change; the result is validated as a whole."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100)
    instructions: Template | None = Field(None, min_length=1, max_length=20_000)
    first_message: Template | None = Field(None, max_length=2_000)
    worker_name: str | None = Field(None, pattern=WORKER_NAME_PATTERN)
    pipeline: PipelineConfig | None = None
    max_duration_seconds: int | None = Field(None, ge=10, le=14_400)
    ring_timeout_seconds: int | None = Field(None, ge=5, le=80)
    silence_timeout_seconds: int | None = Field(None, ge=5, le=600)
    voicemail_action: Literal["hangup", "leave_message"] | None = None
    voicemail_message: Template | None = Field(None, max_length=2_000)
    transfer_to: TransferTarget | None = None


class AgentOut(_AgentFields):
    model_config = ConfigDict(extra="ignore")

    id: str
    worker_name: str
    created_at: int
    updated_at: int


# --- The operator's policy: checked by the routes (api/routes/agents.py) on every write.


def check_worker_name(name: str, settings: Settings) -> None:
    """WORKER_NAME_NOT_ALLOWED unless the operator lets workspaces dispatch to `name`."""
    if not settings.worker_name_allowed(name):
        raise ApiError(
            403,
            "WORKER_NAME_NOT_ALLOWED",
            f"worker_name {name!r} is not one the operator allows (OUTDIAL_ALLOWED_WORKER_NAMES)",
            {"worker_name": name},
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
            {"transfer_to": agent.transfer_to},
        )


def check_agent_policy(agent: AgentCreate, worker_name: str, settings: Settings) -> None:
    """The operator's allowlists (403 with a stable code): worker name, model base URLs
    (and key references only with one), `sip:` transfer domain."""
    check_worker_name(worker_name, settings)
    _check_models(agent, settings)
    _check_transfer(agent, settings)


class AgentList(BaseModel):
    agents: list[AgentOut]
