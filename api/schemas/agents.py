"""Agent bodies. Templates are checked when written, so a call never meets bad syntax."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from agent_runtime.contract import PipelineConfig, TemplateError, template_variables
from sip.numbers import InvalidNumberError, to_e164

WORKER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


def _template(value: str | None) -> str | None:
    if value is not None:
        try:
            template_variables(value)
        except TemplateError as exc:
            raise ValueError(str(exc)) from exc
    return value


def _transfer_target(value: str | None) -> str | None:
    if value is None or value.startswith("sip:"):
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
