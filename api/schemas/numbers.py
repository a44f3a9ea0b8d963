"""Caller-id bodies: a number and the LiveKit outbound trunk that carries it.

A trunk spec's address must be a public host (`sip.trunks.check_trunk_host`); a raw
`sip_trunk_id` is checked against the operator's assignments when the number is saved.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.schemas.base import ResponseModel, Timestamp, iso_from_ms
from api.store.numbers import CallerNumber
from sip.numbers import number_id
from sip.trunks import check_trunk_host

TRUNK_ID_PATTERN = r"^ST_[A-Za-z0-9]{1,64}$"


class TrunkSpec(BaseModel):
    """An outbound trunk Outdial creates through LiveKit's SIP API."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.\-]+(:\d{1,5})?$")
    transport: Literal["udp", "tcp", "tls", "auto"] = "auto"
    auth_username: str | None = Field(None, max_length=255)
    auth_password: str | None = Field(None, max_length=255)

    @field_validator("address")
    @classmethod
    def _public_host(cls, address: str) -> str:
        check_trunk_host(address)
        return address


class NumberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(min_length=2, max_length=32)
    sip_trunk_id: str | None = Field(None, pattern=TRUNK_ID_PATTERN)
    trunk: TrunkSpec | None = None
    default: bool = False

    @model_validator(mode="after")
    def _exactly_one_trunk(self) -> NumberCreate:
        if (self.sip_trunk_id is None) == (self.trunk is None):
            raise ValueError("give exactly one of sip_trunk_id or trunk")
        return self


class NumberOut(ResponseModel):
    # `num_` and the E.164 digits: accepted wherever the number is (`from_number`)
    id: str
    number: str
    sip_trunk_id: str
    default: bool
    trunk_managed: bool
    created_at: Timestamp

    @classmethod
    def of(cls, number: CallerNumber) -> NumberOut:
        return cls(
            id=number_id(number.number),
            number=number.number,
            sip_trunk_id=number.sip_trunk_id,
            default=number.default,
            trunk_managed=number.trunk_managed,
            created_at=iso_from_ms(number.created_at),
        )


class NumberList(ResponseModel):
    numbers: list[NumberOut]
