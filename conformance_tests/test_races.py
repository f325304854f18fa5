"""Races in the container core (issue 9 items 1, 2, 4): a remove racing the exit, parallel creates
of one name.  Small versions run in CI; the `stress` versions (deselected by default, `-m stress`)
repeat the sequence enough times to have caught each race before it was fixed."""
from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.util import ok

BUSYBOX = "busybox"
RM_TIMEOUT = 30.0  # a remove that takes this long is a hang (dockerd answers in well under a second)


def _run_then_rm(daemon: Daemon, label: str) -> tuple[str, str]:
    """`docker run -d busybox true` then at once `docker rm -f -v`: ('ok'|'hang'|'error: ...', id)."""
    cid = ok(daemon.cli("run", "-d", "-l", label, BUSYBOX, "true")).strip()
    try:
        proc = daemon.cli("rm", "-f", "-v", cid, timeout=RM_TIMEOUT)
    except subprocess.TimeoutExpired:
        return "hang", cid
    if proc.returncode != 0:
        return f"error: {proc.stderr.strip()}", cid
    return "ok", cid


def _events(daemon: Daemon, since: float, label: str) -> dict[str, list[str]]:
    out = ok(daemon.cli("events", "--since", f"{since:.3f}", "--until", f"{time.time() + 1:.3f}",
                        "--filter", f"label={label}", "--filter", "type=container", "--format", "{{json .}}"))
    actions: dict[str, list[str]] = {}
    for line in out.splitlines():
        e = json.loads(line)
        actions.setdefault(e["Actor"]["ID"], []).append(e["Action"])
    return actions


def _rm_race(daemon: Daemon, iterations: int, restart_every: int) -> dict[str, Any]:
    label = f"rmrace={time.time_ns()}"
    since = time.time() - 1
    hangs: list[str] = []
    errors: list[str] = []
    removed: list[str] = []
    resurrected: set[str] = set()
    bad_order: dict[str, list[str]] = {}
    this_round: set[str] = set()
    for i in range(1, iterations + 1):
        result, cid = _run_then_rm(daemon, label)
        if result == "hang":
            hangs.append(cid)
        elif result == "ok":
            removed.append(cid)
            this_round.add(cid)
        else:
            errors.append(result)
        if i % restart_every == 0 or i == iterations:
            # Order of events before the restart (the daemon's history goes with it).
            for cid, actions in _events(daemon, since, label).items():
                # `kill` when rm -f found it still running (dockerd sends it then too)
                if cid in this_round and [a for a in actions if a != "kill"] != ["create", "start", "die", "destroy"]:
                    bad_order[cid] = actions
            this_round.clear()
            since = time.time()
            if daemon.private:
                daemon.restart()
            present = set(ok(daemon.cli("ps", "-aq", "--no-trunc", "--filter", f"label={label}")).split())
            resurrected |= present & set(removed)
            for cid in present:  # what hung is freed by the restart; start the next round clean
                daemon.cli("rm", "-f", cid, timeout=RM_TIMEOUT)
    return {"iterations": iterations, "hangs": len(hangs), "errors": errors, "removed": len(removed),
            "resurrected": sorted(resurrected), "bad_order": bad_order}


def _check_rm_race(report: dict[str, Any]) -> None:
    print(f"\nrun-then-rm -f: {report}")
    assert report["hangs"] == 0, report
    assert report["errors"] == [], report
    assert report["resurrected"] == [], report
    assert report["bad_order"] == {}, report


def test_rm_force_of_exiting_container(daemon: Daemon, busybox: str) -> None:
    """Items 1 and 2: rm -f of a container that is exiting answers promptly, removes it for good
    (also across a daemon restart), and events come as dockerd sends them (die before destroy)."""
    _check_rm_race(_rm_race(daemon, iterations=6, restart_every=3))


@pytest.mark.stress
def test_rm_force_of_exiting_container_stress(daemon: Daemon, busybox: str) -> None:
    _check_rm_race(_rm_race(daemon, iterations=200, restart_every=25))


def _create_same_name(daemon: Daemon, name: str, parallel: int) -> dict[str, Any]:
    body = json.dumps({"Image": BUSYBOX, "Cmd": ["true"]})

    def create(_: int) -> tuple[int, str]:
        resp = daemon.raw("POST", f"/containers/create?name={name}", body=body, timeout=60)
        return resp.status, resp.message if resp.status != 201 else resp.json()["Id"]

    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(create, range(parallel)))
    winners = [msg for status, msg in results if status == 201]
    conflicts = [msg for status, msg in results if status == 409]
    others = [(status, msg) for status, msg in results if status not in (201, 409)]
    return {"winners": winners, "conflicts": conflicts, "others": others}


