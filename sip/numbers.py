"""Phone numbers: everything Outdial stores or dials is E.164."""

from __future__ import annotations

import re

import phonenumbers

# Separators people type between digits; anything else makes the number invalid.
_SEPARATORS = re.compile(r"[\s\-().\u00a0]")


class InvalidNumberError(ValueError):
    """The text is not an unambiguous, valid phone number."""


def to_e164(raw: str) -> str:
    """Normalise `raw` to E.164. It must carry a `+country` prefix to be unambiguous."""
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
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidNumberError(f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
