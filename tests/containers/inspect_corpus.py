"""A varied set of containers and what pydockerd's inspect and list say about them.

``record()`` starts a private pydockerd, creates the corpus (every HostConfig field family,
through the docker CLI as users send them and through raw API bodies for the shapes other
clients send), starts a few, and records ``GET /containers/{id}/json`` at several API
versions, the list and its filters, with volatile values (ids, times, pids, addresses, ports,
paths) normalised.  The recording is a fixture (``inspect_corpus.json``); a test recreates the
corpus and compares the rendering byte for byte, so a change in how containers are stored or
encoded cannot alter what clients see unnoticed.

``python3 -m tests.containers.inspect_corpus`` (as root) rewrites the fixture; with ``--rows``
it also saves the containers' stored rows (``inspect_corpus_rows.json``), which the tests load
as rows written by an older pydockerd.  ``--upgrade-from REV`` creates the corpus with the
pydockerd of git revision REV and reads it back with this checkout's daemon.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "inspect_corpus.json"
ROWS_FIXTURE = HERE / "inspect_corpus_rows.json"
VERSIONS = ("1.41", "1.44", "1.47", "1.50")
PREFIX = "corpus-"
NET = "corpusnet"

# (name, `docker create` arguments after the name; "{root}" is the daemon's private dir,
# "{net}" the corpus network's subnet prefix ("10.215.N."), started: run it after create)
CLI_CASES: list[tuple[str, list[str], bool]] = [
    ("plain", ["busybox"], False),
    ("cmd", ["--entrypoint", "/bin/sh", "busybox", "-c", "echo hi there"], False),
    ("env", ["-e", "A=1", "-e", "B=two words", "--label", "x=y", "--label", "z=", "-u", "1000:1000",
             "-w", "/tmp/work", "busybox"], False),
    ("tty", ["-it", "--attach", "stdin", "busybox"], False),
    ("ports", ["-p", "127.0.0.1:18080:80", "-p", "127.0.0.1::53/udp", "--expose", "9000", "busybox"], False),
    ("portsrun", ["-p", "127.0.0.1::80", "--expose", "81/udp", "busybox", "sleep", "300"], True),
    ("publishall", ["-P", "--expose", "7000", "busybox", "sleep", "300"], True),
    ("binds", ["-v", "{root}/bind:/data:ro", "-v", "corpusvol:/vol", "-v", "/anon", "busybox"], False),
    ("mounts", ["--mount", "type=bind,src={root}/bind,dst=/m,readonly",
                "--mount", "type=volume,src=corpusvol2,dst=/v2,volume-label=a=b,volume-nocopy",
                "--mount", "type=tmpfs,dst=/t,tmpfs-size=1048576,tmpfs-mode=1770",
                "--mount", "type=bind,src={root}/bind,dst=/p,bind-propagation=rslave", "busybox"], False),
    ("tmpfs", ["--tmpfs", "/run:rw,size=1m", "--tmpfs", "/scratch", "busybox"], False),
    ("volfrom", ["--volumes-from", PREFIX + "binds:ro", "busybox"], False),
    ("netalias", ["--network", NET, "--network-alias", "a1", "--network-alias", "a2", "--ip", "{net}5",
                  "busybox", "sleep", "300"], True),
    ("netcreated", ["--network", NET, "--network-alias", "web", "busybox"], False),
    ("dns", ["--dns", "10.0.0.53", "--dns-search", "example.test", "--dns-option", "ndots:2", "busybox"], False),
    ("hosts", ["--add-host", "h1:10.1.2.3", "--add-host", "h2:10.1.2.4", "busybox"], False),
    ("links", ["--link", PREFIX + "plain:al", "busybox"], False),
    ("restart", ["--restart", "on-failure:3", "busybox"], False),
    ("restart2", ["--restart", "unless-stopped", "busybox"], False),
    ("resources", ["-m", "64m", "--memory-reservation", "32m", "--memory-swap", "128m", "--cpus", "0.5",
                   "--cpu-shares", "512", "--cpuset-cpus", "0", "--pids-limit", "100", "--oom-score-adj", "100",
                   "--memory-swappiness", "10", "busybox"], False),
    ("ulimits", ["--ulimit", "nofile=1024:2048", "--ulimit", "nproc=100", "busybox"], False),
    ("devices", ["--device", "/dev/null:/dev/mynull:rwm", "--device-cgroup-rule", "c 1:3 mr", "busybox"], False),
    ("caps", ["--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD", "busybox"], False),
    ("secopt", ["--security-opt", "no-new-privileges", "--security-opt", "seccomp=unconfined", "busybox"], False),
    ("logopts", ["--log-driver", "json-file", "--log-opt", "max-size=1m", "--log-opt", "max-file=2", "busybox"],
     False),
    ("lognone", ["--log-driver", "none", "busybox"], False),
    ("health", ["--health-cmd", "true", "--health-interval", "5s", "--health-retries", "2",
                "--health-timeout", "3s", "--health-start-period", "1s", "busybox"], False),
    ("stop", ["--stop-signal", "SIGUSR1", "--stop-timeout", "5", "busybox"], False),
    ("initro", ["--init", "--read-only", "busybox"], False),
    ("sysctl", ["--sysctl", "kernel.shm_rmid_forced=1", "--sysctl", "net.ipv4.ip_forward=1", "busybox"], False),
    ("hostname", ["--hostname", "h1", "--domainname", "example.test", "busybox"], False),
    ("netnone", ["--network", "none", "busybox"], False),
    ("nethost", ["--network", "host", "busybox"], False),
    ("namespaces", ["--ipc", "shareable", "--pid", "host", "--uts", "host", "busybox"], False),
    ("groups", ["--group-add", "1234", "--shm-size", "128m", "busybox"], False),
    ("autorm", ["--rm", "busybox"], False),
    ("privileged", ["--privileged", "busybox"], False),
    ("running", ["busybox", "sleep", "300"], True),
]

# Bodies other clients send (docker-py, compose, hand-made requests): null versus empty
# lists, keys in any case, defaults spelled out.
RAW_CASES: list[tuple[str, dict[str, Any]]] = [
    ("rawempty", {"Image": "busybox", "HostConfig": {
        "Binds": [], "CapAdd": [], "CapDrop": None, "Dns": None, "ExtraHosts": [], "SecurityOpt": [],
        "VolumesFrom": [], "Links": [], "GroupAdd": [], "DeviceCgroupRules": [], "DeviceRequests": [],
        "PortBindings": None, "RestartPolicy": {"Name": ""}, "LogConfig": {}, "NetworkMode": "default",
        "ShmSize": 0, "MaskedPaths": [], "ReadonlyPaths": [], "Init": False, "ConsoleSize": [10, 20],
        "PidsLimit": 0, "MemorySwappiness": -1, "Isolation": "default", "IpcMode": "", "CgroupnsMode": "",
        "Devices": None, "Ulimits": None}}),
    ("rawcase", {"image": "busybox", "cmd": "true", "hostconfig": {"memory": 8388608, "readonlyrootfs": True,
                                                                     "restartpolicy": {"name": "always"}}}),
    ("rawports", {"Image": "busybox", "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "HostConfig": {
        "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18081"}], "53/udp": [{"HostPort": ""}]},
        "PublishAllPorts": False, "Privileged": False}}),
    ("rawhostports", {"Image": "busybox", "HostConfig": {
        "NetworkMode": "host", "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8088"}]}}}),
    ("rawdockerpy", {"Image": "busybox", "Cmd": ["sleep", "1"], "Labels": {"com.example": "1"}, "Env": ["X=1"],
                     "StopSignal": "SIGINT", "Healthcheck": {"Test": ["NONE"]}, "HostConfig": {
        "NetworkMode": "default", "Binds": ["corpusvol3:/x:rw"], "Tmpfs": {"/tt": "size=2m"},
        "Sysctls": {"net.core.somaxconn": "1024"}, "LogConfig": {"Type": "json-file", "Config": None},
        "Mounts": [{"Type": "volume", "Source": "corpusvol4", "Target": "/y", "ReadOnly": True,
                    "VolumeOptions": {"NoCopy": True, "DriverConfig": {"Name": "local"}}}],
        "Ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}],
        "BlkioWeightDevice": [], "BlkioDeviceReadBps": [{"Path": "/dev/null", "Rate": 1048576}]},
        "NetworkingConfig": {"EndpointsConfig": {NET: {"Aliases": ["dpy"]}}}}),
    ("rawentrypoint", {"Image": "busybox", "Entrypoint": "/bin/echo", "Cmd": None, "WorkingDir": "/",
                       "OnBuild": ["RUN true"], "Shell": ["/bin/sh", "-c"], "ArgsEscaped": False,
                       "Volumes": {"/vv": {}}, "StopTimeout": 0, "HostConfig": None}),
]

FILTERS: list[dict[str, list[str]]] = [
    {"network": [NET]}, {"network": ["none"]}, {"network": ["host"]}, {"network": ["bridge"]},
    {"publish": ["80"]}, {"publish": ["18080/tcp"]}, {"expose": ["9000"]}, {"expose": ["81/udp"]},
    {"volume": ["/data"]}, {"volume": ["corpusvol"]}, {"volume": ["/t"]}, {"isolation": ["default"]},
    {"label": ["x=y"]}, {"label": ["com.example"]}, {"status": ["running"]}, {"ancestor": ["busybox"]},
    {"health": ["none"]}, {"is-task": ["false"]},
]


# ------------------------------------------------------------------ normalising
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_DURATION = re.compile(r"(Up|\) ) ?(Less than a second|About a minute|About an hour|\d+ \w+)")


class Normaliser:
    """Replaces what differs from run to run with stable placeholders."""

    def __init__(self, root: Path, slot: str) -> None:
        self.root = str(root)
        self.slot = slot
        self.ids: dict[str, str] = {}       # full id -> placeholder stem

    def name(self, full_id: str, stem: str) -> None:
        self.ids[full_id] = stem

    def text(self, s: str) -> str:
        if _TIME.match(s) and not s.startswith("0001-01-01"):
            return "<time>"
        if _MAC.match(s):
            return "<mac>"
        s = s.replace(self.root, "<root>")
        for full, stem in self.ids.items():
            s = s.replace(full, f"<{stem}>").replace(full[:12], f"<{stem}:12>")
        s = _HEX64.sub("<hex>", s)
        s = re.sub(r"\b10\.(21[3-7])\." + re.escape(self.slot) + r"\.", r"10.\1.<slot>.", s)
        return s

    def value(self, v: Any, key: str = "") -> Any:
        if isinstance(v, dict):
            out = {}
            for k, item in v.items():
                out[self.text(k)] = self.value(item, k)
            return out
        if isinstance(v, list):
            items = [self.value(x, key) for x in v]
            # the CLI sends -v binds and -e variables in Go's map order, a different one each time
            return sorted(items) if key in ("Binds", "Env") else items
        if isinstance(v, str):
            if key == "HostPort" and v not in ("", "18080", "18081", "8088"):
                return "<port>"
            if key == "Status":
                return _DURATION.sub(lambda m: m.group(1) + (" " if m.group(1) == "Up" else "") + "<dur>", v)
            if key == "Image" and v.startswith("sha256:"):
                return "<image>"
            return self.text(v)
        if isinstance(v, int) and not isinstance(v, bool):
            if key == "Pid" and v:
                return "<pid>"
            if key == "Created":
                return "<created>"
            if key == "PublicPort" and v not in (18080, 18081, 8088):
                return "<port>"
        return v


# ------------------------------------------------------------------ the corpus
def build(d: Any) -> dict[str, str]:
    """Create (and start some of) the corpus on daemon `d`; returns name -> id."""
    from conformance_tests import netenv

    (d.root / "bind").mkdir(exist_ok=True)
    sub = netenv.subnet(0)
    d.cli("network", "create", "--subnet", sub, NET, check=True)
    net_prefix = sub.rsplit(".", 1)[0] + "."
    ids: dict[str, str] = {}
    for stem, args, started in CLI_CASES:
        argv = [a.replace("{root}", str(d.root)).replace("{net}", net_prefix) for a in args]
        proc = d.cli("create", "--name", PREFIX + stem, *argv, check=True)
        ids[stem] = proc.stdout.strip().splitlines()[-1]
        if started:
            d.cli("start", PREFIX + stem, check=True)
    for stem, body in RAW_CASES:
        resp = d.raw("POST", f"/v1.47/containers/create?name={PREFIX}{stem}", body=json.dumps(body))
        assert resp.status == 201, (stem, resp.status, resp.body)
        ids[stem] = resp.json()["Id"]
    return ids


def render(d: Any, ids: dict[str, str], slot: str) -> dict[str, Any]:
    """The normalised inspect (at every version in VERSIONS), list and filter answers."""
    norm = Normaliser(d.root, slot)
    for stem, cid in ids.items():
        norm.name(cid, stem)
    inspect: dict[str, Any] = {}
    for stem, cid in ids.items():
        per: dict[str, Any] = {}
        for v in VERSIONS:
            resp = d.raw("GET", f"/v{v}/containers/{cid}/json")
            assert resp.status == 200, (stem, v, resp.body)
            per[v] = norm.value(json.loads(resp.body))
        inspect[stem] = per
    listed: dict[str, Any] = {}
    for v in ("1.41", "1.47"):
        resp = d.raw("GET", f"/v{v}/containers/json?all=1")
        assert resp.status == 200, resp.body
        rows = [r for r in json.loads(resp.body) if r["Names"][0].startswith("/" + PREFIX)]
        rows.sort(key=lambda r: r["Names"][0])
        listed[v] = [norm.value(r) for r in rows]
    filtered: dict[str, Any] = {}
    for flt in FILTERS:
        key = json.dumps(flt)
        resp = d.raw("GET", "/v1.47/containers/json?all=1&filters=" + quote(key))
        assert resp.status == 200, (key, resp.body)
        filtered[key] = sorted(r["Names"][0] for r in json.loads(resp.body) if r["Names"][0].startswith("/" + PREFIX))
    return {"versions": list(VERSIONS), "inspect": inspect, "list": listed, "filters": filtered}


# Where the answers differ from the recording on purpose: (corpus name, the HostConfig field,
# the recorded value, the value now, why).  Each recorded value is checked before it is replaced.
CHANGES: list[tuple[str, str, Any, Any, str]] = [
    ("rawports", "PortBindings",
     {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18081"}], "53/udp": [{"HostPort": ""}]},
     {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18081"}], "53/udp": [{"HostIp": "", "HostPort": ""}]},
     "a binding without HostIp was echoed as sent; the typed binding shows both fields, as dockerd does "
     "(checked against dockerd 20.10)"),
    # from the networking work merged meanwhile (5be3b89): links come from the link graph
    ("links", "Links", ["corpus-plain:al"], ["/corpus-plain:/corpus-links/al"],
     "HostConfig.Links in dockerd's form /child:/parent/alias"),
    ("rawempty", "Links", [], None, "HostConfig.Links from the link graph: null when there are none, as dockerd"),
]


def expected(recorded: dict[str, Any]) -> dict[str, Any]:
    """The recording with CHANGES applied."""
    doc = json.loads(json.dumps(recorded))
    for stem, key, before, after, _ in CHANGES:
        for version, answer in doc["inspect"][stem].items():
            hc = answer["HostConfig"]
            assert hc[key] == before, (stem, version, key, hc[key])
            hc[key] = after
    return doc


def without(doc: dict[str, Any], stem: str) -> dict[str, Any]:
    """The rendering `doc` as it is once the container `stem` is gone."""
    name = "/" + PREFIX + stem
    return {
        "versions": doc["versions"],
        "inspect": {k: v for k, v in doc["inspect"].items() if k != stem},
        "list": {v: [r for r in rows if r["Names"][0] != name] for v, rows in doc["list"].items()},
        "filters": {k: [n for n in names if n != name] for k, names in doc["filters"].items()},
    }


def dump(doc: Any) -> str:
    """Two levels indented, each document (an inspect answer, a list) on one line of its own."""
    def line(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))

    parts = []
    for key, section in doc.items():
        if isinstance(section, dict):
            inner = []
            for k, v in section.items():
                if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
                    rows = ",\n".join(f"   {line(vk)}: {line(vv)}" for vk, vv in v.items())
                    inner.append(f"  {line(k)}: {{\n{rows}\n  }}")
                else:
                    inner.append(f"  {line(k)}: {line(v)}")
            parts.append(f" {line(key)}: {{\n" + ",\n".join(inner) + "\n }")
        else:
            parts.append(f" {line(key)}: {line(section)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def stored_rows(d: Any, ids: dict[str, str]) -> dict[str, Any]:
    """The containers' rows as the daemon persisted them, by corpus name."""
    wanted = {cid: stem for stem, cid in ids.items()}
    out: dict[str, Any] = {}
    for db in sorted(d.data_root.rglob("*.db")):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            try:
                rows = conn.execute("SELECT id, data FROM containers").fetchall()
            except sqlite3.OperationalError:
                continue
        finally:
            conn.close()
        for cid, data in rows:
            if cid in wanted:
                out[wanted[cid]] = json.loads(data)
    return out


