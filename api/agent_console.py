"""`outdial agent console AGENT_ID --var name=value ...`: the CLI side of the console.

Reads the agent from a running API (`GET /v1/api/agents/{id}`, as the workspace), turns
the answer into the snapshot a call placed now would carry, and hands it to
`agent_runtime.console`, which talks to it in the terminal.

Invariant: the console's agent is mapped by the one mapping calls use
(`AgentRecord.config`): the API's answer is read back into its record first, so a field
added to agents reaches the console exactly as it reaches calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from pydantic import ValidationError

from agent_runtime.console import run_console
from agent_runtime.contract import VARIABLE_NAME, AgentConfig, Scalar
from api.schemas.agents import AgentOut
from api.store.agents import AgentRecord

DEFAULT_API_URL = "http://localhost:8000"
FETCH_TIMEOUT_SECONDS = 15.0
_VARIABLE = re.compile(VARIABLE_NAME)


class ConsoleError(Exception):
    """Why the console cannot start: one line for the terminal."""


@dataclass(frozen=True)
class ApiTarget:
    """Which API to ask, as which workspace: flags first, then OUTDIAL_API_URL,
    OUTDIAL_WORKSPACE_ID and OUTDIAL_API_KEY."""

    url: str
    workspace_id: str
    api_key: str

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str]) -> ApiTarget:
        workspace = args.workspace or env.get("OUTDIAL_WORKSPACE_ID", "")
        key = args.key or env.get("OUTDIAL_API_KEY", "")
        if not workspace or not key:
            raise ConsoleError(
                "no workspace credentials: pass --workspace and --key, or set "
                "OUTDIAL_WORKSPACE_ID and OUTDIAL_API_KEY"
            )
        url = args.api_url or env.get("OUTDIAL_API_URL") or DEFAULT_API_URL
        return cls(url=url.rstrip("/"), workspace_id=workspace, api_key=key)


def agent_config(body: Mapping[str, Any]) -> AgentConfig:
    """The snapshot a call of the agent in `body` (the API's answer) would carry. Its
    times and call window never reach a call's agent, so the record gets none."""
    shown = AgentOut.model_validate(body)
    fields = shown.model_dump(by_alias=False, exclude={"created_at", "updated_at", "call_window"})
    return AgentRecord.from_fields(fields | {"created_at": 0, "updated_at": 0}).config()


async def fetch_agent(target: ApiTarget, agent_id: str) -> AgentConfig:
    url = f"{target.url}/v1/api/agents/{quote(agent_id, safe='')}"
    headers = {"x-workspace-id": target.workspace_id, "x-api-key": target.api_key}
    try:
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(url, headers=headers) as response,
        ):
            status = response.status
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ConsoleError(f"cannot reach the API at {target.url}: {exc!r}") from exc
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if status != 200:
        error = body if isinstance(body, dict) else {}
        said = f"{error.get('code', 'ERROR')}: {error.get('message', text[:200])}"
        raise ConsoleError(f"GET {url} answered {status} {said}")
    try:
        return agent_config(body if isinstance(body, dict) else {})
    except (ValidationError, ValueError) as exc:
        raise ConsoleError(f"GET {url} did not answer an agent: {exc}") from exc


def parse_variables(pairs: Sequence[str]) -> dict[str, Scalar]:
    """`name=value` pairs; a value is text, as a template renders it."""
    variables: dict[str, Scalar] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not _VARIABLE.fullmatch(name):
            raise ConsoleError(f"--var {pair!r}: expected name=value (name: {VARIABLE_NAME})")
        variables[name] = value
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
    parser.add_argument("--api-url", help=f"default OUTDIAL_API_URL, else {DEFAULT_API_URL}")
    parser.add_argument("--workspace", help="default OUTDIAL_WORKSPACE_ID")
    parser.add_argument("--key", help="the workspace's API key; default OUTDIAL_API_KEY")
    parser.add_argument("--audio", action="store_true", help="talk through microphone and speaker")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        variables = parse_variables(args.var)
        metadata = parse_metadata(args.metadata)
        target = ApiTarget.from_args(args, os.environ)
        agent = asyncio.run(fetch_agent(target, args.agent_id))
    except ConsoleError as exc:
        print(f"outdial agent console: {exc}", file=sys.stderr)
        return 2
    return run_console(
        agent, variables, workspace_id=target.workspace_id, metadata=metadata, audio=args.audio
    )
