#!/usr/bin/env python3
"""Where `docker compose up -d` / `down -v` of the compose bench spends its time, on pydockerd and
on the reference dockerd: every API call compose makes, timed at a recording proxy.

    python bench/compose_trace.py [--rounds 3] [--calls]

Starts the same private daemons as ``bench/run.py --start-reference``, puts a
conformance_tests.proxy.ValidatingProxy (no validation, tracing on) in front of each, runs the
bench's project `--rounds` times on each, and prints per phase (up, down) the wall time, the time
inside API calls, the client's own time between them, and per kind of call (method + route with
ids folded) the median duration on each daemon.  ``--calls`` also prints each call of the last
round with its start offset.
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run as B
from conformance_tests.proxy import ValidatingProxy

Call = tuple[float, float, float, str, str, int]


def route(method: str, target: str) -> str:
    path = re.sub(r"^/v1\.\d+", "", target.split("?", 1)[0])
    path = re.sub(r"/(containers|networks|volumes|exec|images)/[^/]+", r"/\1/{id}", path)
    return f"{method} {path}"


def phase(t: B.Target, project: Path, proxy: ValidatingProxy, *args: str) -> tuple[float, list[Call]]:
    proxy.trace = []
    start = time.monotonic()
    env = {**t.env(), "DOCKER_HOST": proxy.host, "DOCKER_BUILDKIT": "0"}
    proc = subprocess.run([B.DOCKER, "compose", "-p", project.name, "--project-directory", str(project), *args],
                          env=env, capture_output=True, timeout=300, check=False)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"[{t.label}] compose {' '.join(args)}: {proc.stderr.decode(errors='replace')}")
    calls = [(a - start, b - start, c - start, m, tg, s) for a, b, c, m, tg, s in proxy.trace]
    proxy.trace = None
    return wall, calls


def busy(calls: list[Call]) -> float:
    """Time with at least one call in flight (events streams excluded)."""
    spans = sorted((a, c) for a, _, c, m, tg, _ in calls if "/events" not in tg)
    total, end = 0.0, -1.0
    for a, c in spans:
        if c > end:
            total += c - max(a, end)
            end = c
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", action="store_true")
    args = ap.parse_args()
    targets = [B.start_private_pydockerd(), B.start_private_dockerd()]
    proxies: list[ValidatingProxy] = []
    projects: dict[str, Path] = {}
    results: dict[str, dict[str, list[Any]]] = {t.label: defaultdict(list) for t in targets}
    try:
        for t in targets:
            B.ensure_busybox(t)
            projects[t.label] = B.compose_setup(t)
            assert t.private_root is not None
            proxies.append(ValidatingProxy(t.private_root / "trace.sock", B.socket_path(t.host), None))
        for _ in range(args.rounds):
            for t, proxy in zip(targets, proxies, strict=True):
                for name, argv in (("up", B.COMPOSE_UP), ("down", B.COMPOSE_DOWN)):
                    wall, calls = phase(t, projects[t.label], proxy, *argv)
                    results[t.label][name].append((wall, calls))
        report(results, args.calls)
    finally:
        for proxy in proxies:
            proxy.close()
        for t in targets:
            try:
                if t.label in projects:
                    B.compose_cleanup(t, projects[t.label])
            finally:
                t.close()


def report(results: dict[str, dict[str, list[Any]]], show_calls: bool) -> None:
    labels = list(results)
    for name in ("up", "down"):
        print(f"\n== compose {name}")
        for label in labels:
            rounds = results[label][name]
            walls = [w for w, _ in rounds]
            busys = [busy(c) for _, c in rounds]
            print(f"{label:10s} wall {statistics.median(walls) * 1000:7.0f} ms   in API calls "
                  f"{statistics.median(busys) * 1000:7.0f} ms   calls {len(rounds[-1][1])}")
        per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for label in labels:
            for _, calls in results[label][name]:
                for a, _, c, m, tg, _ in calls:
                    per[route(m, tg)][label].append(c - a)
        print(f"  {'call':52s} " + " ".join(f"{lb + ' n/med ms':>20s}" for lb in labels))
        for r in sorted(per, key=lambda r: -sum(per[r].get(labels[0], [0]))):
            cells = []
            for lb in labels:
                v = per[r].get(lb, [])
                n_rounds = max(1, len(results[lb][name]))
                cells.append(f"{len(v) / n_rounds:6.1f} {statistics.median(v) * 1000 if v else 0:9.1f}")
            print(f"  {r[:52]:52s} " + " ".join(f"{c:>20s}" for c in cells))
        if show_calls:
            for label in labels:
                print(f"  -- {label}, last round")
                for a, _, c, m, tg, s in results[label][name][-1][1]:
                    print(f"   {a * 1000:7.0f} +{(c - a) * 1000:6.0f} ms {s} {m} {tg[:100]}")


if __name__ == "__main__":
    main()
