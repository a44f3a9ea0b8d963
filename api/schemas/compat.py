"""The vendor-compatible routes' bodies, in their vendors' shapes (docs/compat.md): the
request models document what each route reads itself, the answers and errors are what it
sends. Their property names are the vendors', not Outdial's camelCase: the contract a
client moving from that vendor already has."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

# --- VoiceGenie: POST /initiateCall ----------------------------------------------------------


class InitiateCall(BaseModel):
    """The request body (documentation only: the route reads it itself, to answer a bad one
    in VoiceGenie's shape)."""

    phone_number: str = Field(description="The number to call, in E.164 (+14155550123)")
    agent_id: str = Field(description="The Outdial agent that talks")
    custom_data: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="The call's dynamic variables (scalar values)"
    )


class InitiatedCall(BaseModel):
    call_uuid: str
    status: Literal["initiated"]
    phone_number: str
    agent_id: str
    initiated_at: str = Field(description="ISO 8601, UTC")


class CallInitiated(BaseModel):
    success: Literal[True]
    message: str
    data: InitiatedCall


class VoiceGenieError(BaseModel):
    success: Literal[False]
    message: str
    error: str


# --- Iqra: POST /api/v1/business/{businessId}/call/initiate, GET .../call/{callId} ----------

IqraStatus = Literal["Queued", "Processing", "In Progress", "Completed", "Failed"]


class InitiateForm(BaseModel):
    """The body's fields (documentation only: the route reads the form itself)."""

    RecipientNumber: str = Field(description="The number to call, E.164")
    NumberId: str = Field(description="A registered caller number: its id (num_…) or E.164")
    AgentId: str
    CampaignId: str | None = None
    ScheduledTime: str | None = Field(
        None, description="ISO 8601; without an offset it is UTC. The call is scheduled."
    )
    DynamicVariables: dict[str, str] | None = Field(
        None, description="Form fields DynamicVariables[Name]=value (an object in JSON)"
    )
    Metadata: dict[str, str] | None = Field(
        None, description="Form fields Metadata[Name]=value (an object in JSON)"
    )


class CallIds(BaseModel):
    Success: Literal[True]
    Data: list[str]


class IqraCall(BaseModel):
    Id: str
    Status: IqraStatus
    RecipientNumber: str
    NumberId: str | None
    AgentId: str
    CampaignId: str | None
    CreatedAt: str
    ScheduledTime: str | None
    EndedAt: str | None
    EndReason: str | None
    DynamicVariables: dict[str, Any]
    Metadata: dict[str, Any]


class CallFound(BaseModel):
    Success: Literal[True]
    Data: IqraCall


class IqraError(BaseModel):
    Success: Literal[False]
    Code: str = Field(description="<Operation>:<CODE>, e.g. InitiateCall:INVALID_NUMBER")
    Message: str
    Data: None


# --- Contactship: POST /v1/calls/single-phone-call -------------------------------------------


class KeyValue(BaseModel):
    key: str
    value: str | int | float | bool | None


class Schedule(BaseModel):
    date: str | None = Field(None, description="ISO 8601 date or time (no offset: UTC)")
    datetime: str | None = Field(None, description="the same, by its other name")


class SinglePhoneCall(BaseModel):
    """The request body (documentation only: the route reads it itself, to name every wrong
    field in Contactship's shape)."""

    from_number: str = Field(description="A registered caller number (E.164 or num_…)")
    to_number: str = Field(description="The number to call, E.164")
    full_name: str
    agent_id: str
    email: str | None = None
    country: str | None = None
    delay: int = Field(0, ge=0, description="Minutes from now")
    schedule: Schedule | None = None
    additional_data: list[KeyValue] = Field(default_factory=list)
    webhook_url: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class CallCreated(BaseModel):
    call_id: str
    agent_id: str
    contact_id: None
    created_at: str = Field(description="ISO 8601, UTC")


class ContactshipError(BaseModel):
    statusCode: int
    error: str
    message: str | list[str]
