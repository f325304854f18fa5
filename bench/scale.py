#!/usr/bin/env python3
"""Scale bench: latency and memory with 0, 50, 150, 300 running containers, pydockerd and a
reference dockerd side by side in one run.

    python bench/scale.py [--levels 0,50,150,300] [--n 9] [--out bench/results]

Both daemons are private ones this script starts and stops (see run.py); pydockerd's
containers are on its default bridge (a /22), the reference's on its own bridge (a /22,
without iptables: see run.py).  At each level
both are brought to that many running `busybox sleep` containers (created alternately),
then, interleaved (A B, B A, ...): `docker run --rm busybox true`, `docker exec <c> true`
and `docker ps -q`, medians over --n.  Memory at each level, from /proc/PID/smaps_rollup:

- daemon: pydockerd's server; dockerd plus its containerd;
- shims: every shim process of that daemon (pydockerd: the shims and the shim parent
  they are forked from; dockerd: its containerd-shim-runc-v2 processes) — PSS and RSS
  (RSS counts shared pages once per process, so it overstates forked shims);
- slopes: (PSS at the highest level - PSS at 0) / containers, per container.

After the last level every container is removed and the daemon's PSS is measured again:
`daemon_pss_after_rm_ratio` is that over the daemon's PSS at the start (goal <= 1.10).
JSON (all samples) goes to bench/results/scale-<UTC time>.json.
"""
# ruff: noqa: SLF001  (uses bench/run.py's helpers)
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as B  # bench/run.py: targets, processes, memory

GOALS = {"shim_pss_per_container_mib": 2.5, "run_ratio": 0.4, "exec_ratio": 0.35,
         "daemon_pss_after_rm_ratio": 1.10}


def shim_pids(t: B.Target) -> list[int]:
    assert t.private_root is not None
    root = str(t.private_root)
    marker = B.PYDOCKERD_SHIM_MARKER if t.kind == "pydockerd" else B.REFERENCE_SHIM_MARKER
    return [p for p in B._pids() if marker in (c := B._cmdline(p)) and root in c]


def memory(t: B.Target) -> dict[str, Any]:
    time.sleep(1.0)  # idle: let the last command's garbage settle
    daemon = [B.memory_kb(p) for p in B.daemon_processes(t)]
    shims = [B.memory_kb(p) for p in shim_pids(t)]
    return {
        "daemon_pss_kb": sum(m["pss_kb"] for m in daemon), "daemon_rss_kb": sum(m["rss_kb"] for m in daemon),
        "shim_processes": len(shims),
        "shims_pss_kb": sum(m["pss_kb"] for m in shims), "shims_rss_kb": sum(m["rss_kb"] for m in shims),
    }


def grow(targets: list[B.Target], sleepers: dict[str, list[str]], level: int) -> None:
    while any(len(sleepers[t.label]) < level for t in targets):
        for t in targets:
            if len(sleepers[t.label]) < level:
                sleepers[t.label].append(B._sleeper(t))


