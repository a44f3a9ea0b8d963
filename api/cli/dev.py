"""`outdial dev`: the API, the dispatch worker and the agent worker in one terminal.

Each runs as its own `outdial api`, `outdial worker` and `outdial agent dev` process; their
lines are interleaved on stdout, each prefixed with the process's name.

Invariants: the three stop together. Ctrl-C (SIGINT), SIGTERM or SIGHUP (the terminal
closed), handled from before the first child starts, sends each child one SIGTERM (they
run in sessions of their own, so the terminal's signal reaches only this process and no
child sees two) and waits for them; a child that outlives the grace period is killed with
its process group; an error of this process's own stops them the same way. A child that
exits on its own stops the others and `outdial dev` exits non-zero. Every child's output is
copied however long its lines, so no child blocks on a full pipe. The children's
OUTDIAL_PUBLIC_URL follows the API's port unless it is set, so the agent's events reach
this API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass

from api.cli.preflight import load_settings, public_url_warning, require_services

# Beyond the worker's own shutdown timeout (`outdial worker`, 30 s by default).
STOP_GRACE_SECONDS = 40.0
# A child stopped by our SIGTERM exits 0 or by the signal itself (uvicorn re-raises it).
_CLEAN_EXITS = {0, -signal.SIGTERM, -signal.SIGINT}
# The longest line copied whole (a call's transcript logged at DEBUG can be long).
LINE_LIMIT = 1 << 20


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process


def child_environment(port: int, json_logs: bool) -> dict[str, str]:
    """This environment (`.env` included, see api/cli/preflight.py) with the children's own
    values: the public URL on the API's port unless set, readable logs unless asked."""
    env = dict(os.environ)
    if not env.get("OUTDIAL_PUBLIC_URL"):
        env["OUTDIAL_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    if not json_logs:
        env["OUTDIAL_LOG_JSON"] = "false"
    env["PYTHONUNBUFFERED"] = "1"  # lines as they are written, not when a buffer fills
    return env


def run_dev(host: str, port: int, json_logs: bool) -> int:
    env = child_environment(port, json_logs)
    os.environ.update(env)  # the checks below read the children's settings
    settings = load_settings("dev")
    require_services("dev", settings)
    if warning := public_url_warning(settings, port):
        print(f"outdial dev: {warning}", file=sys.stderr)
    commands = {
        "api": ["api", "--host", host, "--port", str(port)],
        "worker": ["worker"],
        "agent": ["agent", "dev"],
    }
    return asyncio.run(_supervise(commands, env))


async def _supervise(commands: dict[str, list[str]], env: dict[str, str]) -> int:
    width = max(len(name) for name in commands)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Before the first child exists: no signal can end this process with a child left.
    for received in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(received, stop.set)
    children: list[Child] = []
    copies: list[asyncio.Task[None]] = []
    try:
        for name, arguments in commands.items():
            children.append(await _spawn(name, arguments, env))
            copies.append(asyncio.create_task(_copy_lines(children[-1], width)))
        exits = {asyncio.create_task(child.process.wait()): child for child in children}
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({*exits, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        failed = next((exits[task] for task in exits if task in done), None)
        if failed is not None:
            code = failed.process.returncode
            _say(f"{failed.name} exited with status {code}; stopping the others")
    finally:
        await _stop_all(children)
        await asyncio.gather(*copies)
    if failed is not None:
        return failed.process.returncode or 1
    unclean = [c for c in children if c.process.returncode not in _CLEAN_EXITS]
    for child in unclean:
        _say(f"{child.name} stopped with status {child.process.returncode}")
    return 1 if unclean else 0


async def _spawn(name: str, arguments: list[str], env: dict[str, str]) -> Child:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", *arguments,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        limit=LINE_LIMIT,
    )  # fmt: skip
    return Child(name, process)


async def _stop_all(children: list[Child]) -> None:
    running = [child for child in children if child.process.returncode is None]
    for child in running:
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(signal.SIGTERM)
    waits = [child.process.wait() for child in running]
    try:
        await asyncio.wait_for(asyncio.gather(*waits), STOP_GRACE_SECONDS)
    except TimeoutError:
        for child in running:
            if child.process.returncode is None:
                _say(f"{child.name} did not stop within {STOP_GRACE_SECONDS:.0f} s: killed")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
        await asyncio.gather(*(child.process.wait() for child in running))


async def _copy_lines(child: Child, width: int) -> None:
    assert child.process.stdout is not None  # created with a pipe
    prefix = f"{child.name:<{width}} | ".encode()
    while line := await _next_line(child.process.stdout):
        sys.stdout.buffer.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
        sys.stdout.buffer.flush()


async def _next_line(stream: asyncio.StreamReader) -> bytes:
    """The child's next line (b"" at its end): one at a time, so lines never interleave
    mid-way. A line over the stream's limit comes in pieces of the limit, so the copy goes
    on and the child's pipe never fills."""
    try:
        return await stream.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial  # the last line, without its newline
    except asyncio.LimitOverrunError as exc:
        return await stream.read(max(exc.consumed, 1))


def _say(message: str) -> None:
    print(f"outdial dev: {message}", file=sys.stderr, flush=True)
