"""`outdial login`, `workspace`, `agents` and `numbers`: the API's resources from a shell.

Request bodies are the API's own (`api/schemas/`): each flag names one body field, and
`--body JSON` (or `--body @file.json`) gives any other, the flags winning. `workspace
create` goes through the admin API when an API URL is chosen (`--api-url`,
`OUTDIAL_API_URL`, login), and then needs the admin token; with no URL chosen it writes
the workspace into Redis directly (`REDIS_URL`, `./.env`), as on the API's own host or
container. A chosen URL never falls back to Redis: that Redis may be another stack's.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable
from typing import Any

from api.cli.client import calls
from api.cli.client.config import config_path, resolve, write_config
from api.cli.client.http import Api
from api.cli.client.runner import (
    REFUSED,
    UsageError,
    command,
    common_options,
    fail,
    print_fields,
    print_json,
    print_table,
    read_argument,
    run_safely,
)

# Creates a workspace straight in Redis; returns it as `POST /v1/admin/workspaces` answers.
CreateInRedis = Callable[[str], dict[str, Any]]


def _body(args: argparse.Namespace, fields: dict[str, Any]) -> dict[str, Any]:
    """`--body` (JSON text or @file), then the flags that were given."""
    given: dict[str, Any] = {}
    if args.body:
        try:
            given = json.loads(read_argument(args.body, "--body"))
        except ValueError as exc:
            raise UsageError(f"--body is not JSON: {exc}") from exc
        if not isinstance(given, dict):
            raise UsageError("--body must be a JSON object")
    return given | {name: value for name, value in fields.items() if value is not None}


def _exports(values: dict[str, str]) -> None:
    print("export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in values.items()))


# --- login -------------------------------------------------------------------------------


async def _login(api: Api, args: argparse.Namespace) -> int:
    target = api.target
    await api.call("GET", "/v1/api/agents")  # the credentials open the workspace
    assert target.workspace_id and target.api_key
    path = write_config(
        {
            "api_url": target.api_url,
            "workspace_id": target.workspace_id,
            "api_key": target.api_key,
        }
    )
    print(f"logged in to workspace {target.workspace_id} at {target.api_url} (saved in {path})")
    return 0


# --- workspaces (admin API) ----------------------------------------------------------------


def _workspace_rows(workspaces: list[dict[str, Any]]) -> None:
    print_table(
        ["WORKSPACE", "ALIAS", "NAME", "DISABLED", "CREATED"],
        [
            [w["workspaceId"], w["alias"], w["name"], w["disabled"], w["createdAt"]]
            for w in workspaces
        ],
    )


def _show_created(created: dict[str, Any], args: argparse.Namespace) -> None:
    if args.exports:
        _exports({"WS": created["workspaceId"], "KEY": created["apiKey"]})
    elif args.json:
        print_json(created)
    else:
        print_fields(
            [
                ("workspace", created["workspaceId"]),
                ("alias", created["alias"]),
                ("name", created["name"]),
                ("api key", created["apiKey"] + "   (shown once: keep it)"),
                ("integration url", created["integrationBaseUrl"] + "   (shown once: keep it)"),
                ("webhook secret", created["webhookSecret"]),
            ]
        )


async def _workspace_list(api: Api, args: argparse.Namespace) -> int:
    listed = await api.call("GET", "/v1/admin/workspaces", admin=True)
    if args.json:
        print_json(listed)
    else:
        _workspace_rows(listed["workspaces"])
    return 0


async def _workspace_disable(api: Api, args: argparse.Namespace) -> int:
    path = f"/v1/admin/workspaces/{args.workspace_id}"
    updated = await api.call("PATCH", path, body={"disabled": not args.enable}, admin=True)
    if args.json:
        print_json(updated)
    else:
        _workspace_rows([updated])
    return 0


async def _workspace_create_http(api: Api, args: argparse.Namespace) -> int:
    body = {"name": args.name}
    _show_created(await api.call("POST", "/v1/admin/workspaces", body=body, admin=True), args)
    return 0


def _workspace_create(create_in_redis: CreateInRedis) -> Callable[[argparse.Namespace], int]:
    over_http = command(_workspace_create_http)

    def create(args: argparse.Namespace) -> int:
        target = resolve(args)
        if target.api_url_given:
            if target.admin_token:
                return over_http(args)
            fail(
                f"workspace create at {target.api_url} needs --admin-token (or OUTDIAL_ADMIN_TOKEN)"
            )
            return REFUSED

        def direct() -> int:
            _show_created(create_in_redis(args.name), args)
            return 0

        return run_safely(direct)

    return create


# --- agents --------------------------------------------------------------------------------


def _agent_rows(agents: list[dict[str, Any]]) -> None:
    print_table(
        ["AGENT", "NAME", "WORKER", "CREATED"],
        [[a["id"], a["name"], a["workerName"], a["createdAt"]] for a in agents],
    )


async def _agents_list(api: Api, args: argparse.Namespace) -> int:
    listed = await api.call("GET", "/v1/api/agents")
    if args.json:
        print_json(listed)
    else:
        _agent_rows(listed["agents"])
    return 0


async def _agents_show(api: Api, args: argparse.Namespace) -> int:
    agent = await api.call("GET", f"/v1/api/agents/{args.agent_id}")
    if args.json:
        print_json(agent)
    else:
        print_fields(list(agent.items()))
    return 0


async def _agents_create(api: Api, args: argparse.Namespace) -> int:
    instructions = args.instructions and read_argument(args.instructions, "--instructions")
    body = _body(
        args,
        {
            "name": args.name,
            "instructions": instructions,
            "first_message": args.first_message,
            "worker_name": args.worker_name,
            "max_duration_seconds": args.max_duration_seconds,
            "ring_timeout_seconds": args.ring_timeout_seconds,
            "voicemail_action": args.voicemail_action,
            "voicemail_message": args.voicemail_message,
            "transfer_to": args.transfer_to,
        },
    )
    agent = await api.call("POST", "/v1/api/agents", body=body)
    if args.exports:
        _exports({"AGENT": agent["id"]})
    elif args.json:
        print_json(agent)
    else:
        _agent_rows([agent])
    return 0


# --- numbers -------------------------------------------------------------------------------


def _number_rows(numbers: list[dict[str, Any]]) -> None:
    print_table(
        ["ID", "NUMBER", "TRUNK", "DEFAULT", "MANAGED", "CREATED"],
        [
            [n["id"], n["number"], n["sipTrunkId"], n["default"], n["trunkManaged"], n["createdAt"]]
            for n in numbers
        ],
    )


async def _numbers_list(api: Api, args: argparse.Namespace) -> int:
    listed = await api.call("GET", "/v1/api/numbers")
    if args.json:
        print_json(listed)
    else:
        _number_rows(listed["numbers"])
    return 0


async def _numbers_add(api: Api, args: argparse.Namespace) -> int:
    trunk = None
    if args.trunk_address:
        trunk = {
            "address": args.trunk_address,
            "transport": args.transport,
            "auth_username": args.auth_username,
            "auth_password": args.auth_password,
        }
        trunk = {name: value for name, value in trunk.items() if value is not None}
    body = _body(
        args,
        {
            "number": args.number,
            "sip_trunk_id": args.sip_trunk_id,
            "trunk": trunk,
            "default": True if args.default else None,
        },
    )
    saved = await api.call("POST", "/v1/api/numbers", body=body)
    if args.json:
        print_json(saved)
    else:
        _number_rows([saved])
    return 0


# --- the parser ----------------------------------------------------------------------------


def add_client_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    create_in_redis: CreateInRedis,
) -> None:
    """Adds login, workspace, agents, numbers, call and calls to `outdial`'s commands."""
    common = common_options()

    def sub(
        parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, helptext: str
    ) -> argparse.ArgumentParser:
        return parent.add_parser(name, help=helptext, description=helptext, parents=[common])

    saved_in = config_path()
    login = sub(commands, "login", f"check and save the API URL and workspace key ({saved_in})")
    login.set_defaults(handler=command(_login))

    workspace = commands.add_parser("workspace", help="workspaces (the operator's admin API)")
    workspaces = workspace.add_subparsers(dest="workspace_command", required=True)
    create = sub(workspaces, "create", "create a workspace, print its key once")
    create.add_argument("--name", required=True)
    create.add_argument("--exports", action="store_true", help="print `export WS=... KEY=...`")
    create.set_defaults(handler=_workspace_create(create_in_redis))
    sub(workspaces, "list", "list the workspaces").set_defaults(handler=command(_workspace_list))
    disable = sub(workspaces, "disable", "disable a workspace (--enable: enable it again)")
    disable.add_argument("workspace_id")
    disable.add_argument("--enable", action="store_true")
    disable.set_defaults(handler=command(_workspace_disable))

    agents = commands.add_parser("agents", help="the workspace's agents")
    agent_commands = agents.add_subparsers(dest="agents_command", required=True)
    sub(agent_commands, "list", "list agents").set_defaults(handler=command(_agents_list))
    show = sub(agent_commands, "show", "show an agent")
    show.add_argument("agent_id")
    show.set_defaults(handler=command(_agents_show))
    new_agent = sub(agent_commands, "create", "create an agent")
    new_agent.add_argument("--name")
    new_agent.add_argument("--instructions", help="the prompt, or @file")
    new_agent.add_argument("--first-message")
    new_agent.add_argument("--worker-name")
    new_agent.add_argument("--max-duration-seconds", type=int)
    new_agent.add_argument("--ring-timeout-seconds", type=int)
    new_agent.add_argument("--voicemail-action", choices=["hangup", "leave_message"])
    new_agent.add_argument("--voicemail-message")
    new_agent.add_argument("--transfer-to")
    new_agent.add_argument("--body", help="any other fields: JSON, or @file.json")
    new_agent.add_argument("--exports", action="store_true", help="print `export AGENT=...`")
    new_agent.set_defaults(handler=command(_agents_create))

    numbers = commands.add_parser("numbers", help="the workspace's caller numbers")
    number_commands = numbers.add_subparsers(dest="numbers_command", required=True)
    sub(number_commands, "list", "list numbers").set_defaults(handler=command(_numbers_list))
    add = sub(number_commands, "add", "register a caller number on a trunk")
    add.add_argument("number", help="E.164, e.g. +15105550100")
    add.add_argument("--sip-trunk-id", help="a trunk the operator assigned (ST_...)")
    add.add_argument("--trunk-address", help="or a SIP trunk host Outdial creates the trunk for")
    add.add_argument("--transport", choices=["udp", "tcp", "tls", "auto"])
    add.add_argument("--auth-username")
    add.add_argument("--auth-password")
    add.add_argument("--default", action="store_true", help="the workspace's default caller")
    add.add_argument("--body", help="any other fields: JSON, or @file.json")
    add.set_defaults(handler=command(_numbers_add))

    calls.add_call_commands(commands, sub)
