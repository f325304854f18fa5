"""Build an OCI runtime-spec config.json (as a dict) from a container's settings.

Like moby's ``oci_linux.go``, the spec is a default (``defaults.default_spec``:
what dockerd writes for a container on a cgroup v1 host, checked field by field
against a reference daemon's config.json) changed by small options applied in
order (``options.with_*``: each a ``SpecOption``, a function that edits the spec).
``build_spec(SpecInput)`` is the typed front the container service uses: it
turns the input into options (``options_for``), then applies the input's
``extra_options`` (e.g. from start contributors) last.  Pure: nothing here
touches the host.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.oci.caps import DEFAULT_CAPABILITIES, every_capability, tweak

# the defaults and the options, importable from here as before
from engine.oci.defaults import DEFAULT_MASKED_PATHS as DEFAULT_MASKED_PATHS
from engine.oci.defaults import DEFAULT_NAMESPACES as DEFAULT_NAMESPACES
from engine.oci.defaults import DEFAULT_NET_SYSCTLS as DEFAULT_NET_SYSCTLS
from engine.oci.defaults import DEFAULT_READONLY_PATHS as DEFAULT_READONLY_PATHS
from engine.oci.defaults import DEFAULT_SHM_SIZE as DEFAULT_SHM_SIZE
from engine.oci.defaults import OCI_VERSION as OCI_VERSION
from engine.oci.defaults import Mount as Mount
from engine.oci.defaults import Spec as Spec
from engine.oci.defaults import SpecOption as SpecOption
from engine.oci.defaults import default_spec as default_spec
from engine.oci.defaults import standard_mounts as standard_mounts
from engine.oci.options import apply as apply
from engine.oci.options import with_capabilities as with_capabilities
from engine.oci.options import with_cgroups_path as with_cgroups_path
from engine.oci.options import with_device_rules as with_device_rules
from engine.oci.options import with_devices as with_devices
from engine.oci.options import with_hostname as with_hostname
from engine.oci.options import with_init as with_init
from engine.oci.options import with_mounts as with_mounts
from engine.oci.options import with_namespaces as with_namespaces
from engine.oci.options import with_no_new_privileges as with_no_new_privileges
from engine.oci.options import with_paths as with_paths
from engine.oci.options import with_privileged as with_privileged
from engine.oci.options import with_process as with_process
from engine.oci.options import with_readonly_rootfs as with_readonly_rootfs
from engine.oci.options import with_resources as with_resources
from engine.oci.options import with_rlimits as with_rlimits
from engine.oci.options import with_seccomp as with_seccomp
from engine.oci.options import with_sysctls as with_sysctls
from engine.oci.options import with_user as with_user
from engine.oci.seccomp import default_profile


@dataclass(frozen=True)
class SpecInput:
    container_id: str
    rootfs: str                                   # absolute path of the mounted rootfs
    args: list[str]
    hostname: str = ""
    domainname: str = ""
    readonly_rootfs: bool = False
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    tty: bool = False
    extra_mounts: list[Mount] = field(default_factory=list)   # appended after the standard mounts
    cgroups_path: str = ""
    capabilities: tuple[str, ...] | None = None   # None = dockerd's default set
    cap_add: tuple[str, ...] = ()                 # applied on top ("ALL" allowed)
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    no_new_privileges: bool = False
    masked_paths: tuple[str, ...] | None = None    # None = dockerd's defaults ([] when privileged)
    readonly_paths: tuple[str, ...] | None = None
    rlimits: tuple[tuple[str, int, int], ...] = ()  # ("RLIMIT_NOFILE", soft, hard) or ("nofile", ...)
    namespaces: tuple[tuple[str, str | None], ...] = DEFAULT_NAMESPACES
    sysctls: dict[str, str] | None = None         # None = dockerd's defaults for a private netns
    shm_size: int | None = None                   # bytes; None = 64 MiB
    resources: dict[str, Any] | None = None       # OCI linux.resources (memory/pids/cpu...); devices added
    devices: tuple[dict[str, Any], ...] = ()      # OCI linux.devices (+ "access"), see engine.containers.devices
    oom_score_adj: int = 0
    seccomp: bool = True                          # False = --security-opt seccomp=unconfined
    seccomp_profile: dict[str, Any] | None = None  # a custom OCI linux.seccomp; None = our default
    # security and namespace options (engine/oci/hostopts.py)
    ns_overrides: tuple[tuple[str, str], ...] = ()  # (type, path to join); path "" = share the host's
    shm_source: str | None = None                 # None = a private tmpfs; "" = no /dev/shm; else bind it
    extra_sysctls: dict[str, str] = field(default_factory=dict)  # on top of the defaults
    device_rules: tuple[dict[str, Any], ...] = ()  # extra cgroup device rules (--device-cgroup-rule)
    extra_gids: tuple[int, ...] = ()              # --group-add
    init_binary: str = ""                         # --init: host path of docker-init, mounted read-only
    writable_cgroups: bool | None = None          # --security-opt writable-cgroups=...; None = privileged
    extra_options: tuple[SpecOption, ...] = ()    # applied after everything above, in order


def _caps(inp: SpecInput) -> list[str]:
    if inp.privileged:
        return every_capability()
    base = list(inp.capabilities) if inp.capabilities is not None else list(DEFAULT_CAPABILITIES)
    return tweak(base, inp.cap_add, inp.cap_drop)


# ------------------------------------------------------------------ the typed front
def options_for(inp: SpecInput) -> list[SpecOption]:
    """The options that make ``inp``'s spec out of ``default_spec``, in the order they apply."""
    caps = _caps(inp)
    opts: list[SpecOption] = [
        with_process(inp.args, inp.env, inp.cwd, tty=inp.tty, oom_score_adj=inp.oom_score_adj),
        with_capabilities(caps),
        with_user(inp.uid, inp.gid, list(inp.additional_gids)
                  + [g for g in inp.extra_gids if g not in inp.additional_gids]),
    ]
    if inp.no_new_privileges:
        opts.append(with_no_new_privileges())
    if inp.rlimits:
        opts.append(with_rlimits(inp.rlimits))
    if inp.readonly_rootfs:
        opts.append(with_readonly_rootfs())
    opts.append(with_hostname(inp.hostname, inp.domainname))
    opts.append(with_namespaces(inp.namespaces, inp.ns_overrides))
    if inp.sysctls is not None:
        opts.append(with_sysctls(inp.sysctls, replace=True))
    if inp.extra_sysctls:
        opts.append(with_sysctls(inp.extra_sysctls))
    opts.append(_with_standard_mounts(inp))
    opts.append(with_mounts(inp.extra_mounts))
    if inp.init_binary:
        opts.append(with_init(inp.init_binary))
    if inp.cgroups_path:
        opts.append(with_cgroups_path(inp.cgroups_path))
    if inp.privileged:
        opts.append(with_privileged(inp.devices))
        if inp.masked_paths or inp.readonly_paths:
            opts.append(with_paths(inp.masked_paths or None, inp.readonly_paths or None))
    else:
        opts.append(with_devices(inp.devices))
        opts.append(with_device_rules(inp.device_rules))
        opts.append(with_seccomp(None if not inp.seccomp else
                                 inp.seccomp_profile if inp.seccomp_profile is not None else default_profile(caps)))
        opts.append(with_paths(inp.masked_paths if inp.masked_paths is not None else DEFAULT_MASKED_PATHS,
                               inp.readonly_paths if inp.readonly_paths is not None else DEFAULT_READONLY_PATHS))
    if inp.resources:
        opts.append(with_resources(inp.resources))
    opts.extend(inp.extra_options)
    return opts


def _with_standard_mounts(inp: SpecInput) -> SpecOption:
    def opt(spec: Spec) -> None:
        spec["mounts"] = standard_mounts(shm_size=inp.shm_size, privileged=inp.privileged,
                                         writable_cgroups=inp.writable_cgroups, shm_source=inp.shm_source)
    return opt


def build_spec(inp: SpecInput) -> dict[str, Any]:
    """The config.json for ``inp`` (OCI runtime-spec 1.0)."""
    return apply(default_spec(inp.rootfs), options_for(inp))
