"""engine.logs.drivers: which drivers exist, their option names, and where their logs go."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import EngineError, InvalidParameter, NotImplementedYet
from engine.logs import drivers


@pytest.mark.parametrize("driver, opts, error, message", [
    ("nosuch", {}, InvalidParameter, "logger: no log driver named 'nosuch' is registered"),
    ("local", {"bogus": "1"}, InvalidParameter, "unknown log opt 'bogus' for log driver local"),
    ("json-file", {"bogus": "1"}, InvalidParameter, "unknown log opt 'bogus' for json-file log driver"),
    ("syslog", {"bogus": "1"}, InvalidParameter, "unknown log opt 'bogus' for syslog log driver"),
    ("json-file", {"mode": "x"}, InvalidParameter, "logger: logging mode not supported: x"),
    ("json-file", {"max-buffer-size": "1m"}, InvalidParameter,
     "logger: max-buffer-size option is only supported with 'mode=non-blocking'"),
    ("gelf", {}, NotImplementedYet, "the gelf log driver is not implemented by pydockerd"),
])
def test_validate_refuses(driver: str, opts: dict[str, str], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        drivers.validate(driver, opts)
    assert str(info.value) == message


@pytest.mark.parametrize("driver, opts", [
    ("none", {"max-size": "1m", "anything": "goes"}),   # dockerd validates nothing for none
    ("local", {"max-size": "1m", "max-file": "2", "compress": "false", "tag": "x"}),
    ("json-file", {"mode": "non-blocking", "max-buffer-size": "4m", "max-size": "1m"}),
    ("journald", {"tag": "x"}),
])
def test_validate_accepts(driver: str, opts: dict[str, str]) -> None:
    drivers.validate(driver, opts)


def test_sinks(tmp_path: Path) -> None:
    assert drivers.log_file("none", tmp_path, "c") is None
    assert drivers.sink("none", {}, "").path is None
    local = drivers.log_file("local", tmp_path, "c")
    assert local == tmp_path / "local-logs" / "container.log"
    assert drivers.sink("local", {}, str(local)) == drivers.LogSink(local, 20 << 20, 5)
    assert drivers.sink("local", {"max-size": "1k", "max-file": "2"}, str(local)) == drivers.LogSink(local, 1024, 2)
    with pytest.raises(InvalidParameter, match="invalid value for max-size: x: invalid size: 'x'"):
        drivers.sink("local", {"max-size": "x"}, str(local))
    assert drivers.shown_log_path("local", str(local)) == ""
    assert drivers.shown_log_path("json-file", "/x-json.log") == "/x-json.log"


def test_reading() -> None:
    drivers.check_readable("json-file", {})
    drivers.check_readable("local", {})
    with pytest.raises(NotImplementedYet, match="^configured logging driver does not support reading$"):
        drivers.check_readable("none", {})
    with pytest.raises(EngineError):
        drivers.check_readable("journald", {})
