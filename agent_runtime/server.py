"""The worker process: an `AgentServer` registered for explicit dispatch, and its CLI.

    python -m agent_runtime start           # production: JSON logs, health on :8081
    python -m agent_runtime dev             # development: readable logs
    python -m agent_runtime download-files  # fetch plugin model files (image build time)

`start` and `dev` refuse to run (exit 2, one line naming the variable) while a variable
does not parse, a default model stage points at a hosted API without a key (such a worker
would answer calls with silence, `model_keys.py`), or nothing listens at LIVEKIT_URL.
`dev` logs readable lines at INFO (`--log-level DEBUG` for livekit-agents' own detail).
Agent developers bring their own agent with `run_app(factory)`; see docs/agents.md.

Only livekit-agents' public API runs the worker (`AgentServer.run`, `drain`, `aclose`):
this module owns the event loop, the signals and the logs, so a livekit-agents release
that reshapes its own command line does not reach Outdial.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import math
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

# Plugins register themselves on import, which livekit-agents requires on the main thread
# before the worker starts (job processes inherit them).
from livekit.agents import AgentServer, JobContext, JobProcess, Plugin
from livekit.plugins import openai, silero  # noqa: F401
from pydantic import ValidationError

from sip.reachability import livekit_unreachable, redacted_url

from .builtin import builtin_agent
from .call import AgentFactory, run_call
from .logs import configure_logging
from .model_keys import startup_error
from .providers import unusable_providers
from .settings import WorkerSettings, environment_error

logger = logging.getLogger("outdial.agent")


def prewarm(proc: JobProcess) -> None:
    """Once per process, before any job: load Silero VAD (it ships in the wheel)."""
    proc.userdata["vad"] = silero.VAD.load()


async def _entrypoint(factory: AgentFactory, ctx: JobContext) -> None:
    # settings come from the environment the job process inherited
    await run_call(ctx, factory, WorkerSettings.from_env())


def create_server(
    factory: AgentFactory = builtin_agent,
    settings: WorkerSettings | None = None,
    *,
    dev: bool = False,
) -> AgentServer:
    """An AgentServer that runs `factory`'s agent on every call dispatched to
    `settings.agent_name`. `factory` must be importable (module level) so job processes
    can receive it. Run it with `serve(server, dev=dev)`."""
    settings = settings or WorkerSettings.from_env()
    options: dict[str, Any] = {}  # AgentServer's keyword types, checked by it at run time
    if settings.num_idle_processes is not None:
        options["num_idle_processes"] = settings.num_idle_processes
    if settings.health_port is not None:
        options["port"] = settings.health_port
    server = AgentServer(
        setup_fnc=prewarm,
        # dev mode keeps livekit's "never full" so one laptop can take every test call
        load_threshold=math.inf if dev else settings.load_threshold,
        job_memory_warn_mb=settings.job_memory_warn_mb,
        job_memory_limit_mb=settings.job_memory_limit_mb,
        ws_url=settings.livekit_url or None,
        api_key=settings.livekit_api_key or None,
        api_secret=settings.livekit_api_secret or None,
        **options,
    )
    # a named agent receives explicit dispatches only: the API's, one per call
    server.rtc_session(functools.partial(_entrypoint, factory), agent_name=settings.agent_name)
    return server


def run_app(factory: AgentFactory = builtin_agent, argv: Sequence[str] | None = None) -> int:
    """Command line for a worker running `factory`'s agent: start | dev | download-files."""
    parser = argparse.ArgumentParser(prog="outdial agent", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("start", "run the production worker (JSON logs)"),
        ("dev", "run a development worker (readable logs, no load limit)"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--log-level", default="INFO")
    commands.add_parser("download-files", help="download plugin model files")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))

    if args.command == "download-files":
        return _download_files()
    try:
        settings = WorkerSettings.from_env()
    except ValidationError as exc:
        print(environment_error(exc), file=sys.stderr)
        return 2
    # A worker without a usable model for each stage, or without a key for its hosted
    # models, would take calls and say nothing on them: refuse to register at all, and say
    # which variable to set.
    if problems := unusable_providers(settings):
        print("outdial agent: refusing to start: " + "; ".join(problems), file=sys.stderr)
        return 2
    if refusal := startup_error(settings):
        print(refusal, file=sys.stderr)
        return 2
    # An unset LIVEKIT_URL is livekit-agents' to refuse (exit 1); a wrong one would retry
    # its connection forever, logging a traceback each time.
    if settings.livekit_url and (error := livekit_unreachable(settings.livekit_url)):
        url = redacted_url(settings.livekit_url)
        print(
            f"outdial agent: cannot reach LiveKit at {url} (LIVEKIT_URL): {error}", file=sys.stderr
        )
        return 2
    dev = args.command == "dev"
    configure_logging(args.log_level, readable=dev)
    return asyncio.run(serve(create_server(factory, settings, dev=dev), dev=dev))


def run_cli(argv: Sequence[str] | None = None) -> int:
    """The built-in agent's worker CLI (`python -m agent_runtime`, `outdial agent`)."""
    return run_app(builtin_agent, argv)


def main() -> None:
    sys.exit(run_cli())


async def serve(server: AgentServer, *, dev: bool = False) -> int:
    """Run `server` until SIGTERM or SIGINT, then stop it: in `start` mode the running
    calls finish first (no new ones are taken meanwhile), `dev` closes at once. A second
    signal exits at once. Returns the exit status: 1 if the worker failed (it could not
    register with LiveKit, say), else 0."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(received: signal.Signals) -> None:
        if stop.is_set():
            logger.warning("%s again: exiting without waiting for calls", received.name)
            os._exit(1)
        logger.info("%s: stopping the worker", received.name)
        stop.set()

    for received in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(received, on_signal, received)
    running = asyncio.create_task(server.run(devmode=dev), name="agent-server")
    stopping = asyncio.create_task(stop.wait(), name="agent-server-stop")
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    failure = running.exception() if running.done() else None
    if failure is not None:
        logger.error("worker failed", exc_info=failure)
    elif not dev:
        try:
            await server.drain()
        except TimeoutError:
            logger.warning("drain timed out: closing with calls still running")
    await server.aclose()
    await asyncio.gather(running, return_exceptions=True)
    return 1 if failure is not None else 0


def _download_files() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    failed = 0
    for plugin in Plugin.registered_plugins:
        try:
            plugin.download_files()
            logger.info("downloaded files for %s", plugin.package)
        except Exception as exc:
            logger.error("download failed for %s: %s", plugin.package, exc)
            failed += 1
    return 1 if failed else 0
