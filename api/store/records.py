"""How a stored record is read back, whoever wrote it and whatever it holds.

Invariant: reading never fails on what Redis holds. Every record type converts from and to
its stored form in one place (`from_hash`/`to_hash`, `from_json`/`to_json`), and the store's
readers hand out typed records or nothing:

- an optional value that does not parse (a field an agent filled with text, a record
  written by an older version) reads as absent, like the Lua scripts' `tonumber(x) or 0`,
  and is logged;
- a record without a field every such record has, or with one that does not parse, is
  unreadable (`UnreadableRecord`): the store logs it and treats it as absent (a 404, a list
  without it, a refused key) and leaves it in place for an operator to look at.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

logger = logging.getLogger("outdial.store")

Record = TypeVar("Record")


class UnreadableRecord(ValueError):
    """A stored record lacks a field every such record has, or holds one that does not parse."""


def readable(parse: Callable[[], Record], key: str) -> Record | None:
    """`parse()`, or None (logged) when the record stored under `key` is unreadable."""
    try:
        return parse()
    except UnreadableRecord as exc:
        logger.error("unreadable record %s, treated as absent: %s", key, exc)
        return None


def strict_document(adapter: TypeAdapter[Record], raw: str | bytes) -> Record:
    """A stored JSON document as `adapter`'s type, strictly (Outdial wrote it from a validated
    body, so a wrong type is damage, not a format); `UnreadableRecord` names the first field
    that does not fit."""
    try:
        return adapter.validate_json(raw, strict=True)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "document"
        raise UnreadableRecord(f"{where}: {error['msg']}") from None


class HashFields:
    """Typed reads of one Redis hash under the policy above; `key` names it in logs."""

    __slots__ = ("key", "raw")

    def __init__(self, raw: Mapping[str, str], key: str) -> None:
        self.raw = raw
        self.key = key

    def text(self, name: str) -> str:
        value = self.raw.get(name)
        if value is None:
            raise UnreadableRecord(f"{name} is missing")
        return value

    def optional_text(self, name: str) -> str | None:
        return self.raw.get(name)

    def integer(self, name: str) -> int:
        value = self.text(name)
        try:
            return int(value)
        except ValueError:
            raise UnreadableRecord(f"{name} is not an integer: {value[:40]!r}") from None

    def optional_integer(self, name: str) -> int | None:
        value = self.raw.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            self.garbled(name, value, "an integer")
            return None

    def optional_number(self, name: str) -> float | None:
        value = self.raw.get(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            self.garbled(name, value, "a finite number")
            return None
        return number

    def json_object(self, name: str) -> dict[str, Any]:
        """A JSON object; `{}` when absent or not one."""
        value = self.raw.get(name)
        if value is None:
            return {}
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            self.garbled(name, value, "a JSON object")
            return {}
        return parsed

    def garbled(self, name: str, value: str, expected: str) -> None:
        """Log an optional value that does not parse: it reads as absent (None)."""
        logger.warning(
            "%s: %s is not %s (%r), read as absent", self.key, name, expected, value[:40]
        )
