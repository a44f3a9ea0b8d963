"""Agent bodies. Templates are checked when written, so a call never meets bad syntax; the
operator's allowlists are checked by `api.services.agents` on every write."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from agent_runtime.contract import PipelineConfig, TemplateError, template_variables
from api.schemas.base import ResponseModel, Timestamp, iso_from_ms
from api.schemas.call_windows import CallWindowOut, CallWindowSpec
from api.store.agents import AgentRecord
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


class AgentCreate(BaseModel):
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
    # The window of this agent's calls that do not name one (api/schemas/call_windows.py).
    call_window: CallWindowSpec | None = None

    @model_validator(mode="after")
    def _voicemail_message_when_leaving_one(self) -> AgentCreate:
        if self.voicemail_action == "leave_message" and not self.voicemail_message:
            raise ValueError("voicemail_message is required when voicemail_action is leave_message")
        return self


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
    call_window: CallWindowSpec | None = None


class ModelOut(ResponseModel):
    provider: str
    model: str | None
    voice: str | None
    base_url: str | None
    language: str | None
    api_key_ref: str | None


class PipelineOut(ResponseModel):
    llm: ModelOut
    stt: ModelOut
    tts: ModelOut


class AgentOut(ResponseModel):
    """An agent as stored: every field of `AgentCreate` (a test holds the two together),
    its id, its worker name (the operator's default when none was given), its times."""

    id: str
    name: str
    instructions: str
    first_message: str | None
    worker_name: str
    pipeline: PipelineOut
    max_duration_seconds: int | None
    ring_timeout_seconds: int | None
    silence_timeout_seconds: int | None
    voicemail_action: Literal["hangup", "leave_message"]
    voicemail_message: str | None
    transfer_to: str | None
    call_window: CallWindowOut | None
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, agent: AgentRecord) -> AgentOut:
        return cls.model_validate(
            agent.fields()
            | {
                "created_at": iso_from_ms(agent.created_at),
                "updated_at": iso_from_ms(agent.updated_at),
            }
        )


class AgentList(ResponseModel):
    agents: list[AgentOut]
