"""Log drivers: which ones exist, their options, and what a container's logs then are.

pydockerd writes logs itself (the shim writes them as the container runs), in the
json-file format.  The drivers it serves:

* ``json-file``: dockerd's format at ``<container>/<id>-json.log`` (shown as LogPath);
* ``local``: the same writer, with dockerd's local-driver options and defaults
  (20 MiB x 5 files), under ``<container>/local-logs/container.log``; dockerd keeps
  that file private (LogPath is empty) and so do we: only ``docker logs`` reads it;
* ``none``: nothing is kept; ``docker logs`` answers dockerd's 501.

``journald`` and ``syslog`` are dockerd drivers pydockerd cannot feed: a container
using them fails its start as dockerd's does on a host without the journal or a
syslog socket, and with a plain "not implemented" where the host has them.  The
other drivers dockerd ships are refused at create as not implemented; any other
name is dockerd's "no log driver named ..." error.

Texts checked against dockerd 20.10 and moby's logger/factory.go.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import EngineError, InvalidParameter, NotImplementedYet
from . import options

START_ERROR_PREFIX = options.START_ERROR_PREFIX
NO_READING = "configured logging driver does not support reading"

# options every driver accepts (dockerd strips them before the driver's own validator runs)
_BUILT_IN = ("mode", "max-buffer-size")
_ATTR_OPTS = ("labels", "labels-regex", "env", "env-regex", "tag")

_OPTS: dict[str, tuple[str, ...]] = {
    "json-file": options.KNOWN_OPTS,
    "local": ("max-file", "max-size", "compress", *_ATTR_OPTS),
    "journald": _ATTR_OPTS,
    "syslog": ("syslog-address", "syslog-facility", "syslog-tls-ca-cert", "syslog-tls-cert", "syslog-tls-key",
               "syslog-tls-skip-verify", "syslog-format", *_ATTR_OPTS),
}
# dockerd's words differ per driver
_UNKNOWN_OPT = {
    "json-file": "unknown log opt '{}' for json-file log driver",
    "local": "unknown log opt '{}' for log driver local",
    "journald": "unknown log opt '{}' for journald log driver",
    "syslog": "unknown log opt '{}' for syslog log driver",
}
# drivers dockerd has that pydockerd does not
_ELSEWHERE = ("fluentd", "gelf", "awslogs", "splunk", "gcplogs", "logentries", "etwlogs")

# the drivers /info lists: the ones whose logs this daemon writes (dockerd's factory never lists "none")
LISTED = ("json-file", "local")

_LOCAL_DEFAULT_SIZE = 20 << 20
_LOCAL_DEFAULT_FILES = 5
_JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
_SYSLOG_SOCKETS = (Path("/dev/log"), Path("/var/run/syslog"), Path("/var/run/log"))


@dataclass(frozen=True)
class LogSink:
    """Where the shim writes a container's output, and how it rotates (path None: nowhere)."""

    path: Path | None
    max_size: int | None = None
    max_files: int = 1


def validate(driver: str, opts: Mapping[str, str]) -> None:
    """At create: the driver exists and the option names fit it (dockerd's ValidateLogOpts)."""
    if driver == "none":
        return
    mode = opts.get("mode", "")
    if mode not in ("", "blocking", "non-blocking"):
        raise InvalidParameter(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in opts:
        if mode != "non-blocking":
            raise InvalidParameter("logger: max-buffer-size option is only supported with 'mode=non-blocking'")
        try:
            options.parse_size(opts["max-buffer-size"])
        except ValueError as err:
            raise InvalidParameter(f"error parsing option max-buffer-size: {err}") from None
    if driver in _ELSEWHERE:
        raise NotImplementedYet(f"the {driver} log driver is not implemented by pydockerd")
    if driver not in _OPTS:
        raise InvalidParameter(f"logger: no log driver named '{driver}' is registered")
    for key in opts:
        if key not in _BUILT_IN and key not in _OPTS[driver]:
            raise InvalidParameter(_UNKNOWN_OPT[driver].format(key))


def log_file(driver: str, container_dir: Path, container_id: str) -> Path | None:
    """The file a container's logs go to (None: the driver keeps none that we can read)."""
    if driver == "json-file":
        return container_dir / f"{container_id}-json.log"
    if driver == "local":
        return container_dir / "local-logs" / "container.log"
    return None


def shown_log_path(driver: str, path: str) -> str:
    """LogPath in inspect: dockerd shows the json-file's path only."""
    return path if driver == "json-file" else ""


def check_readable(driver: str, opts: Mapping[str, str]) -> None:
    """``docker logs``: dockerd first starts the driver (its start failure is the answer), then asks it to read."""
    if driver in ("json-file", "local"):
        return
    if driver in ("journald", "syslog"):
        try:
            sink(driver, opts, "")
        except NotImplementedYet:
            pass
        except EngineError as err:
            raise EngineError(err.message.removeprefix(START_ERROR_PREFIX)) from None
    raise NotImplementedYet(NO_READING)


def sink(driver: str, opts: Mapping[str, str], path: str) -> LogSink:
    """At start: the option values (dockerd's order and words), or the driver's start failure."""
    if driver == "json-file":
        o = options.parse_log_opts(opts)
        return LogSink(Path(path), o.max_size, o.max_files)
    if driver == "local":
        return LogSink(Path(path), *_local_limits(opts))
    if driver == "none":
        return LogSink(None)
    if driver == "journald" and not _is_socket(_JOURNAL_SOCKET):
        raise EngineError(START_ERROR_PREFIX + "journald is not enabled on this host")
    if driver == "syslog" and "syslog-address" not in opts and not any(_is_socket(p) for p in _SYSLOG_SOCKETS):
        raise EngineError(START_ERROR_PREFIX + "Unix syslog delivery error")
    raise NotImplementedYet(START_ERROR_PREFIX + f"the {driver} log driver is not implemented by pydockerd")


def _local_limits(opts: Mapping[str, str]) -> tuple[int, int]:
    """The local driver's max-size and max-file, with its defaults and its words."""
    size, files = _LOCAL_DEFAULT_SIZE, _LOCAL_DEFAULT_FILES
    if "max-size" in opts:
        try:
            size = options.parse_size(opts["max-size"])
        except ValueError as err:
            raise InvalidParameter(
                f"{START_ERROR_PREFIX}invalid value for max-size: {opts['max-size']}: {err}") from None
    if "max-file" in opts:
        raw = opts["max-file"]
        if not raw.lstrip("+-").isdigit():
            raise InvalidParameter(f'{START_ERROR_PREFIX}invalid value for max-file: {raw}: '
                                   f'strconv.Atoi: parsing "{raw}": invalid syntax')
        files = int(raw)
    if size <= 0 or files < 1:
        # dockerd: a zero or negative limit means "no rotation"
        return size if size > 0 else _LOCAL_DEFAULT_SIZE, max(files, 1)
    return size, files


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False
