"""Time formats dockerd uses: RFC 3339 with nanoseconds, trailing zeros trimmed (Go's RFC3339Nano)."""
from __future__ import annotations

import re
import time
from datetime import UTC, datetime

ZERO_TIME = "0001-01-01T00:00:00Z"


def format_ns(ns: int) -> str:
    """Unix nanoseconds -> '2026-11-22T21:00:00.123456789Z' (fraction trimmed like Go)."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def now_ns() -> int:
    return time.time_ns()


def now() -> str:
    return format_ns(time.time_ns())


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})?$"
)


def parse_ns(text: str) -> int:
    """RFC 3339 (any fraction) -> unix nanoseconds.  ZERO_TIME -> 0."""
    if text == ZERO_TIME or not text:
        return 0
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"bad time {text!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=UTC)
    secs = int(dt.timestamp())
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        secs -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    nanos = int((frac or "0").ljust(9, "0"))
    return secs * 1_000_000_000 + nanos


def parse_timestamp_arg(value: str, now_s: float | None = None) -> int:
    """dockerd's `since`/`until` argument: unix seconds[.nanos], RFC 3339, or a Go duration ago.

    Returns unix nanoseconds.
    """
    value = value.strip()
    m = re.fullmatch(r"(\d+)(?:\.(\d{1,9}))?", value)
    if m:
        return int(m.group(1)) * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))
    dur = parse_go_duration(value)
    if dur is not None:
        base = time.time() if now_s is None else now_s
        return int(base * 1e9) - dur
    try:
        return parse_ns(value)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"):
        try:
            dt = datetime.strptime(value, fmt).replace(tzinfo=UTC)
            return int(dt.timestamp()) * 1_000_000_000
        except ValueError:
            continue
    raise ValueError(value)


_DUR_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
              "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_go_duration(text: str) -> int | None:
    """'1h30m', '10s', '1.5m' -> nanoseconds; None if not a Go duration."""
    m = re.fullmatch(r"([+-]?)((?:\d+(?:\.\d*)?(?:ns|us|µs|ms|s|m|h))+)", text)
    if not m:
        return None
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", m.group(2)):
        total += float(num) * _DUR_UNITS[unit]
    return int(-total if m.group(1) == "-" else total)


def human_duration(seconds: float) -> str:
    """Go's go-units HumanDuration, as `docker ps` prints it."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"
