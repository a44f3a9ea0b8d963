"""Phone numbers: everything Outdial stores or dials is E.164, and what it may dial. A
registered number's id (`num_<digits>`) is derived from its E.164 form, here only.

Invariant: a destination is dialed only if `check_destination` accepts it. By default that
refuses the number types and ranges that toll fraud runs up bills on (see `HIGH_COST_TYPES`
and `HIGH_COST_COUNTRY_CODES`) and, when an allowlist is given, every country outside it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberType
from phonenumbers.phonenumberutil import _number_type_helper  # private: see _number_type

# Separators people type between digits; anything else makes the number invalid.
_SEPARATORS = re.compile(r"[\s\-().\u00a0]")

# Number types whose call charges go (partly) to the callee's side, the ones international
# revenue share fraud dials. PREMIUM_RATE: the caller pays a service charge. SHARED_COST and
# UAN (universal access, e.g. UK 084x/087x): charged above a normal call, revenue shared with
# the holder. PERSONAL_NUMBER (UK 070): follow-me numbers at up to premium rates, a classic
# fraud target. PAGER: no voice on the other end, and premium-rated where it still exists.
# Not refused: VOIP and TOLL_FREE (ordinary businesses and people answer those),
# FIXED_LINE/MOBILE and FIXED_LINE_OR_MOBILE.
HIGH_COST_TYPES: dict[int, str] = {
    PhoneNumberType.PREMIUM_RATE: "PREMIUM_RATE",
    PhoneNumberType.SHARED_COST: "SHARED_COST",
    PhoneNumberType.UAN: "UAN",
    PhoneNumberType.PERSONAL_NUMBER: "PERSONAL_NUMBER",
    PhoneNumberType.PAGER: "PAGER",
}
# Satellite and international networks (Inmarsat +870, GMSS +881, international networks
# +882/+883): billed at several times premium rates and belong to no country, so a country
# allowlist alone would not catch them when it is empty.
HIGH_COST_COUNTRY_CODES = frozenset({870, 881, 882, 883})


class InvalidNumberError(ValueError):
    """The text is not an unambiguous, valid phone number."""


class NumberNotAllowedError(ValueError):
    """A valid number that policy forbids dialing; `rule` names the rule that refused it."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Destination:
    """A valid number, parsed once: the accept path needs its E.164 form, type and region,
    and each lookup in phonenumbers' metadata costs about as much as the parse itself."""

    e164: str
    country_code: int
    number_type: int
    region: str | None


def parse_number(raw: str) -> Destination:
    """Parse `raw`, which must carry a `+country` prefix to be unambiguous."""
    compact = _SEPARATORS.sub("", raw or "")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not compact.startswith("+") or not compact[1:].isdigit():
        raise InvalidNumberError(
            f"{raw!r} is not an international number: use the +<country code> form"
        )
    try:
        parsed = phonenumbers.parse(compact, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumberError(f"{raw!r} is not a phone number: {exc}") from exc
    # phonenumbers' is_valid_number is exactly "the type is known" (both match the national
    # number against the region's patterns): one lookup serves both.
    region = phonenumbers.region_code_for_number(parsed)
    number_type = _number_type(parsed, region)
    if number_type == PhoneNumberType.UNKNOWN:
        raise InvalidNumberError(f"{raw!r} is not a valid phone number")
    return Destination(
        e164=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        country_code=parsed.country_code or 0,
        number_type=number_type,
        region=region,
    )


def _number_type(parsed: phonenumbers.PhoneNumber, region: str | None) -> int:
    """`phonenumbers.number_type` given the region already found: its own body, without
    finding the region again (a search through up to 25 regions' patterns for a +1 number,
    as long as the type lookup itself). `tests/test_sip.py` holds them equal. Its helper is
    private to phonenumbers (the lock pins the version): a release without it fails the
    import, so `scripts/upgrade-deps`' suite run stops there."""
    # phonenumbers' own call, whose stubs type neither argument optional
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        cast(int, parsed.country_code), cast(str, region)
    )
    if metadata is None:
        return PhoneNumberType.UNKNOWN
    national = phonenumbers.national_significant_number(parsed)
    return _number_type_helper(national, metadata)


# A registered number's id: `num_` and its E.164 digits (E.164 allows at most 15).
NUMBER_ID_PREFIX = "num_"
_NUMBER_ID = re.compile(r"num_([1-9][0-9]{1,14})\Z")


def number_id(e164: str) -> str:
    """The id of a number (E.164: `+14155550123` -> `num_14155550123`): derived, never
    stored, so every registered number has one."""
    return NUMBER_ID_PREFIX + e164.removeprefix("+")


def number_from_id(text: str) -> str | None:
    """The E.164 number a `number_id` names; None when `text` is no number id."""
    match = _NUMBER_ID.match(text)
    return "+" + match.group(1) if match else None


def to_e164(raw: str) -> str:
    """Normalise `raw` to E.164. It must carry a `+country` prefix to be unambiguous."""
    return parse_number(raw).e164


@lru_cache(maxsize=256)
def parse_countries(text: str) -> frozenset[str]:
    """A comma-separated list of ISO 3166 alpha-2 codes ("US, ca") as upper-case codes.

    Cached: the accept path parses the deployment's and workspaces' lists on every call.
    """
    codes = frozenset(part.strip().upper() for part in text.split(",") if part.strip())
    unknown = sorted(codes - phonenumbers.SUPPORTED_REGIONS)
    if unknown:
        raise ValueError(
            f"unknown country code {unknown[0]!r}: use ISO 3166 alpha-2 codes such as GB, US"
        )
    return codes


def check_destination(
    destination: Destination, *, allowed_countries: Collection[str], allow_high_cost: bool
) -> None:
    """Refuse dialing `destination` when policy forbids it.

    `allowed_countries`: ISO 3166 region codes (upper case); empty allows every country.
    The region is the number's own (+1 876 is JM, not US), so shared country codes do not
    open a way around the list.
    """
    e164 = destination.e164
    if not allow_high_cost:
        if destination.country_code in HIGH_COST_COUNTRY_CODES:
            raise NumberNotAllowedError(
                "high_cost_range",
                f"{e164} is a satellite or international network number "
                f"(+{destination.country_code}); these are not dialed",
            )
        kind = HIGH_COST_TYPES.get(destination.number_type)
        if kind is not None:
            raise NumberNotAllowedError(
                "high_cost_type", f"{e164} is a {kind} number; these are not dialed"
            )
    if allowed_countries:
        region = destination.region or "unknown"
        if region not in allowed_countries:
            raise NumberNotAllowedError(
                "country",
                f"{e164} is in {region}, which is not among the allowed countries "
                f"({', '.join(sorted(allowed_countries))})",
            )
