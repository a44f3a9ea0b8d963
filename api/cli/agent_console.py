"""`outdial agent console AGENT_ID --var name=value ...`: the CLI side of the console.

Reads the agent from a running API (`GET /v1/api/agents/{id}`, as the workspace), turns
the answer into the snapshot a call placed now would carry, and hands it to
`agent_runtime.console`, which talks to it in the terminal. The API, the workspace and its
key are found as the HTTP commands find them (flag, environment, `outdial login`: see
api/cli/client/config.py), and asked through their client, with their one-line errors.

Invariant: the console's agent is mapped by the one mapping calls use
(`AgentRecord.config`): the API's answer is read back into its record first, so a field
added to agents reaches the console exactly as it reaches calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from agent_runtime.console import run_console
from agent_runtime.contract import VARIABLE_NAME, AgentConfig, Scalar
from api.cli.client.config import DEFAULT_API_URL, Target, resolve
from api.cli.client.http import Api, MissingCredentials, Refused, Unreachable
from api.cli.client.runner import UsageError, pairs
from api.schemas.agents import AgentOut
from api.store.agents import AgentRecord

_VARIABLE = re.compile(VARIABLE_NAME)


class ConsoleError(Exception):
    """Why the console cannot start: one line for the terminal."""


def agent_config(body: Mapping[str, Any]) -> AgentConfig:
    """The snapshot a call of the agent in `body` (the API's answer) would carry. Its
    times and call window never reach a call's agent, so the record gets none."""
    shown = AgentOut.model_validate(body)
    fields = shown.model_dump(by_alias=False, exclude={"created_at", "updated_at", "call_window"})
    return AgentRecord.from_fields(fields | {"created_at": 0, "updated_at": 0}).config()


async def fetch_agent(target: Target, agent_id: str) -> AgentConfig:
    """The agent's snapshot; `Refused`, `Unreachable` or `MissingCredentials` as the HTTP
    commands raise them, `ConsoleError` when the answer is not an agent."""
    async with Api(target) as api:
        body = await api.call("GET", f"/v1/api/agents/{quote(agent_id, safe='')}")
    try:
        return agent_config(body if isinstance(body, dict) else {})
    except ValidationError as exc:
        wrong = "; ".join(
            f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
        )
        raise ConsoleError(f"{target.api_url} did not answer an agent: {wrong}") from exc
    except ValueError as exc:
        raise ConsoleError(f"{target.api_url} did not answer an agent: {exc}") from exc


def parse_variables(values: Sequence[str]) -> dict[str, Scalar]:
    """`name=value` pairs (as `outdial call --var`); a value is text, as a template renders
    it."""
    variables: dict[str, Scalar] = dict(pairs(list(values), "--var"))
    for name in variables:
        if not _VARIABLE.fullmatch(name):
            raise ConsoleError(f"--var {name}: not a variable name ({VARIABLE_NAME})")
    return variables


def parse_metadata(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        metadata = json.loads(raw)
    except ValueError as exc:
        raise ConsoleError(f"--metadata is not JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise ConsoleError("--metadata must be a JSON object")
    return metadata


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outdial agent console",
        description="Talk to an agent in the terminal, as a call would run it, before it "
        "dials anyone. Telephony tools show what they would do.",
    )
    parser.add_argument("agent_id")
    parser.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="a dynamic variable"
    )
    parser.add_argument(
        "--metadata", help="the call's metadata as a JSON object (agent code only, not the model)"
    )
    parser.add_argument("--api-url", help=f"default OUTDIAL_API_URL, login, else {DEFAULT_API_URL}")
    parser.add_argument("--workspace", help="default OUTDIAL_WORKSPACE_ID, login")
    parser.add_argument("--key", help="the workspace's API key; default OUTDIAL_API_KEY, login")
    parser.add_argument("--audio", action="store_true", help="talk through microphone and speaker")
    # `resolve` reads the HTTP commands' options: the console asks no admin route
    parser.set_defaults(admin_token=None)
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    target = resolve(args)
    try:
        variables = parse_variables(args.var)
        metadata = parse_metadata(args.metadata)
        agent = asyncio.run(fetch_agent(target, args.agent_id))
    except (ConsoleError, UsageError, MissingCredentials, Refused, Unreachable) as exc:
        print(f"outdial agent console: {exc}", file=sys.stderr)
        return 2
    assert target.workspace_id  # the API answered as this workspace
    return run_console(
        agent, variables, workspace_id=target.workspace_id, metadata=metadata, audio=args.audio
    )
