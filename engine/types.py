"""Engine domain types.

Frozen dataclasses describe what a user asked for (``ContainerConfig``,
``HostConfig``); ``ContainerState`` is the mutable lifecycle record the
container service owns.  None of these know the Docker JSON shapes: the HTTP
layer converts in both directions.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# Container statuses, as dockerd names them.
CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
RESTARTING = "restarting"
REMOVING = "removing"
EXITED = "exited"
DEAD = "dead"
STATUSES = (CREATED, RUNNING, PAUSED, RESTARTING, REMOVING, EXITED, DEAD)

ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class HealthConfig:
    test: tuple[str, ...] = ()
    interval_ns: int = 0
    timeout_ns: int = 0
    retries: int = 0
    start_period_ns: int = 0
    start_interval_ns: int = 0


@dataclass(frozen=True)
class ContainerConfig:
    """What the container runs (Docker's ``Config``), after merging the image."""

    image: str = ""
    hostname: str = ""
    domainname: str = ""
    user: str = ""
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    env: tuple[str, ...] = ()
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str | None = None
    stop_timeout: int | None = None
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    healthcheck: HealthConfig | None = None
    on_build: tuple[str, ...] = ()
    shell: tuple[str, ...] | None = None
    network_disabled: bool = False
    mac_address: str = ""
    args_escaped: bool = False


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"            # "", "no", "always", "unless-stopped", "on-failure"
    maximum_retry_count: int = 0


@dataclass(frozen=True)
class LogConfig:
    type: str = "json-file"
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Resources:
    """Cgroup limits and process rlimits (Docker's HostConfig resource fields).

    Zero/None mean "not set", as in Docker's JSON.  ``ulimits`` holds
    (name, soft, hard) with Docker's names ("nofile", "nproc", ...).
    """

    memory: int = 0
    memory_swap: int = 0                 # memory+swap; -1 = unlimited swap
    memory_reservation: int = 0
    memory_swappiness: int | None = None
    kernel_memory: int = 0               # accepted, deprecated, never applied
    oom_kill_disable: bool = False
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    nano_cpus: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None        # None = unlimited
    blkio_weight: int = 0
    oom_score_adj: int = 0
    ulimits: tuple[tuple[str, int, int], ...] = ()
    # (device path, value): --blkio-weight-device and --device-{read,write}-{bps,iops}
    blkio_weight_device: tuple[tuple[str, int], ...] = ()
    device_read_bps: tuple[tuple[str, int], ...] = ()
    device_write_bps: tuple[tuple[str, int], ...] = ()
    device_read_iops: tuple[tuple[str, int], ...] = ()
    device_write_iops: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class MountSpec:
    """One entry of HostConfig.Mounts (``--mount``), as the client sent it.

    The ``has_*_options`` flags record which option objects were present: dockerd refuses
    options that do not belong to the mount's type.
    """

    type: str = ""
    source: str = ""
    target: str = ""
    read_only: bool = False
    consistency: str = ""
    has_bind_options: bool = False
    bind_propagation: str = ""
    bind_non_recursive: bool = False
    bind_create_mountpoint: bool = False
    bind_readonly_non_recursive: bool = False
    bind_readonly_force_recursive: bool = False
    has_volume_options: bool = False
    volume_nocopy: bool = False
    volume_labels: dict[str, str] | None = None
    has_volume_driver_config: bool = False   # VolumeOptions.DriverConfig present (even empty)
    volume_driver: str = ""
    volume_driver_options: dict[str, str] | None = None
    volume_subpath: str = ""
    has_tmpfs_options: bool = False
    tmpfs_size: int = 0
    tmpfs_mode: int = 0
    tmpfs_options: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class EndpointConfig:
    """One network a container is to be connected to (NetworkingConfig.EndpointsConfig[name])."""

    aliases: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    ipv4_address: str = ""               # IPAMConfig.IPv4Address (static --ip)
    ipv6_address: str = ""
    link_local_ips: tuple[str, ...] = ()
    mac_address: str = ""
    driver_opts: dict[str, str] = field(default_factory=dict)
    gw_priority: int = 0


@dataclass(frozen=True)
class HostConfig:
    """How the container is run (Docker's ``HostConfig``), the parts the engine acts on."""

    auto_remove: bool = False
    restart_policy: RestartPolicy = RestartPolicy()
    network_mode: str = "default"
    log_config: LogConfig = LogConfig()
    privileged: bool = False
    readonly_rootfs: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    init: bool | None = None
    shm_size: int = 0
    console_size: tuple[int, int] = (0, 0)
    runtime: str = "runc"
    extra_hosts: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    # Security and namespace options (engine/oci/hostopts.py turns them into the spec).
    devices: tuple[tuple[str, str, str], ...] = ()   # (PathOnHost, PathInContainer, CgroupPermissions)
    device_cgroup_rules: tuple[str, ...] = ()
    group_add: tuple[str, ...] = ()
    ipc_mode: str = ""
    pid_mode: str = ""
    uts_mode: str = ""
    userns_mode: str = ""
    cgroupns_mode: str = "host"    # "private": a cgroup namespace of its own (dockerd's default on cgroup v2)
    cgroup_parent: str = ""        # below each hierarchy's root; "" = the daemon's --cgroup-parent (builds set it)
    sysctls: dict[str, str] = field(default_factory=dict)
    masked_paths: tuple[str, ...] | None = None      # None = dockerd's defaults
    readonly_paths: tuple[str, ...] | None = None
    resources: Resources = Resources()
    # Storage (engine/volumes): -v, --mount, --tmpfs, --volumes-from, --volume-driver
    binds: tuple[str, ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    tmpfs: dict[str, str] = field(default_factory=dict)
    volumes_from: tuple[str, ...] = ()
    volume_driver: str = ""
    # API < 1.44: read-only binds are not recursively read-only (dockerd's DefaultReadOnlyNonRecursive)
    read_only_binds_non_recursive: bool = False
    # --- networking (engine/network) --------------------------------------------
    # (container port "80/tcp", host ip, host port ("" = ephemeral)), in the request's order
    port_bindings: tuple[tuple[str, str, str], ...] = ()
    publish_all_ports: bool = False
    links: tuple[str, ...] = ()                          # "name:alias"
    # NetworkingConfig.EndpointsConfig: (network name or id, settings)
    endpoints: tuple[tuple[str, EndpointConfig], ...] = ()
    # --- as the client gave them (inspect shows them; the engine derives what it acts on) ------
    # PortBindings by container port as given ("80/tcp"): the (host ip, host port) pairs, None for
    # a null list.  ``port_bindings`` above is what gets published (nothing with the host network).
    port_map: tuple[tuple[str, tuple[tuple[str, str], ...] | None], ...] = ()
    container_id_file: str = ""          # recorded only: the CLI writes the file itself
    isolation: str = ""                  # "" or "default" (the only isolation on Linux)
    # The list fields (by attribute name) a client set to an empty list rather than leaving them
    # null: Go keeps [] and null apart, and so does inspect.  "device_requests" has no attribute:
    # an empty list is all pydockerd accepts there.
    given_empty: frozenset[str] = frozenset()


@dataclass(frozen=True)
class HealthLogEntry:
    """One healthcheck probe: times are RFC 3339 strings, output at most 4096 bytes (+ "...")."""

    start: str
    end: str
    exit_code: int
    output: str


@dataclass
class Health:
    """State.Health: "starting" / "healthy" / "unhealthy", the failing streak, the last 5 probes."""

    status: str = "starting"
    failing_streak: int = 0
    log: list[HealthLogEntry] = field(default_factory=list)


@dataclass
class ContainerState:
    status: str = CREATED
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    restarting: bool = False
    paused: bool = False
    dead: bool = False
    removal_in_progress: bool = False
    # Set when the user stopped the container (matters for restart policies).
    has_been_manually_stopped: bool = False
    has_been_started: bool = False
    # None when the container has no healthcheck (or it never ran).
    health: Health | None = None

    @property
    def running(self) -> bool:
        return self.status in (RUNNING, PAUSED, RESTARTING)


@dataclass
class Container:
    """A container record.  The container service is its only writer."""

    id: str
    name: str                       # without the leading "/"
    created: str                    # RFC 3339 with nanoseconds
    image_id: str                   # "sha256:..."
    config: ContainerConfig
    host_config: HostConfig
    path: str
    args: tuple[str, ...]
    state: ContainerState = field(default_factory=ContainerState)
    restart_count: int = 0
    log_path: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    resolv_conf_path: str = ""
    driver: str = "overlay2"
    platform: str = "linux"
    # The exec instances of the current run (inspect's ExecIDs), oldest first.
    exec_ids: list[str] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return self.id[:12]


def to_jsonable(obj: Any) -> Any:
    """Dataclass -> plain JSON-able structure (tuples become lists, sets sorted lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(x) for x in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(to_jsonable(x) for x in obj)
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    return obj


def container_from_jsonable(data: dict[str, Any]) -> Container:
    """A stored container record (any format pydockerd has written) -> Container."""
    from .containers.stored import container_from_row

    return container_from_row(data)
