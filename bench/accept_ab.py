"""Accept throughput against two yardsticks taken in the same minutes, round after round.

A ratio measured on a shared 2-core machine means something only against a yardstick taken
in the same minutes, so every round runs, each with `wrk` for the same time: the plain-ASGI
floor (one Redis LPUSH behind a raw ASGI app, `bench/plain_asgi_app.py`), the bare reference
(the same LPUSH behind FastAPI, `bench/reference_app.py`) and the API of each tree compared.
Each API is the real one under uvicorn (1 process) with its own Redis prefix; no worker
runs, so only the accept path is measured. The floor and the reference share uvicorn's
settings with the APIs. Beside req/s, each server's and Redis's CPU time (user + system,
from /proc) per request answered: a cost that other work on the cores disturbs far less.

    PYTHONPATH=. python -m bench.accept_ab [--limits] [--rounds 3 --seconds 15]
    git worktree add /tmp/before <commit>
    PYTHONPATH=. python -m bench.accept_ab --before /tmp/before [--limits]

Alone, this tree's API is measured. With `--before` an earlier tree's API runs beside it.
With `--quota` both APIs are this tree: "before" is a workspace without a balance
(unlimited), "after" one with credits, so every accept reserves its minute (issue 22).
With `--limits` every API runs with pacing limits on (deployment defaults, the workspace's
own concurrency and its trunk's own limits), all high enough never to bind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from bench.call_path import ADMIN, Stack, setup_tenant, wrk
from tests.support import ROOT, free_port

# The deployment's pacing defaults with `--limits` (0 would mean unlimited).
LIMITS_ENV = {
    "OUTDIAL_TRUNK_MAX_CALLS_PER_SECOND": "1000",
    "OUTDIAL_TRUNK_MAX_CONCURRENT_CALLS": "100000",
    "OUTDIAL_WORKSPACE_MAX_CONCURRENT_CALLS": "100000",
}
# The two yardsticks, each served by uvicorn as the APIs are.
YARDSTICKS = {"floor": "bench.plain_asgi_app:app", "reference": "bench.reference_app:app"}
QUIET = ["--log-level", "warning"]


def _api_of(stack: Stack, root: Path) -> subprocess.Popen[bytes]:
    """Run `root`'s API in place of the stack's own (same port, prefix and settings)."""
    stack.api.terminate()
    stack.api.wait(timeout=10)
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:app", "--port", str(stack.api_port),
         "--log-level", "warning"],
        cwd=root, env=stack.env | {"PYTHONPATH": str(root)}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="an earlier tree's root, run beside this")
    parser.add_argument(
        "--quota", action="store_true", help="this tree, unlimited (before) vs metered (after)"
    )
    parser.add_argument("--limits", action="store_true", help="pacing limits on (never binding)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    if args.before is not None and args.quota:
        parser.error("give --before <tree> or --quota, not both")

    env = LIMITS_ENV if args.limits else None
    apis = ["before", "after"] if args.before is not None or args.quota else ["api"]
    stacks = {name: Stack(env=env) for name in apis}
    if args.before is not None:
        stacks["before"].api = _api_of(stacks["before"], args.before.resolve())
    own = stacks[apis[-1]]
    ports = {name: free_port() for name in YARDSTICKS}
    yardsticks = {
        name: own._spawn(
            [sys.executable, "-m", "uvicorn", target, "--port", str(ports[name]), *QUIET]
        )
        for name, target in YARDSTICKS.items()
    }
    servers = yardsticks | {name: stack.api for name, stack in stacks.items()}
    names = [*YARDSTICKS, *apis]
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    loads: list[str] = []
    try:
        tenants = {name: await setup_tenant(stack) for name, stack in stacks.items()}
        if args.quota:
            await _admin(stacks["after"], f"workspaces/{_ws(tenants['after'])}/credits",
                         {"minutes": 1_000_000}, "POST")  # fmt: skip
        if args.limits:
            for name, stack in stacks.items():
                await _set_limits(stack, tenants[name])
        for stack in stacks.values():
            stack.lk.record_requests = False
        time.sleep(2)
        # Redis on this machine (loopback): its CPU per request is part of a request's cost.
        redis_pid = int(own.redis.info("server")["process_id"])
        urls = {name: f"http://127.0.0.1:{ports[name]}/v1/api/call" for name in YARDSTICKS}
        urls |= {name: f"{stacks[name].api_url}/v1/api/call" for name in apis}
        for _ in range(args.rounds):
            loads.append(_load())
            for name, url in urls.items():
                tenant = tenants[name if name in stacks else apis[-1]]
                pids = (servers[name].pid, redis_pid)
                cpu_before = [_cpu_seconds(pid) for pid in pids]
                row = wrk(url, tenant, args.seconds)
                served = row["rps"] * args.seconds
                for field, pid, before in zip(
                    ("cpu_us", "redis_us"), pids, cpu_before, strict=True
                ):
                    row[field] = (_cpu_seconds(pid) - before) / served * 1e6
                rows[name].append(row)
    finally:
        for process in yardsticks.values():
            process.terminate()
        for stack in stacks.values():
            stack.redis.delete(f"{stack.prefix}:reference")
            stack.close()
    _report(args, apis, rows, loads)


def _report(
    args: argparse.Namespace,
    apis: list[str],
    rows: dict[str, list[dict[str, float]]],
    loads: list[str],
) -> None:
    header = " | ".join(f"{name} req/s (of reference, of floor)" for name in apis)
    print(f"| round | load (1 min) | floor req/s | reference req/s (of floor) | {header} |")
    print("|---|---|---|---|" + "---|" * len(apis))
    for index in range(args.rounds):
        floor, ref = rows["floor"][index]["rps"], rows["reference"][index]["rps"]
        cells = [
            f"{row['rps']:.0f} ({row['rps'] / ref:.0%}, {row['rps'] / floor:.0%})"
            for row in (rows[name][index] for name in apis)
        ]
        print(
            f"| {index + 1} | {loads[index]} | {floor:.0f} | {ref:.0f} ({ref / floor:.0%}) | "
            + " | ".join(cells)
            + " |"
        )
    for name in ["reference", *apis]:
        p50 = statistics.median(row["p50"] for row in rows[name])
        errors = sum(row["non_2xx"] for row in rows[name])
        of_floor = _median_ratio(rows[name], rows["floor"])
        of_ref = ""
        if name != "reference":
            of_ref = f"{_median_ratio(rows[name], rows['reference']):.0%} of the reference, "
        print(
            f"{name}: median {of_ref}{of_floor:.0%} of the floor, median p50 {p50:.1f} ms, "
            f"non-2xx {errors:.0f}"
        )
    # A server's CPU per request answered: what it costs, whoever else shares the cores;
    print()
    # Redis's: its CPU over the same seconds per request (anything else it served counts too).
    names = ["floor", "reference", *apis]
    print(
        "| round | " + " | ".join(f"{name} CPU µs per request (Redis's)" for name in names) + " |"
    )
    print("|---|---|" + "---|" * (len(apis) + 1))
    for index in range(args.rounds):
        cells = [
            f"{rows[name][index]['cpu_us']:.0f} ({rows[name][index]['redis_us']:.0f})"
            for name in names
        ]
        print(f"| {index + 1} | " + " | ".join(cells) + " |")
    for name in apis:
        pairs = list(zip(rows["reference"], rows[name], strict=True))
        alone = statistics.median(ref["cpu_us"] / row["cpu_us"] for ref, row in pairs)
        both = statistics.median(
            (ref["cpu_us"] + ref["redis_us"]) / (row["cpu_us"] + row["redis_us"])
            for ref, row in pairs
        )
        print(
            f"{name}: the reference's CPU per request over its own, median {alone:.0%} "
            f"(server), {both:.0%} (server + Redis)"
        )
    limits = "pacing limits on" if args.limits else "no pacing limits"
    if args.quota:
        print(f"(tree {ROOT}, {limits}: before = no balance, after = a balance, reserving)")
    elif args.before is not None:
        print(f"(trees, {limits}: before = {args.before}, after = {ROOT})")
    else:
        print(f"(tree {ROOT}, {limits})")


def _median_ratio(rows: list[dict[str, float]], against: list[dict[str, float]]) -> float:
    pairs = zip(rows, against, strict=True)
    return statistics.median(row["rps"] / base["rps"] for row, base in pairs)


def _cpu_seconds(pid: int) -> float:
    """The process's CPU time so far, user and system (`/proc/<pid>/stat`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    """The machine's 1-minute load average as `uptime` reports it (others share the cores)."""
    return Path("/proc/loadavg").read_text().split()[0]


def _ws(tenant: dict[str, str]) -> str:
    return tenant["x-workspace-id"]


async def _set_limits(stack: Stack, tenant: dict[str, str]) -> None:
    """The workspace's own concurrency and its number's trunk's own limits (admin API)."""
    await _admin(stack, f"workspaces/{_ws(tenant)}/limits", {"max_concurrent_calls": 50_000})
    headers = {name: tenant[name] for name in ("x-workspace-id", "x-api-key")}
    async with aiohttp.ClientSession(base_url=stack.api_url) as http, http.get(
        "/v1/api/numbers", headers=headers
    ) as response:  # fmt: skip
        (number,) = (await response.json())["numbers"]
    await _admin(
        stack,
        f"trunks/{number['sipTrunkId']}/limits",
        {"max_calls_per_second": 500, "max_concurrent_calls": 50_000},
    )


async def _admin(stack: Stack, path: str, body: dict[str, float], method: str = "PUT") -> None:
    async with aiohttp.ClientSession(base_url=stack.api_url) as http, http.request(
        method, f"/v1/admin/{path}", json=body, headers={"Authorization": f"Bearer {ADMIN}"}
    ) as response:  # fmt: skip
        assert response.status == 200, await response.text()


if __name__ == "__main__":
    asyncio.run(main())
