"""A contact file's header row: which column is the phone number, which are dynamic
variables and which go to the contact's metadata.

Invariant: a header that names no phone column, names one twice, or names a variable a call
could not carry refuses the whole file before any row is read. Variable names are checked
by the call's own check (`api.services.calls.check_variable_names`), so a CSV column is a
valid variable exactly when the same name in a call's `dynamic_variables` is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.errors import ApiError
from api.services.call_checks import check_variable_names

METADATA_PREFIX = "metadata."


@dataclass(frozen=True, slots=True)
class Columns:
    """Where each part of a contact sits in a row of `width` fields."""

    width: int
    phone: int
    variables: tuple[tuple[int, str], ...]
    metadata: tuple[tuple[int, str], ...]
    # The names' length in all: a row whose values are short cannot be over a size limit.
    names_chars: int


def bad_header(message: str, details: dict[str, Any] | None = None) -> ApiError:
    return ApiError(422, "CSV_BAD_HEADER", message, details)


def read_header(fields: list[str], phone_column: str, max_columns: int) -> Columns:
    """The columns of the header row `fields`; `phone_column` matched without regard to
    case or surrounding spaces. Raises ApiError (the file is refused)."""
    if len(fields) > max_columns:
        raise ApiError(
            413,
            "CSV_TOO_MANY_COLUMNS",
            f"the header has {len(fields)} columns, at most {max_columns} are allowed",
            {"columns": len(fields), "limit": max_columns},
        )
    names = [field.strip() for field in fields]
    wanted = phone_column.strip().casefold()
    phones = [index for index, name in enumerate(names) if name.casefold() == wanted]
    if not phones:
        raise ApiError(
            422,
            "CSV_NO_PHONE_COLUMN",
            f"no column named {phone_column!r} in the header: name the phone column with "
            "phone_column",
            {"phoneColumn": phone_column, "columns": [name[:64] for name in names[:50]]},
        )
    if len(phones) > 1:
        columns = [index + 1 for index in phones]
        raise bad_header(f"{phone_column!r} names columns {columns}", {"columns": columns})
    variables: list[tuple[int, str]] = []
    metadata: list[tuple[int, str]] = []
    for index, name in enumerate(names):
        if index == phones[0]:
            continue
        if not name:
            raise bad_header(f"column {index + 1} has no name", {"column": index + 1})
        if name.casefold().startswith(METADATA_PREFIX):
            key = name[len(METADATA_PREFIX) :]
            if not key:
                raise bad_header(f"column {index + 1}: {name!r} names no metadata key")
            metadata.append((index, key))
        else:
            variables.append((index, name))
    for kind, named in (("variable", variables), ("metadata key", metadata)):
        seen: set[str] = set()
        for _, name in named:
            if name in seen:
                raise bad_header(f"the {kind} {name[:64]!r} is named twice", {"name": name[:64]})
            seen.add(name)
    check_variable_names([name for _, name in variables])
    return Columns(
        width=len(fields),
        phone=phones[0],
        variables=tuple(variables),
        metadata=tuple(metadata),
        names_chars=sum(len(name) for name in names),
    )
