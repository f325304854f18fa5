"""Inspect and list answers stay what they were: the recorded corpus (tests/containers/inspect_corpus.py).

The first test recreates the corpus on a private pydockerd and compares the normalised answers with
the recording byte for byte (but for the explained ``CHANGES``), before and after a daemon restart
(the persisted records are read back).
The second loads rows an older pydockerd stored (recorded with the corpus) and checks that they
decode to the same HostConfig and Config inspect shows.
"""
from __future__ import annotations

import json
import os
import shutil

import pytest

from compat_server import convert
from engine.types import container_from_jsonable
from tests.containers import inspect_corpus as corpus

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not (shutil.which("docker") or os.path.exists(
    "/usr/local/bin/docker")), reason="needs root and the docker CLI (a private pydockerd)")


def _first_difference(want: str, got: str) -> str:
    for n, (a, b) in enumerate(zip(want.splitlines(), got.splitlines(), strict=False), 1):
        if a != b:
            i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
            lo, hi = max(0, i - 80), i + 120
            return f"line {n}, column {i}:\n  recorded: ...{a[lo:hi]}\n  now:      ...{b[lo:hi]}"
    return f"lengths differ: {len(want)} vs {len(got)}"


@needs_root
def test_corpus_inspect_and_list_match_the_recording() -> None:
    from conformance_tests import netenv

    want = corpus.dump(corpus.expected(json.loads(corpus.FIXTURE.read_text())))
    with corpus.PrivateDaemon() as d:
        ids = corpus.build(d)
        got = corpus.dump(corpus.render(d, ids, str(netenv.SLOT)))
        assert got == want, _first_difference(want, got)
        d.restart()
        # a --rm container that is not running is removed when the daemon starts (as dockerd does)
        ids.pop("autorm")
        want = corpus.dump(corpus.without(json.loads(want), "autorm"))
        got = corpus.dump(corpus.render(d, ids, str(netenv.SLOT)))
        assert got == want, "after a daemon restart: " + _first_difference(want, got)


def test_rows_stored_before_the_typed_config_still_load() -> None:
    saved = json.loads(corpus.ROWS_FIXTURE.read_text())
    recorded = corpus.expected(json.loads(corpus.FIXTURE.read_text()))["inspect"]
    norm = corpus.Normaliser(saved["root"], saved["slot"])
    for stem, cid in saved["ids"].items():
        norm.name(cid, stem)
    assert set(saved["rows"]) == set(saved["ids"])
    for stem, row in saved["rows"].items():
        c = container_from_jsonable(row)
        for version in corpus.VERSIONS:
            out = norm.value(convert.encode_inspect(c, {}, version, None, ()))
            want = recorded[stem][version]
            assert out["Config"] == want["Config"], (stem, version)
            # HostConfig.Links comes from the network service's link graph (netcodec), not the record
            hc = {k: v for k, v in out["HostConfig"].items() if k != "Links"}
            assert hc == {k: v for k, v in want["HostConfig"].items() if k != "Links"}, (stem, version)
