"""Accept throughput of two trees side by side: this checkout against an earlier one.

A ratio measured on a shared 2-core machine means something only against a yardstick taken
in the same minutes, so the bare reference (FastAPI + one LPUSH), the earlier tree's API and
this tree's API are run in turn, round after round, each with `wrk` for the same time.
Each API is the real one under uvicorn (1 process) with its own Redis prefix; no worker
runs, so only the accept path is measured.

    git worktree add /tmp/before <commit>
    PYTHONPATH=. python -m bench.accept_ab --before /tmp/before [--rounds 3 --seconds 15]

With `--quota` both APIs are this tree: "before" is a workspace without a balance
(unlimited), "after" one with credits, so every accept reserves its minute (issue 22).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from bench.call_path import ADMIN, Stack, setup_tenant, wrk
from tests.support import ROOT, free_port


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
    parser.add_argument("--before", type=Path, help="the earlier tree's root")
    parser.add_argument(
        "--quota", action="store_true", help="this tree, unlimited (before) vs metered (after)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    if (args.before is None) == (not args.quota):
        parser.error("give --before <tree> or --quota")

    stacks = {"before": Stack(), "after": Stack()}
    if args.before is not None:
        stacks["before"].api = _api_of(stacks["before"], args.before.resolve())
    reference_port = free_port()
    reference = stacks["after"]._spawn(
        [sys.executable, "-m", "uvicorn", "bench.reference_app:app", "--port",
         str(reference_port), "--log-level", "warning"]
    )  # fmt: skip
    rows: dict[str, list[dict[str, float]]] = {"reference": [], "before": [], "after": []}
    try:
        tenants = {name: await setup_tenant(stack) for name, stack in stacks.items()}
        if args.quota:
            await _give_credits(stacks["after"], tenants["after"]["x-workspace-id"])
        for stack in stacks.values():
            stack.lk.record_requests = False
        time.sleep(2)
        urls = {
            "reference": f"http://127.0.0.1:{reference_port}/v1/api/call",
            "before": f"{stacks['before'].api_url}/v1/api/call",
            "after": f"{stacks['after'].api_url}/v1/api/call",
        }
        for _ in range(args.rounds):
            for name, url in urls.items():
                tenant = tenants["after" if name == "reference" else name]
                rows[name].append(wrk(url, tenant, args.seconds))
    finally:
        reference.terminate()
        for stack in stacks.values():
            stack.redis.delete(f"{stack.prefix}:reference")
            stack.close()

    print("| round | reference req/s | before req/s (ratio) | after req/s (ratio) |")
    print("|---|---|---|---|")
    for index in range(args.rounds):
        ref = rows["reference"][index]["rps"]
        before, after = rows["before"][index], rows["after"][index]
        print(
            f"| {index + 1} | {ref:.0f} | {before['rps']:.0f} ({before['rps'] / ref:.0%}) | "
            f"{after['rps']:.0f} ({after['rps'] / ref:.0%}) |"
        )
    for name in ("before", "after"):
        pairs = zip(rows[name], rows["reference"], strict=True)
        ratios = [row["rps"] / ref["rps"] for row, ref in pairs]
        p50 = statistics.median(row["p50"] for row in rows[name])
        errors = sum(row["non_2xx"] for row in rows[name])
        print(
            f"{name}: median ratio {statistics.median(ratios):.0%}, median p50 {p50:.1f} ms, "
            f"non-2xx {errors:.0f}"
        )
    if args.quota:
        print(f"(tree {ROOT}: before = no balance, after = a balance, every accept reserving)")
    else:
        print(f"(trees: before = {args.before}, after = {ROOT})")


async def _give_credits(stack: Stack, workspace_id: str) -> None:
    """Enough minutes that no accept of the run is refused."""
    async with aiohttp.ClientSession(base_url=stack.api_url) as http, http.post(
        f"/v1/admin/workspaces/{workspace_id}/credits", json={"minutes": 1_000_000},
        headers={"Authorization": f"Bearer {ADMIN}"},
    ) as response:  # fmt: skip
        assert response.status == 200, await response.text()


if __name__ == "__main__":
    asyncio.run(main())