def _same_name_round(daemon: Daemon, name: str, parallel: int) -> list[str]:
    """One round; returns what went wrong (empty when the round behaved as dockerd)."""
    problems: list[str] = []
    r = _create_same_name(daemon, name, parallel)
    if len(r["winners"]) != 1:
        problems.append(f"{len(r['winners'])} winners")
    if r["others"]:
        problems.append(f"other answers: {r['others'][:3]}")
    for msg in r["conflicts"]:
        if f'The container name "/{name}" is already in use by container' not in msg:
            problems.append(f"conflict text: {msg}")
            break
    if len(r["winners"]) == 1:
        winner = r["winners"][0]
        got = daemon.raw("GET", f"/containers/{name}/json")
        if got.status != 200 or got.json()["Id"] != winner:
            problems.append(f"the name does not lead to the winner: {got.status} {got.body[:200]!r}")
    listed = ok(daemon.cli("ps", "-a", "--no-trunc", "--filter", f"name=^/{name}$", "--format", "{{.ID}}")).split()
    if listed != r["winners"][:1]:
        problems.append(f"ps -a lists {listed}, winners {r['winners']}")
    rm = daemon.cli("rm", "-f", name)
    if rm.returncode != 0:
        problems.append(f"rm -f {name}: {rm.stderr.strip()}")
    again = daemon.raw("POST", f"/containers/create?name={name}",
                       body=json.dumps({"Image": BUSYBOX, "Cmd": ["true"]}))
    if again.status != 201:
        problems.append(f"the name is not usable after rm: {again.status} {again.message}")
    daemon.cli("rm", "-f", name)
    return problems


def test_parallel_creates_of_one_name(daemon: Daemon, busybox: str, name: str) -> None:
    """Item 4: exactly one of several parallel `create --name x` wins, the others get dockerd's 409;
    the name then leads to the winner and can be reused after its removal."""
    problems = [p for _ in range(2) for p in _same_name_round(daemon, name, 8)]
    assert problems == []


@pytest.mark.stress
def test_parallel_creates_of_one_name_stress(daemon: Daemon, busybox: str, name: str) -> None:
    failed = {}
    for i in range(50):
        problems = _same_name_round(daemon, f"{name}-{i}", 20)
        if problems:
            failed[i] = problems
    print(f"\nsame-name creates: {len(failed)} of 50 rounds failed: {failed}")
    assert failed == {}


def test_parallel_renames_to_one_name(daemon: Daemon, busybox: str, name: str) -> None:
    """Item 4 (rename): several containers renamed to one name at once: one wins, the others 409."""
    ids = [ok(daemon.cli("create", BUSYBOX, "true")).strip() for _ in range(4)]
    try:
        def rename(cid: str) -> int:
            return daemon.raw("POST", f"/containers/{cid}/rename?name={name}").status

        with ThreadPoolExecutor(len(ids)) as pool:
            statuses = sorted(pool.map(rename, ids))
        assert statuses == [204] + [409] * (len(ids) - 1)
        got = daemon.raw("GET", f"/containers/{name}/json")
        assert got.status == 200 and got.json()["Id"] in ids
        listed = ok(daemon.cli("ps", "-a", "--filter", f"name=^/{name}$", "--format", "{{.Names}}")).split()
        assert listed == [name]
    finally:
        for cid in ids:
            daemon.cli("rm", "-f", cid)


def _commit_race(daemon: Daemon, iterations: int) -> dict[str, Any]:
    """`docker run -d` of a container that exits at once, then at once `docker commit` (pause
    on, the default): never a 5xx, never a hang, no scratch file left in the data root."""
    answers: dict[str, int] = {}
    failures: list[str] = []
    for _ in range(iterations):
        cid = ok(daemon.cli("run", "-d", BUSYBOX, "sh", "-c", "echo changed > /changed")).strip()
        try:
            resp = daemon.raw("POST", f"/commit?container={cid}&pause=1", body="{}", timeout=RM_TIMEOUT)
        except (TimeoutError, OSError) as err:
            failures.append(f"no answer: {err!r}")
        else:
            answers[str(resp.status)] = answers.get(str(resp.status), 0) + 1
            if resp.status >= 500:
                failures.append(f"{resp.status} {resp.message}")
            elif resp.status == 201:
                daemon.cli("rmi", resp.json()["Id"])
        try:
            daemon.cli("rm", "-f", cid, timeout=RM_TIMEOUT)
        except subprocess.TimeoutExpired:
            failures.append(f"rm -f {cid[:12]} hung")
    stray = sorted(p.name for p in (daemon.data_root / "tmp").glob("commit-*")) \
        if daemon.kind == "pydockerd" else []
    return {"iterations": iterations, "answers": answers, "failures": failures, "stray files": stray}


def test_commit_of_exiting_container(daemon: Daemon, busybox: str) -> None:
    """Item 3: committing (with pause) a container whose process is just exiting answers 201 (or
    a clean error), never 500 or a hang, and leaves no scratch tar behind."""
    report = _commit_race(daemon, 6)
    print(f"\ncommit of exiting containers: {report}")
    assert report["failures"] == [] and report["stray files"] == [], report


@pytest.mark.stress
def test_commit_of_exiting_container_stress(daemon: Daemon, busybox: str) -> None:
    report = _commit_race(daemon, 100)
    print(f"\ncommit of exiting containers: {report}")
    assert report["failures"] == [] and report["stray files"] == [], report
