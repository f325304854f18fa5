"""Image list filters, inspect fields, history, rmi rules, prune and image events.

Every test loads its own images (hand-made archives with a label unique to the test) and filters on
that label, so pruning and listing never touch the session's other images.
"""
from __future__ import annotations

import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.image_archives import ImageSpec, layer_tar, sha256, write_archive
from conformance_tests.util import inspect, ok, wait_for_status

ZERO_TIME = "0001-01-01T00:00:00Z"


def _q(flt: dict[str, list[str]]) -> str:
    return urllib.parse.quote(json.dumps(flt))


class Set:
    """Three images: a (two tags), b (shares a's base layer), c (untagged); newest last."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.key = f"conf-{uuid.uuid4().hex[:10]}"
        k = self.key
        self.base = layer_tar({"base/file": b"B" * 1000, "base/id": k.encode()})
        self.a = ImageSpec([self.base, layer_tar({"a": b"a" * 10 + k.encode()})], tags=[f"{k}/a:1", f"{k}/a:2"],
                           labels={k: "a"}, created="2020-01-01T00:00:00Z")
        self.b = ImageSpec([self.base, layer_tar({"b": b"b" * 20 + k.encode()})], tags=[f"{k}/b:1"],
                           labels={k: "b", "other": "x"}, created="2020-02-01T00:00:00Z")
        self.c = ImageSpec([layer_tar({"c": b"c" * 30 + k.encode()})], labels={k: "c"},
                           created="2020-03-01T00:00:00Z")
        tar = write_archive(daemon.root / f"{k}.tar", [self.a, self.b, self.c])
        ok(daemon.cli("load", "-q", "-i", str(tar)))

    def ids(self, *extra: str, cli_args: tuple[str, ...] = ()) -> list[str]:
        args = ["images", "--no-trunc", "-q", "--filter", f"label={self.key}"]
        for f in extra:
            args += ["--filter", f]
        out: list[str] = []
        for image_id in ok(self.daemon.cli(*args, *cli_args)).split():
            if image_id not in out:  # one row per tag
                out.append(image_id)
        return out

    def api(self, flt: dict[str, list[str]], version: str = "", query: str = "") -> list[dict[str, Any]]:
        flt = {**flt, "label": [*flt.get("label", []), self.key]}
        prefix = f"/v{version}" if version else ""
        resp = self.daemon.raw("GET", f"{prefix}/images/json?filters={_q(flt)}{query}")
        assert resp.status == 200, resp.body
        return resp.json()

    def cleanup(self) -> None:
        for spec in (self.a, self.b, self.c):
            self.daemon.raw("DELETE", f"/images/{spec.image_id}?force=1")


@pytest.fixture
def images(daemon: Daemon) -> Iterator[Set]:
    s = Set(daemon)
    try:
        yield s
    finally:
        s.cleanup()


# ---------------------------------------------------------------------------------------------- list

def test_list_filters(images: Set) -> None:
    a, b, c = images.a.image_id, images.b.image_id, images.c.image_id
    k = images.key
    assert images.ids() == [c, b, a], "newest first"
    assert images.ids(f"label={k}=b") == [b]
    assert images.ids("label=other=x") == [b]
    assert images.ids("label=other=y") == []
    assert images.ids("dangling=true") == [c]
    assert images.ids("dangling=false") == [b, a]
    assert images.ids(f"before={k}/b:1") == [a]
    assert images.ids(f"since={k}/a:1") == [c, b]
    assert images.ids(f"since={a}") == [c, b]
    assert images.ids(f"reference={k}/a") == [a]
    assert images.ids(f"reference={k}/*") == [b, a]
    assert images.ids(f"reference={k}/*:1") == [b, a]
    assert images.ids(f"reference={k}/a:?") == [a]
    # a positional repository is a reference filter too
    assert images.ids(cli_args=(f"{k}/b",)) == [b]


def test_list_reference_filter_narrows_tags(images: Set) -> None:
    k = images.key
    rows = images.api({"reference": [f"{k}/a:1"]})
    assert [r["RepoTags"] for r in rows] == [[f"{k}/a:1"]]
    rows = images.api({"reference": [f"{k}/a"]})
    assert [sorted(r["RepoTags"]) for r in rows] == [[f"{k}/a:1", f"{k}/a:2"]]


def test_list_summary_fields_api_1_41(images: Set) -> None:
    rows = {r["Id"]: r for r in images.api({}, version="1.41")}
    c = rows[images.c.image_id]
    assert c["RepoTags"] == ["<none>:<none>"] and c["RepoDigests"] == ["<none>@<none>"]
    a = rows[images.a.image_id]
    assert sorted(a["RepoTags"]) == [f"{images.key}/a:1", f"{images.key}/a:2"]
    assert a["RepoDigests"] is None
    assert a["Created"] == 1577836800
    assert a["Labels"] == {images.key: "a"}
    assert a["ParentId"] == ""
    assert a["Containers"] == -1 and a["SharedSize"] == -1
    assert a["Size"] == a["VirtualSize"] == 1000 + len(images.key) + 10 + len(images.key)


@pytest.mark.reference_differs("API 1.43+: empty lists instead of <none> placeholders; 1.44 drops VirtualSize")
def test_list_summary_fields_api_1_44(images: Set) -> None:
    rows = {r["Id"]: r for r in images.api({}, version="1.44")}
    c = rows[images.c.image_id]
    assert c["RepoTags"] == [] and c["RepoDigests"] == []
    assert rows[images.a.image_id]["RepoDigests"] == []
    assert "VirtualSize" not in c


@pytest.mark.reference_differs("shared-size is API 1.42")
def test_list_shared_size(images: Set) -> None:
    rows = {r["Id"]: r for r in images.api({}, query="&shared-size=1")}
    base_size = 1000 + len(images.key)
    assert rows[images.a.image_id]["SharedSize"] == base_size
    assert rows[images.b.image_id]["SharedSize"] == base_size
    assert rows[images.c.image_id]["SharedSize"] == 0
    assert all(r["SharedSize"] == -1 for r in images.api({}))


@pytest.mark.reference_differs("the until filter of GET /images/json is API 1.44 (dockerd 25)")
def test_list_until(images: Set) -> None:
    assert images.ids("until=2020-01-15T00:00:00Z") == [images.a.image_id]
    assert images.ids("until=1581000000") == [images.b.image_id, images.a.image_id]
    assert images.ids("until=1h") == [images.c.image_id, images.b.image_id, images.a.image_id]


@pytest.mark.parametrize("flt, status, pattern", [
    ({"foo": ["a"]}, 400, r"[Ii]nvalid filter 'foo'"),
    ({"dangling": ["maybe"]}, 400, r"[Ii]nvalid filter 'dangling=\[?maybe\]?'"),
    ({"before": ["nosuch-conf-img"]}, 404, r"No such image: nosuch-conf-img:latest"),
    ({"since": ["nosuch-conf-img:v2"]}, 404, r"No such image: nosuch-conf-img:v2"),
    ({"reference": ["[x"]}, 500, r"syntax error in pattern"),
])
def test_list_bad_filters(daemon: Daemon, busybox: str, flt: dict[str, list[str]], status: int, pattern: str) -> None:
    resp = daemon.raw("GET", f"/images/json?filters={_q(flt)}")
    assert resp.status == status, resp.body
    assert re.fullmatch(pattern, resp.message), resp.message


def test_list_bad_filter_cli(daemon: Daemon) -> None:
    proc = daemon.cli("images", "--filter", "colour=red")
    assert proc.returncode == 1
    assert re.search(r"[Ii]nvalid filter 'colour'", proc.stderr), proc.stderr


# ---------------------------------------------------------------------------------------- inspect

def test_inspect_fields_after_load_and_tag(images: Set) -> None:
    k = images.key
    img = inspect(images.daemon, f"{k}/a:1", "image")
    assert img["Id"] == images.a.image_id
    assert sorted(img["RepoTags"]) == [f"{k}/a:1", f"{k}/a:2"]
    assert img["RepoDigests"] == []
    assert img["Created"] == "2020-01-01T00:00:00Z"
    assert img["RootFS"] == {"Type": "layers", "Layers": [sha256(l) for l in images.a.layers]}
    assert img["Size"] == 1000 + len(k) + 10 + len(k)
    assert img["Config"]["Labels"] == {k: "a"}
    assert img["Config"]["Env"] == ["PATH=/bin"]
    assert img["Os"] == "linux" and img["Architecture"]
    assert img["Metadata"]["LastTagTime"] == ZERO_TIME, "load does not set LastTagTime"
    before = time.time()
    ok(images.daemon.cli("tag", f"{k}/a:1", f"{k}/a:3"))
    tagged = inspect(images.daemon, f"{k}/a:3", "image")["Metadata"]["LastTagTime"]
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", tagged)
    assert m, tagged
    assert int(m.group(1)) >= time.gmtime(before).tm_year


# ---------------------------------------------------------------------------------------- history

def test_history(daemon: Daemon) -> None:
    k = f"conf-hist-{uuid.uuid4().hex[:8]}"
    spec = ImageSpec(
        [layer_tar({"l0": b"0" * 100 + k.encode()}), layer_tar({"l1": b"1" * 7})], tags=[f"{k}:v"],
        history=[
            {"created": "2020-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in /",
             "comment": "base layer"},
            {"created": "2020-01-02T00:00:00Z", "created_by": "/bin/sh -c #(nop)  ENV X=y", "empty_layer": True},
            {"created": "2020-01-03T00:00:00Z", "created_by": "/bin/sh -c echo hi > /l1"},
        ])
    ok(daemon.cli("load", "-q", "-i", str(write_archive(daemon.root / f"{k}.tar", [spec]))))
    try:
        resp = daemon.raw("GET", f"/images/{k}:v/history")
        assert resp.status == 200
        assert resp.json() == [
            {"Comment": "", "Created": 1578009600, "CreatedBy": "/bin/sh -c echo hi > /l1",
             "Id": spec.image_id, "Size": 7, "Tags": [f"{k}:v"]},
            {"Comment": "", "Created": 1577923200, "CreatedBy": "/bin/sh -c #(nop)  ENV X=y",
             "Id": "<missing>", "Size": 0, "Tags": None},
            {"Comment": "base layer", "Created": 1577836800, "CreatedBy": "/bin/sh -c #(nop) ADD file:abc in /",
             "Id": "<missing>", "Size": 100 + len(k), "Tags": None},
        ]
        rows = ok(daemon.cli("history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Comment}}",
                             f"{k}:v")).splitlines()
        assert rows == [f"{spec.image_id}|/bin/sh -c echo hi > /l1|",
                        "<missing>|/bin/sh -c #(nop)  ENV X=y|",
                        "<missing>|/bin/sh -c #(nop) ADD file:abc in /|base layer"]
        assert daemon.raw("GET", "/images/nosuch-conf-img/history").status == 404
    finally:
        daemon.raw("DELETE", f"/images/{spec.image_id}?force=1")


# -------------------------------------------------------------------------------------------- rmi

def test_rmi_by_id_with_tags_in_several_repositories(daemon: Daemon, images: Set) -> None:
    a = images.a.image_id
    ok(daemon.cli("tag", a, f"{images.key}/other:1"))
    resp = daemon.raw("DELETE", f"/images/{a[7:19]}")
    assert resp.status == 409
    assert resp.message == (f"conflict: unable to delete {a[7:19]} (must be forced) - "
                            "image is referenced in multiple repositories")
    resp = daemon.raw("DELETE", f"/images/{a[7:19]}?force=1")
    assert resp.status == 200, resp.body
    items = resp.json()
    k = images.key
    assert sorted(i["Untagged"] for i in items if "Untagged" in i) == [f"{k}/a:1", f"{k}/a:2", f"{k}/other:1"]
    deleted = [i["Deleted"] for i in items if "Deleted" in i]
    # the image, then its own top layer; the base layer stays: b uses it
    assert deleted[0] == a and len(deleted) == 2
    assert inspect(daemon, images.b.image_id, "image")["RootFS"]["Layers"][0] == sha256(images.base)


def test_rmi_by_id_with_one_tag_untags_and_deletes(daemon: Daemon, images: Set) -> None:
    a = images.a.image_id
    k = images.key
    # two tags, even in one repository, need force
    resp = daemon.raw("DELETE", f"/images/{a[7:19]}")
    assert resp.status == 409
    assert resp.message == (f"conflict: unable to delete {a[7:19]} (must be forced) - "
                            "image is referenced in multiple repositories")
    ok(daemon.cli("rmi", f"{k}/a:2"))
    out = ok(daemon.cli("rmi", a[7:19])).splitlines()
    assert out[:2] == [f"Untagged: {k}/a:1", f"Deleted: {a}"]
    assert len(out) == 3, out


def test_rmi_untag_one_of_two_tags(daemon: Daemon, images: Set) -> None:
    resp = daemon.raw("DELETE", f"/images/{images.key}/a:2")
    assert resp.status == 200
    assert resp.json() == [{"Untagged": f"{images.key}/a:2"}]
    assert inspect(daemon, images.a.image_id, "image")["RepoTags"] == [f"{images.key}/a:1"]


def test_rmi_image_of_running_container(daemon: Daemon, busybox: str, name: str) -> None:
    k = f"conf-run-{uuid.uuid4().hex[:8]}"
    bb_layer = (daemon.root / "busybox-rootfs.tar").read_bytes()
    spec = ImageSpec([bb_layer, layer_tar({"marker": k.encode()})], tags=[f"{k}:1"], cmd=["sh"])
    ok(daemon.cli("load", "-q", "-i", str(write_archive(daemon.root / f"{k}.tar", [spec]))))
    image_id = spec.image_id
    try:
        ok(daemon.cli("run", "-d", "--name", name, f"{k}:1", "sleep", "60"))
        wait_for_status(daemon, name, "running")
        cid = inspect(daemon, name)["Id"]
        resp = daemon.raw("DELETE", f"/images/{image_id}?force=1")
        assert resp.status == 409
        assert resp.message == (f"conflict: unable to delete {image_id[7:19]} (cannot be forced) - "
                                f"image is being used by running container {cid[:12]}")
        proc = daemon.cli("rmi", f"{k}:1")
        assert proc.returncode == 1
        assert (f'conflict: unable to remove repository reference "{k}:1" (must force) - container '
                f"{cid[:12]} is using its referenced image {image_id[7:19]}") in proc.stderr
        # forced by name: the tag goes, the image stays for its running container
        assert ok(daemon.cli("rmi", "-f", f"{k}:1")).strip() == f"Untagged: {k}:1"
        assert inspect(daemon, image_id, "image")["RepoTags"] == []
        ok(daemon.cli("rm", "-f", name))
        out = ok(daemon.cli("rmi", image_id)).splitlines()
        assert out[0] == f"Deleted: {image_id}"
        assert len(out) == 2, "only the top layer goes: busybox shares the base"
        assert ok(daemon.cli("run", "--rm", "busybox", "cat", "/etc/group")).startswith("root:x:0:")
    finally:
        daemon.cli("rm", "-f", name)
        daemon.raw("DELETE", f"/images/{image_id}?force=1")


def test_rmi_force_with_stopped_container(daemon: Daemon, images: Set, name: str) -> None:
    c = images.c.image_id
    ok(daemon.cli("create", "--name", name, c, "/nothing"))
    resp = daemon.raw("DELETE", f"/images/{c}")
    assert resp.status == 409
    cid = inspect(daemon, name)["Id"]
    assert resp.message == (f"conflict: unable to delete {c[7:19]} (must be forced) - "
                            f"image is being used by stopped container {cid[:12]}")
    resp = daemon.raw("DELETE", f"/images/{c}?force=1")
    assert resp.status == 200
    assert resp.json() == [{"Deleted": c}]
    assert inspect(daemon, name)["Image"] == c
    assert daemon.raw("GET", f"/images/{c}/json").status == 404


@pytest.mark.parametrize("ref, status, pattern", [
    ("UPPER:case", 400, r"invalid reference format: repository name (\(\S+\) )?must be lowercase"),
    ("a:b:c", 400, r"invalid reference format"),
    ("nosuch-conf-img:v1", 404, r"No such image: nosuch-conf-img:v1"),
    ("sha256:" + "0" * 64, 404, r"No such image: sha256:0{64}"),
])
def test_rmi_bad_references(daemon: Daemon, ref: str, status: int, pattern: str) -> None:
    resp = daemon.raw("DELETE", f"/images/{ref}")
    # 20.10 reports reference syntax errors as 500, newer Docker 400
    assert resp.status == status or (daemon.reference and status == 400 and resp.status == 500), resp.body
    assert re.fullmatch(pattern, resp.message), resp.message


# ------------------------------------------------------------------------------------------- prune

def _prune(daemon: Daemon, flt: dict[str, list[str]]) -> tuple[int, Any]:
    resp = daemon.raw("POST", f"/images/prune?filters={_q(flt)}")
    return resp.status, (resp.json() if resp.status == 200 else resp.message)


def test_prune_dangling_only_by_default(daemon: Daemon, images: Set) -> None:
    status, body = _prune(daemon, {"label": [images.key]})
    assert status == 200, body
    c = images.c.image_id
    assert body["ImagesDeleted"][0] == {"Deleted": c}
    assert [i for i in body["ImagesDeleted"] if "Untagged" in i] == []
    assert body["SpaceReclaimed"] == 30 + len(images.key)
    assert images.ids() == [images.b.image_id, images.a.image_id]
    status, body = _prune(daemon, {"label": [images.key]})
    assert body == {"ImagesDeleted": None, "SpaceReclaimed": 0}


def test_prune_all_skips_images_in_use(daemon: Daemon, images: Set, name: str) -> None:
    ok(daemon.cli("create", "--name", name, images.b.image_id, "/nothing"))
    out = ok(daemon.cli("image", "prune", "-a", "-f", "--filter", f"label={images.key}"))
    k = images.key
    for tag in (f"{k}/a:1", f"{k}/a:2"):
        assert f"untagged: {tag}" in out
    assert f"deleted: {images.a.image_id}" in out and f"deleted: {images.c.image_id}" in out
    assert images.b.image_id not in out
    assert re.search(r"Total reclaimed space: \d", out)
    assert images.ids() == [images.b.image_id]


def test_prune_label_not_and_until(daemon: Daemon, images: Set) -> None:
    k = images.key
    status, body = _prune(daemon, {"label": [k], "label!": ["other=x"], "dangling": ["false"],
                                   "until": ["2020-02-15T00:00:00Z"]})
    assert status == 200, body
    deleted = {i["Deleted"] for i in body["ImagesDeleted"] if "Deleted" in i}
    assert images.a.image_id in deleted
    assert images.b.image_id not in deleted and images.c.image_id not in deleted
    assert images.ids() == [images.c.image_id, images.b.image_id]


@pytest.mark.parametrize("flt, status, pattern", [
    ({"foo": ["a"]}, 400, r"[Ii]nvalid filter 'foo'"),
    ({"reference": ["x"]}, 400, r"[Ii]nvalid filter 'reference'"),
    ({"dangling": ["maybe"]}, 400, r"[Ii]nvalid filter 'dangling=\[?maybe\]?'"),
    ({"until": ["yesterday"]}, 500, r'failed to parse value as time or duration: "yesterday"'),
])
def test_prune_bad_filters(daemon: Daemon, busybox: str, flt: dict[str, list[str]], status: int,
                           pattern: str) -> None:
    got, message = _prune(daemon, flt)
    assert got == status and re.fullmatch(pattern, message), (got, message)
    assert inspect(daemon, busybox, "image")["Id"] == busybox


# ------------------------------------------------------------------------------------------ events

def _events(daemon: Daemon, since: float) -> list[dict[str, Any]]:
    out = ok(daemon.cli("events", "--since", f"{since:.3f}", "--until", f"{time.time() + 0.5:.3f}",
                        "--filter", "type=image", "--format", "{{json .}}"))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_image_events(daemon: Daemon, images: Set) -> None:
    k = images.key
    a = images.a.image_id
    since = time.time() - 0.001
    ok(daemon.cli("tag", f"{k}/a:1", f"{k}/a:x"))
    ok(daemon.cli("save", "-o", str(daemon.root / f"{k}-ev.tar"), f"{k}/a:1"))
    ok(daemon.cli("rmi", f"{k}/a:x"))
    ok(daemon.cli("rmi", "-f", a))
    ok(daemon.cli("load", "-q", "-i", str(daemon.root / f"{k}-ev.tar")))
    _prune(daemon, {"label": [k + "-nothing"]})
    got = [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in _events(daemon, since)
           if e["Actor"]["ID"] in (a, "")]
    # (the fixture's own load may fall inside the window: start at our first action)
    got = got[[g[0] for g in got].index("tag"):]
    labels = {k: "a"}
    assert got == [
        ("tag", a, {**labels, "name": f"{k}/a:x"}),
        ("save", a, {**labels, "name": a}),
        ("untag", a, {**labels, "name": a}),
        ("untag", a, {**labels, "name": a}),
        ("untag", a, {**labels, "name": a}),
        ("delete", a, {"name": a}),
        ("load", a, {**labels, "name": a}),
        ("prune", "", {"reclaimed": "0"}),
    ]


def test_history_edge_cases(daemon: Daemon) -> None:
    k = f"conf-hist2-{uuid.uuid4().hex[:8]}"
    undated = ImageSpec([layer_tar({"u": k.encode()})], tags=[f"{k}:undated"],
                        history=[{"created_by": "no date"}])
    broken = ImageSpec([layer_tar({"b": k.encode()})], tags=[f"{k}:broken"],
                       history=[{"created_by": "one"}, {"created_by": "two"}])
    proc = daemon.cli("load", "-i", str(write_archive(daemon.root / f"{k}.tar", [undated, broken])))
    try:
        # images are loaded one by one: the first is in, the second refused
        assert proc.returncode == 1
        assert proc.stdout.strip() == f"Loaded image: {k}:undated"
        assert "too many non-empty layers in History section" in proc.stderr
        assert daemon.raw("GET", f"/images/{k}:broken/json").status == 404
        resp = daemon.raw("GET", f"/images/{k}:undated/history")
        assert resp.status == 200
        assert [(h["Created"], h["CreatedBy"], h["Id"]) for h in resp.json()] == [
            (-62135596800, "no date", undated.image_id)]
    finally:
        for spec in (undated, broken):
            daemon.raw("DELETE", f"/images/{spec.image_id}?force=1")


INSPECT_KEYS_1_41 = {"Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container", "ContainerConfig",
                     "DockerVersion", "Author", "Config", "Architecture", "Os", "Size", "VirtualSize", "GraphDriver",
                     "RootFS", "Metadata"}


def test_inspect_keys_api_1_41(images: Set) -> None:
    resp = images.daemon.raw("GET", f"/v1.41/images/{images.a.image_id}/json")
    assert resp.status == 200
    assert set(resp.json()) == INSPECT_KEYS_1_41
    assert set(resp.json()["GraphDriver"]) == {"Data", "Name"}


@pytest.mark.reference_differs("API 1.44 drops VirtualSize, 1.45 Container and ContainerConfig")
def test_inspect_keys_api_1_45(images: Set) -> None:
    resp = images.daemon.raw("GET", f"/v1.45/images/{images.a.image_id}/json")
    assert resp.status == 200
    keys = set(resp.json())
    assert not keys & {"VirtualSize", "Container", "ContainerConfig"}
    assert INSPECT_KEYS_1_41 - {"VirtualSize", "Container", "ContainerConfig"} <= keys


def test_images_digests_column(images: Set) -> None:
    rows = ok(images.daemon.cli("images", "--digests", "--filter", f"reference={images.key}/b",
                                "--format", "{{.Repository}}|{{.Tag}}|{{.Digest}}")).splitlines()
    assert rows == [f"{images.key}/b|1|<none>"]


def test_import_events(daemon: Daemon) -> None:
    k = f"conf-imp-{uuid.uuid4().hex[:8]}"
    tar = layer_tar({"i": k.encode()})
    since = time.time() - 0.001
    image_id = ok(daemon.cli("import", "--change", f"LABEL {k}=yes", "-", f"{k}:1", input=tar)).strip()
    try:
        got = [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in _events(daemon, since)
               if e["Actor"]["ID"] == image_id]
        assert got == [("tag", image_id, {k: "yes", "name": f"{k}:1"}),
                       ("import", image_id, {k: "yes", "name": image_id})]
    finally:
        daemon.raw("DELETE", f"/images/{image_id}?force=1")


def _chain(daemon: Daemon) -> tuple[str, ImageSpec, ImageSpec]:
    k = f"conf-chain-{uuid.uuid4().hex[:8]}"
    base = layer_tar({"p": k.encode()})
    hist = [{"created": "2020-01-01T00:00:00Z", "created_by": "parent step"}]
    parent = ImageSpec([base], history=hist, labels={k: "p"})
    child = ImageSpec([base, layer_tar({"c": k.encode()})], tags=[f"{k}:child"], labels={k: "c"},
                      history=hist + [{"created": "2020-01-02T00:00:00Z", "created_by": "child step"}],
                      parent=parent.image_id)
    ok(daemon.cli("load", "-q", "-i", str(write_archive(daemon.root / f"{k}.tar", [parent, child]))))
    return k, parent, child


def test_parent_chain_from_an_archive(daemon: Daemon) -> None:
    k, parent, child = _chain(daemon)
    try:
        assert inspect(daemon, f"{k}:child", "image")["Parent"] == parent.image_id
        resp = daemon.raw("GET", f"/images/{k}:child/history")
        assert [(h["Id"], h["Tags"]) for h in resp.json()] == [(child.image_id, [f"{k}:child"]),
                                                                (parent.image_id, None)]
        # the untagged parent is an intermediate image: listed with -a only, and not dangling
        assert ok(daemon.cli("images", "-q", "--no-trunc", "--filter", f"label={k}")).split() == [child.image_id]
        assert sorted(ok(daemon.cli("images", "-a", "-q", "--no-trunc", "--filter", f"label={k}")).split()) == \
            sorted([child.image_id, parent.image_id])
        resp = daemon.raw("DELETE", f"/images/{parent.image_id}?force=1")
        assert resp.status == 409
        assert resp.message == (f"conflict: unable to delete {parent.image_id[7:19]} (cannot be forced) - "
                                "image has dependent child images")
        # --no-prune keeps the untagged parent
        out = ok(daemon.cli("rmi", "--no-prune", f"{k}:child")).splitlines()
        assert out[:2] == [f"Untagged: {k}:child", f"Deleted: {child.image_id}"]
        assert inspect(daemon, parent.image_id, "image")["Id"] == parent.image_id
    finally:
        for spec in (child, parent):
            daemon.raw("DELETE", f"/images/{spec.image_id}?force=1")


def test_rmi_prunes_untagged_parents(daemon: Daemon) -> None:
    k, parent, child = _chain(daemon)
    try:
        out = ok(daemon.cli("rmi", f"{k}:child")).splitlines()
        deleted = [line for line in out if line.startswith("Deleted: ")]
        assert deleted[0] == f"Deleted: {child.image_id}"
        assert f"Deleted: {parent.image_id}" in deleted
        assert daemon.raw("GET", f"/images/{parent.image_id}/json").status == 404
    finally:
        for spec in (child, parent):
            daemon.raw("DELETE", f"/images/{spec.image_id}?force=1")


def test_prune_docker_py(client, images: Set) -> None:
    result = client.images.prune(filters={"dangling": False, "label": [f"{images.key}=b"]})
    deleted = [i["Deleted"] for i in result["ImagesDeleted"] if "Deleted" in i]
    assert deleted[0] == images.b.image_id
    assert result["SpaceReclaimed"] == 20 + len(images.key)  # b's own layer; the base stays for a
    assert {i.id for i in client.images.list(filters={"label": images.key})} == {images.a.image_id,
                                                                                  images.c.image_id}
