"""Engine configuration: one Config builds one Engine; no global state."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Config:
    data_root: Path = Path("/var/lib/pydockerd")
    exec_root: Path = Path("/run/pydockerd")
    bridge: str = "docker0"          # -b/--bridge ("none" disables the default bridge)
    bip: str | None = None           # --bip
    # --- networking (engine/network) ---------------------------------------------
    iptables: bool = True            # --iptables
    # --live-restore: containers keep running when the daemon stops (our default; dockerd's is false,
    # where a daemon shutdown stops them first)
    live_restore: bool = True
    ip_masq: bool = True             # --ip-masq
    icc: bool = True                 # --icc
    userland_proxy: bool = True      # --userland-proxy
    fixed_cidr: str = ""             # --fixed-cidr
    ipv6: bool = False               # --ipv6: IPv6 on the default bridge
    fixed_cidr_v6: str = ""          # --fixed-cidr-v6: its IPv6 subnet
    default_ip: str = ""             # --ip: host address of published ports (default 0.0.0.0)
    mtu: int = 0                     # --mtu
    dns: tuple[str, ...] = ()        # --dns / --dns-search / --dns-opt: defaults for containers
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    # --default-address-pool, as engine.network.ipam.AddressPool values (empty = dockerd's pools)
    default_address_pools: tuple[object, ...] = ()
    storage_driver: str = "overlay2"  # "overlay2" or "vfs" (copy fallback)
    debug: bool = False
    log_level: str = "info"
    hosts: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    registry_mirrors: tuple[str, ...] = ()
    # CA certificates and client keys per registry: <dir>/<host:port>/{ca.crt,client.cert,client.key}
    registry_certs_dir: Path = Path("/etc/pydockerd/certs.d")
    default_runtime: str = "runc"
    cgroup_parent: str = "pydockerd"
    # Python interpreter used to start shims (a fresh interpreter, never a fork).
    python: str = field(default_factory=lambda: os.environ.get("PYDOCKERD_PYTHON", "") or __import__("sys").executable)

    # Paths derived from the roots -------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.data_root / "pydockerd.db"

    @property
    def content_root(self) -> Path:
        return self.data_root / "content"

    @property
    def snapshots_root(self) -> Path:
        return self.data_root / self.storage_driver

    @property
    def containers_root(self) -> Path:
        """Persistent per-container files (logs, hosts, hostname, resolv.conf)."""
        return self.data_root / "containers"

    @property
    def tmp_root(self) -> Path:
        """Scratch space on the data root's filesystem (for atomic renames)."""
        return self.data_root / "tmp"

    @property
    def bundles_root(self) -> Path:
        """Per-container runtime state (OCI bundle, shim socket, exit status)."""
        return self.exec_root / "containers"