class PrivateDaemon:
    """A private pydockerd (whatever CONFORMANCE_DAEMON or DOCKER_HOST say) with the busybox image."""

    def __enter__(self) -> Any:
        from conformance_tests import harness
        from conformance_tests.images import build_busybox_rootfs

        saved = {k: os.environ.pop(k, None) for k in ("DOCKER_HOST", "CONFORMANCE_DAEMON")}
        try:
            self.d = harness.make_daemon()
        finally:
            for k, v in saved.items():
                if v is not None:
                    os.environ[k] = v
        try:
            tar = build_busybox_rootfs(self.d.root / "busybox-rootfs.tar")
            self.d.cli("import", "--change", 'CMD ["sh"]', "-", "busybox:latest", input=tar.read_bytes(), timeout=120,
                       check=True)
        except BaseException:
            self.d.teardown()
            raise
        return self.d

    def __exit__(self, *exc: object) -> None:
        d = self.d
        for cid in d.list_container_ids():
            d.seen_container_ids.add(cid)
            d.raw("DELETE", f"/containers/{cid}?force=1&v=1", timeout=60)
        d.teardown()


def record(rows: bool = False) -> None:
    from conformance_tests import netenv

    with PrivateDaemon() as d:
        ids = build(d)
        FIXTURE.write_text(dump(render(d, ids, str(netenv.SLOT))))
        if rows:
            saved = {"root": str(d.root), "slot": str(netenv.SLOT), "ids": ids, "rows": stored_rows(d, ids)}
            ROWS_FIXTURE.write_text(dump(saved))
    print(f"wrote {FIXTURE}" + (f" and {ROWS_FIXTURE}" if rows else ""))


