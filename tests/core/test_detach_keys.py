"""compat_server.hijack's detach-key handling: the scanner and the attach's detachKeys parameter."""
from __future__ import annotations

import pytest

from compat_server.detach import DEFAULT_DETACH_KEYS, DetachScanner, detach_keys
from compat_server.errors import BadRequest


def test_the_sequence_detaches_and_is_not_passed_on() -> None:
    s = DetachScanner(b"\x10\x11")
    assert s.scan(b"ab\x10") == b"ab"            # a possible start is held back
    assert not s.detached.is_set()
    assert s.scan(b"\x11rest") == b""           # the sequence: nothing of it, nothing after it
    assert s.detached.is_set()


def test_a_partial_sequence_is_let_through() -> None:
    s = DetachScanner(b"\x10x")
    assert s.scan(b"\x10") == b""
    assert s.scan(b"y") == b"\x10y"
    # like moby's escape proxy, the byte that breaks a match is not taken as a new start
    assert s.scan(b"\x10\x10x") == b"\x10\x10x"
    assert not s.detached.is_set()
    assert s.scan(b"\x10x") == b"" and s.detached.is_set()


def test_no_keys_pass_everything() -> None:
    s = DetachScanner(b"")
    assert s.scan(b"\x10\x11") == b"\x10\x11" and not s.detached.is_set()


@pytest.mark.parametrize("query, keys", [
    ({}, DEFAULT_DETACH_KEYS), ({"detachKeys": [""]}, DEFAULT_DETACH_KEYS),
    ({"detachKeys": ["ctrl-x,x"]}, b"\x18x"), ({"detachKeys": ["a"]}, b"a"),
])
def test_detach_keys_parameter(query: dict[str, list[str]], keys: bytes) -> None:
    assert detach_keys(query) == keys


def test_bad_detach_keys_are_dockerds_400() -> None:
    with pytest.raises(BadRequest, match=r"^Invalid detach keys \(bogus\) provided$"):
        detach_keys({"detachKeys": ["bogus"]})
