"""The `outdial` command: run the API, the dispatch worker, the agent worker; manage workspaces."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from api.cli.client.commands import add_client_commands
from api.cli.preflight import load_env_file, load_settings, public_url_warning, require_services
from api.logs import configure_logging
from api.settings import METRICS_DIR_VARIABLE

# The commands that read `./.env` (and `workspace create`, when it writes into Redis).
ENV_COMMANDS = frozenset({"api", "worker", "dev", "agent"})


def _run_api(args: argparse.Namespace) -> int:
    import uvicorn

    settings = load_settings("api")
    require_services("api", settings)
    # uvicorn's own lines (server, errors, access) in the format of every other line
    configure_logging(settings.log_level, settings.log_json)
    if warning := public_url_warning(settings, args.port):
        logging.getLogger("outdial.api").warning(warning)
    uvicorn.run(
        "api.app:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        log_config=None,
        proxy_headers=True,
        # Drain in-flight requests on SIGTERM before exiting.
        timeout_graceful_shutdown=args.graceful_timeout,
    )
    return 0


def _run_worker(args: argparse.Namespace) -> int:
    """Run Dramatiq's own CLI (its signal handling and process supervision) in this process,
    with our tuning and, when metrics are served, the directory its processes share them in."""
    settings = load_settings("worker")
    require_services("worker", settings)
    threads = args.threads or settings.worker_threads
    # Read by Dramatiq when it is imported (just below), and inherited by its processes.
    os.environ.setdefault("dramatiq_worker_timeout", str(settings.worker_timeout_ms))
    os.environ.setdefault("dramatiq_queue_prefetch", str(threads))
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    # Dramatiq's CLI is not annotated.
    parser: argparse.ArgumentParser = make_argument_parser()
    dramatiq_args = parser.parse_args([
        "api.worker",
        "--processes", str(args.processes),
        "--threads", str(threads),
        "--worker-shutdown-timeout", str(args.shutdown_timeout * 1000),
    ])  # fmt: skip
    if not settings.worker_metrics_port:
        return int(dramatiq_main(dramatiq_args))
    with _worker_metrics_dir():
        return int(dramatiq_main(dramatiq_args))


@contextmanager
def _worker_metrics_dir() -> Iterator[None]:
    """`PROMETHEUS_MULTIPROC_DIR` for the worker's processes (api/jobs/metrics_server.py).

    Set before any process imports prometheus_client, which reads it then. The directory
    given in the environment, else a fresh one; a previous run's files are removed first
    (their counts are not this run's), this run's once every process has exited, and a
    fresh directory with them. A reload (SIGHUP: Dramatiq execs the command again) keeps
    the directory, as a given one."""
    given = os.environ.get(METRICS_DIR_VARIABLE)
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="outdial-worker-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    _remove_metric_files(path)
    os.environ[METRICS_DIR_VARIABLE] = str(path)
    try:
        yield
    finally:
        if given:
            _remove_metric_files(path)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _remove_metric_files(path: Path) -> None:
    for db_file in path.glob("*.db"):
        db_file.unlink(missing_ok=True)


def _create_workspace_in_redis(name: str) -> dict[str, Any]:
    """The workspace as `POST /v1/admin/workspaces` answers it, written straight into Redis
    (`outdial workspace create` without an API URL, see api/cli/client)."""
    from api.schemas.admin import WorkspaceCreated
    from api.store.base import open_store
    from api.store.workspaces import create_workspace

    load_env_file()  # read only now: it must not choose the API URL (api/cli/client/config.py)
    settings = load_settings("workspace")
    require_services("workspace", settings, livekit=False)

    async def create() -> WorkspaceCreated:
        store = open_store(settings)
        try:
            created = await create_workspace(store, name)
        finally:
            await store.aclose()
        return WorkspaceCreated.of_new(created, settings.events_base_url)

    return asyncio.run(create()).model_dump(mode="json")


def _run_dev(args: argparse.Namespace) -> int:
    from api.cli.dev import run_dev

    return run_dev(args.host, args.port, args.json_logs)


def _run_agent(agent_args: list[str]) -> int:
    from agent_runtime import run_cli

    return run_cli(agent_args) or 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="outdial", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    api = commands.add_parser("api", help="serve the HTTP API (uvicorn)")
    api.add_argument("--host", default="0.0.0.0")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1)
    api.add_argument("--graceful-timeout", type=int, default=20, help="seconds to drain")
    api.set_defaults(handler=_run_api)

    worker = commands.add_parser("worker", help="run the Dramatiq dispatch and relay worker")
    worker.add_argument("--processes", type=int, default=1)
    worker.add_argument("--threads", type=int, default=None, help="default OUTDIAL_WORKER_THREADS")
    worker.add_argument("--shutdown-timeout", type=int, default=30, help="seconds to finish work")
    worker.set_defaults(handler=_run_worker)

    dev = commands.add_parser(
        "dev", help="run the API, the worker and the agent worker (dev) together, one log"
    )
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--json-logs", action="store_true", help="JSON lines (default: readable)")
    dev.set_defaults(handler=_run_dev)

    # login, workspace, agents, numbers, call, calls: the API over HTTP (api/cli/client)
    add_client_commands(commands, create_in_redis=_create_workspace_in_redis)

    # Listed for --help only: main() hands everything after `agent` to the agent CLI.
    commands.add_parser(
        "agent",
        help="run the agent worker (livekit-agents): start | dev | download-files; "
        "console AGENT_ID: talk to an agent in the terminal",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    # `./.env` configures the programs that run Outdial; the HTTP commands do not read it, so
    # a directory's `.env` cannot send the saved workspace key to its own OUTDIAL_API_URL.
    if arguments[:1] and arguments[0] in ENV_COMMANDS:
        load_env_file()
    if arguments[:2] == ["agent", "console"]:
        from api.cli.agent_console import main as console_main

        return console_main(arguments[2:])
    if arguments[:1] == ["agent"]:
        return _run_agent(arguments[1:])
    args = build_parser().parse_args(arguments)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)