def timed(targets: list[B.Target], n: int, step: Any) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {t.label: [] for t in targets}
    step(targets[0])  # warm-up, untimed
    step(targets[-1])
    for i in range(n):
        for t in (targets if i % 2 == 0 else targets[::-1]):
            start = time.perf_counter()
            step(t)
            times[t.label].append(round((time.perf_counter() - start) * 1000, 2))
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="0,50,150,300")
    ap.add_argument("--n", type=int, default=9)
    ap.add_argument("--out", default=str(B.RESULTS))
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    # pydockerd on its default bridge, a /22 (a /24 holds fewer than 300 containers): each
    # container gets a veth and an address, and so does each of the reference's (its iptables
    # are off, see run.py: it does a little less per container).
    bip = f"10.211.{(os.getpid() % 60) * 4}.1/22"
    # the reference's bridge a /22 as well: a /24 holds fewer than 300 containers
    targets = [B.start_private_pydockerd(bip=bip),
               B.start_private_dockerd(bip=f"10.205.{(os.getpid() % 60) * 4}.1/22")]
    sleepers: dict[str, list[str]] = {t.label: [] for t in targets}
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_at_start": os.getloadavg(), "levels": levels, "n": args.n, "goals": GOALS,
        "targets": {t.label: {"kind": t.kind, "levels": {}} for t in targets},
    }
    try:
        for t in targets:
            B.ensure_busybox(t)
            B._run_true(t, None)
        for t in targets:
            results["targets"][t.label]["start"] = memory(t)
        for level in levels:
            print(f"level {level}: starting containers ...", file=sys.stderr, flush=True)
            grow(targets, sleepers, level)
            mem = {t.label: memory(t) for t in targets}
            exec_target = {t.label: (sleepers[t.label][0] if sleepers[t.label] else B._sleeper(t)) for t in targets}
            print(f"level {level}: timing ...", file=sys.stderr, flush=True)
            run_ms = timed(targets, args.n, lambda t: B._run_true(t, None))
            exec_ms = timed(targets, args.n, lambda t, ex=exec_target: B._exec_true(t, ex[t.label]))
            ps_ms = timed(targets, args.n, lambda t: B._ps(t, None))
            for t in targets:
                if not sleepers[t.label]:
                    B._remove(t, exec_target[t.label])
                row = {**mem[t.label], "load_average": os.getloadavg()}
                for what, samples in (("run", run_ms), ("exec", exec_ms), ("ps", ps_ms)):
                    row[f"{what}_median_ms"] = statistics.median(samples[t.label])
                    row[f"{what}_samples_ms"] = samples[t.label]
                results["targets"][t.label]["levels"][str(level)] = row
            _print_level(results, level)
        print("removing every container ...", file=sys.stderr, flush=True)
        for t in targets:
            for i in range(0, len(sleepers[t.label]), 50):
                t.docker("rm", "-f", *sleepers[t.label][i:i + 50], check=False, timeout=600)
            sleepers[t.label] = []
        for t in targets:
            tr = results["targets"][t.label]
            tr["after_rm"] = memory(t)
            tr["daemon_pss_after_rm_ratio"] = round(tr["after_rm"]["daemon_pss_kb"] / tr["start"]["daemon_pss_kb"], 3)
            lo, hi = str(levels[0]), str(levels[-1])
            span = levels[-1] - levels[0]
            if span:
                a, b = tr["levels"][lo], tr["levels"][hi]
                tr["slope_mib_per_container"] = {
                    k: round((b[f"{k}_pss_kb"] - a[f"{k}_pss_kb"]) / span / 1024, 3) for k in ("daemon", "shims")}
                tr["slope_mib_per_container"]["total"] = round(sum(tr["slope_mib_per_container"].values()), 3)
        ours, ref = (results["targets"][t.label] for t in targets)
        results["ratios"] = {
            lvl: {w: round(ours["levels"][lvl][f"{w}_median_ms"] / ref["levels"][lvl][f"{w}_median_ms"], 3)
                  for w in ("run", "exec", "ps")}
            for lvl in ours["levels"]}
        top = str(levels[-1])
        results["total_pss_at_top_ratio"] = round(
            (ours["levels"][top]["daemon_pss_kb"] + ours["levels"][top]["shims_pss_kb"])
            / (ref["levels"][top]["daemon_pss_kb"] + ref["levels"][top]["shims_pss_kb"]), 3)
        results["load_average_at_end"] = os.getloadavg()
        _print_summary(results)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"scale-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
        path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(f"\nJSON: {path}")
    finally:
        for t in targets:
            ids = sleepers.get(t.label) or []
            if ids:
                t.docker("rm", "-f", *ids, check=False, timeout=600)
            t.close()
    return 0


def _print_level(results: dict[str, Any], level: int) -> None:
    for label, tr in results["targets"].items():
        r = tr["levels"][str(level)]
        per = r["shims_pss_kb"] / 1024 / level if level else 0.0
        print(f"{level:>4} {label:<10} run {r['run_median_ms']:7.1f} ms  exec {r['exec_median_ms']:7.1f} ms  "
              f"ps {r['ps_median_ms']:6.1f} ms  daemon PSS {r['daemon_pss_kb'] / 1024:7.1f} MiB  "
              f"shims PSS {r['shims_pss_kb'] / 1024:7.1f} MiB ({per:.2f}/ctr; RSS {r['shims_rss_kb'] / 1024:.0f})  "
              f"load {r['load_average'][0]:.1f}", flush=True)


def _print_summary(results: dict[str, Any]) -> None:
    print("\nratios pydockerd/reference:", json.dumps(results["ratios"]))
    for label, tr in results["targets"].items():
        print(f"{label}: slope MiB/container {tr.get('slope_mib_per_container')}, "
              f"daemon PSS after rm / at start {tr['daemon_pss_after_rm_ratio']}")
    print(f"total PSS at the top level, pydockerd/reference: {results['total_pss_at_top_ratio']}")


if __name__ == "__main__":
    sys.exit(main())
