"""The ContentStoreAPI contract (engine/content/api.py): the on-disk store and the fake."""
from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.content.api import ContentStoreAPI, ContentWriter
from engine.content.store import ContentStore
from engine.errors import InvalidParameter, NotFound
from engine.testing.content import FakeContentStore


@pytest.fixture(params=["disk", "fake"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ContentStoreAPI]:
    if request.param == "disk":
        yield ContentStore(tmp_path / "content", tmp_path / "tmp")
    else:
        yield FakeContentStore()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_implements_the_protocol(store: ContentStoreAPI) -> None:
    assert isinstance(store, ContentStoreAPI)
    with store.writer() as w:
        assert isinstance(w, ContentWriter)


@pytest.mark.parametrize("shape", ["bytes", "file", "chunks"])
def test_ingest_and_read_back(store: ContentStoreAPI, shape: str) -> None:
    data = b"hello, blob\n" * 100
    source = {"bytes": data, "file": io.BytesIO(data), "chunks": [data[:7], data[7:]]}[shape]
    desc = store.ingest(source)  # type: ignore[arg-type]
    assert desc.digest == digest_of(data) and desc.size == len(data)
    assert store.exists(desc.digest)
    assert store.info(desc.digest) == desc
    assert store.read_bytes(desc.digest) == data
    with store.open(desc.digest) as f:
        assert f.read() == data
    assert list(store.walk()) == [desc]


def test_ingesting_the_same_bytes_twice_keeps_one_blob(store: ContentStoreAPI) -> None:
    a = store.ingest(b"same")
    b = store.ingest(b"same", expected=digest_of(b"same"))
    assert a == b and len(list(store.walk())) == 1


def test_a_digest_mismatch_stores_nothing(store: ContentStoreAPI) -> None:
    wrong = digest_of(b"other")
    with pytest.raises(InvalidParameter, match=f"unexpected commit digest {digest_of(b'data')}, expected {wrong}"):
        store.ingest(b"data", expected=wrong)
    assert not store.exists(digest_of(b"data")) and list(store.walk()) == []


def test_a_malformed_expected_digest_is_refused(store: ContentStoreAPI) -> None:
    with pytest.raises(InvalidParameter, match="invalid digest"):
        store.ingest(b"data", expected="sha256:xyz")
    assert list(store.walk()) == []


def test_writer_commit_and_abort(store: ContentStoreAPI) -> None:
    with store.writer() as w:
        w.write(b"part 1, ")
        w.write(b"part 2")
        assert w.size == 14 and w.digest == digest_of(b"part 1, part 2")
        desc = w.commit()
    assert store.read_bytes(desc.digest) == b"part 1, part 2"
    with store.writer() as w2:
        w2.write(b"never committed")
    assert not store.exists(digest_of(b"never committed"))


def test_unknown_and_malformed_digests(store: ContentStoreAPI) -> None:
    missing = digest_of(b"missing")
    assert not store.exists(missing)
    assert not store.exists("not-a-digest")
    with pytest.raises(NotFound, match=f"content digest {missing}: not found"):
        store.info(missing)
    with pytest.raises(NotFound):
        store.read_bytes(missing)
    with pytest.raises(NotFound):
        store.open(missing)
    with pytest.raises(InvalidParameter):
        store.info("sha256:short")


def test_delete(store: ContentStoreAPI) -> None:
    desc = store.ingest(b"to delete")
    assert store.delete(desc.digest) is True
    assert store.delete(desc.digest) is False
    assert not store.exists(desc.digest) and list(store.walk()) == []
