"""The one wording of an environment that does not validate, for every program that refuses
to start on one (`outdial api`, `worker`, `dev`, `workspace create`, `agent`).

Invariant: a refusal never shows a secret. Each problem names its variable and what is
wrong; the value follows only for a variable that cannot hold a secret (none whose name
says secret, token, key or password), a URL only without its password (`redacted_url`).
A rule across variables (a model validator) is its message alone: pydantic gives it all
the settings as its input. Shared by the API's entry points and the agent worker, which
imports nothing from `api`.
"""

from __future__ import annotations

from pydantic import ValidationError

from sip.reachability import redacted_url

_SECRET_WORDS = ("secret", "token", "key", "password")
# An environment variable's value is text (a number, given directly); anything else (a dict
# of every setting, for a missing field or a rule across fields) is not one variable's value.
_SHOWN = (str, int, float)


def environment_problems(error: ValidationError) -> str:
    """`VARIABLE=value: what it must be; ...`, on one line."""
    problems = []
    for detail in error.errors(include_url=False):
        variable = ".".join(str(part) for part in detail["loc"])
        value = detail["input"]
        message = " ".join(detail["msg"].split())
        if not variable:
            problems.append(message)
        elif not isinstance(value, _SHOWN) or any(
            word in variable.lower() for word in _SECRET_WORDS
        ):
            problems.append(f"{variable}: {message}")
        else:
            shown = redacted_url(value) if isinstance(value, str) and _is_url(variable) else value
            problems.append(f"{variable}={shown!r}: {message}")
    return "; ".join(problems)


def _is_url(variable: str) -> bool:
    return variable.lower().endswith("_url")