def upgrade_check(rev: str) -> bool:
    """The corpus created by pydockerd at git revision `rev`, then read by this checkout's daemon on the
    same data root (a user upgrading pydockerd): its answers must be the expected ones."""
    import subprocess
    import tempfile

    from conformance_tests import harness, netenv

    here = harness.REPO_ROOT
    with tempfile.TemporaryDirectory(prefix="pydc-old-") as old:
        archive = subprocess.run(["git", "-C", str(here), "archive", rev], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
        harness.REPO_ROOT = Path(old)
        try:
            with PrivateDaemon() as d:
                ids = build(d)
                d.stop()
                harness.REPO_ROOT = here
                d.start()
                ids.pop("autorm")   # a --rm container that is not running goes when the daemon starts
                got = dump(render(d, ids, str(netenv.SLOT)))
        finally:
            harness.REPO_ROOT = here
    want = dump(without(expected(json.loads(FIXTURE.read_text())), "autorm"))
    return got == want


if __name__ == "__main__":
    started = time.monotonic()
    if "--upgrade-from" in sys.argv[1:]:
        rev = sys.argv[sys.argv.index("--upgrade-from") + 1]
        ok = upgrade_check(rev)
        print(f"containers created at {rev} read back as expected: {ok}")
        sys.exit(0 if ok else 1)
    record(rows="--rows" in sys.argv[1:])
    print(f"{time.monotonic() - started:.1f}s")
