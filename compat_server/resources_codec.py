"""Docker's HostConfig resource fields <-> engine ``Resources``.

Create and update bodies carry the same field names; inspect shows the engine's
values (after dockerd's adjustments and any ``docker update``) over the echoed
HostConfig.
"""
from __future__ import annotations

from typing import Any

from engine.errors import go_json_kind
from engine.types import Resources

from .errors import BadRequest

# Docker field -> (Resources attribute, Go type for error messages)
FIELDS: dict[str, tuple[str, str]] = {
    "Memory": ("memory", "int64"),
    "MemorySwap": ("memory_swap", "int64"),
    "MemoryReservation": ("memory_reservation", "int64"),
    "KernelMemory": ("kernel_memory", "int64"),
    "CpuShares": ("cpu_shares", "int64"),
    "CpuPeriod": ("cpu_period", "int64"),
    "CpuQuota": ("cpu_quota", "int64"),
    "NanoCpus": ("nano_cpus", "int64"),
    "CpusetCpus": ("cpuset_cpus", "string"),
    "CpusetMems": ("cpuset_mems", "string"),
    "BlkioWeight": ("blkio_weight", "uint16"),
    "PidsLimit": ("pids_limit", "int64"),
}


def _typed(body: dict[str, Any]) -> dict[str, Any]:
    """The resource fields a body sets; their JSON types were checked against Go's (compat_server.gotypes)."""
    out: dict[str, Any] = {}
    for key, (attr, gotype) in FIELDS.items():
        if key in body and body[key] is not None:
            out[attr] = body[key] if gotype == "string" else int(body[key])
    return out


def decode(hc: dict[str, Any], where: str = "HostConfig.HostConfig") -> Resources:
    vals = _typed(hc)
    swappiness = hc.get("MemorySwappiness")
    ulimits = []
    for u in hc.get("Ulimits") or []:
        if not isinstance(u, dict) or not u.get("Name"):
            raise BadRequest("invalid ulimit: a ulimit needs a Name")
        ulimits.append((str(u["Name"]), int(u.get("Soft") or 0), int(u.get("Hard") or 0)))
    devices: dict[str, Any] = {
        attr: _device_values(hc, key, value_key, where) for key, (attr, value_key) in DEVICE_FIELDS.items()
    }
    return Resources(
        **vals,
        **devices,
        memory_swappiness=int(swappiness) if isinstance(swappiness, int) and swappiness != -1 else None,
        oom_kill_disable=bool(hc.get("OomKillDisable")),
        oom_score_adj=int(hc.get("OomScoreAdj") or 0),
        ulimits=tuple(ulimits),
    )


# Docker field -> (Resources attribute, the value's key in each entry)
DEVICE_FIELDS: dict[str, tuple[str, str]] = {
    "BlkioWeightDevice": ("blkio_weight_device", "Weight"),
    "BlkioDeviceReadBps": ("device_read_bps", "Rate"),
    "BlkioDeviceWriteBps": ("device_write_bps", "Rate"),
    "BlkioDeviceReadIOps": ("device_read_iops", "Rate"),
    "BlkioDeviceWriteIOps": ("device_write_iops", "Rate"),
}


def _device_values(hc: dict[str, Any], key: str, value_key: str, where: str) -> tuple[tuple[str, int], ...]:
    out = []
    for entry in hc.get(key) or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("Path"), str) \
                or not isinstance(entry.get(value_key, 0), int) or isinstance(entry.get(value_key, 0), bool):
            raise BadRequest(f"json: cannot unmarshal {go_json_kind(entry)} into Go struct field {where}.{key}")
        out.append((entry["Path"], int(entry.get(value_key) or 0)))
    return tuple(out)


def decode_update(body: dict[str, Any]) -> dict[str, Any]:
    """An update body -> the Resources attributes it sets (merge_update's input)."""
    return _typed(body)


def encode_into(hc: dict[str, Any], r: Resources) -> None:
    for key, (attr, _) in FIELDS.items():
        hc[key] = getattr(r, attr)
    hc["OomKillDisable"] = r.oom_kill_disable
    hc["OomScoreAdj"] = r.oom_score_adj
    hc["MemorySwappiness"] = r.memory_swappiness
    hc["Ulimits"] = [{"Name": n, "Hard": h, "Soft": s} for n, s, h in r.ulimits]
    for key, (attr, value_key) in DEVICE_FIELDS.items():
        hc[key] = [{"Path": p, value_key: v} for p, v in getattr(r, attr)]
