"""The create step: validate a create request, merge it with the image's config, make the record.

Pure: everything it needs (the image, the host's limits, a lookup of peer containers) is passed
in; it touches no file, runtime or record.  The order of the checks is dockerd's, so that a
request with several faults gets the error dockerd gives first.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import timeutil
from ..errors import EngineError, InvalidParameter
from ..logs import drivers as log_drivers
from ..oci import hostopts
from ..types import Container, ContainerConfig, ContainerState, HostConfig
from . import files, resources
from . import health as health_checks
from .restart import POLICIES, validate_policy


@dataclass(frozen=True)
class Checked:
    """A create request that passed validation, merged with its image."""

    config: ContainerConfig
    host_config: HostConfig
    argv: list[str]
    warnings: list[str]


def check_request(config: ContainerConfig) -> None:
    """The checks dockerd makes before it looks the image up."""
    if not config.image:
        raise InvalidParameter("config.Image must not be empty")
    health_checks.validate(config.healthcheck)


def validate(
    config: ContainerConfig,
    host_config: HostConfig,
    image: Any,
    *,
    host_limits: resources.HostLimits,
    peer: Callable[[str], hostopts.Peer],
    rootfs: Path,
) -> Checked:
    """Merge with the image config and check the rest of the request (after check_request).
    `rootfs` is where the container's rootfs will be mounted (for dockerd's error text)."""
    config = merge_image_config(config, image)
    argv = list(config.entrypoint or ()) + list(config.cmd or ())
    if not argv:
        raise InvalidParameter("No command specified")
    check_host_config(host_config)
    limits, warnings = resources.validate(resources.normalize(host_config.resources), host_limits)
    host_config = replace(host_config, resources=limits)
    hostopts.check_create(host_config, bool(config.hostname), peer)

    log_drivers.validate(host_config.log_config.type, host_config.log_config.config)
    if "\x00" in config.working_dir:
        # dockerd makes the working directory at create; the lstat of a path with a NUL fails
        raise EngineError(f"lstat {rootfs}{config.working_dir}: invalid argument")
    return Checked(config, host_config, argv, warnings)


def new_container(
    cid: str,
    name: str,
    image_id: str,
    checked: Checked,
    *,
    containers_root: Path,
    storage_driver: str,
) -> Container:
    """The new container's record (not saved yet): its files live in containers_root/<id>."""
    config, host_config, argv = checked.config, checked.host_config, checked.argv
    hostname = config.hostname or cid[:12]
    config = replace(config, hostname=hostname)
    cdir = containers_root / cid
    return Container(
        id=cid,
        name=name,
        created=timeutil.now(),
        image_id=image_id,
        config=config,
        host_config=host_config,
        path=argv[0],
        args=tuple(argv[1:]),
        state=ContainerState(),
        log_path=str(log_drivers.log_file(host_config.log_config.type, cdir, cid) or ""),
        hostname_path=str(cdir / "hostname"),
        hosts_path=str(cdir / "hosts"),
        resolv_conf_path=str(cdir / "resolv.conf"),
        driver=storage_driver,
    )


def merge_image_config(config: ContainerConfig, image: Any) -> ContainerConfig:
    ic: dict[str, Any] = image.config.get("config") or image.config.get("Config") or {}
    if isinstance(image.config, dict) and "Cmd" in image.config:
        ic = image.config
    env = files.merge_env(list(ic.get("Env") or []), list(config.env))
    cmd = config.cmd
    entrypoint = config.entrypoint
    if entrypoint is None:
        entrypoint = tuple(ic.get("Entrypoint") or ()) or None
        if cmd is None or not cmd:
            cmd = tuple(ic.get("Cmd") or ()) or None
    elif not entrypoint:
        entrypoint = None
    labels = dict(ic.get("Labels") or {})
    labels.update(config.labels)
    exposed = tuple(sorted(set(config.exposed_ports) | set((ic.get("ExposedPorts") or {}).keys())))
    volumes = tuple(sorted(set(config.volumes) | set((ic.get("Volumes") or {}).keys())))
    return replace(
        config,
        env=tuple(env),
        cmd=cmd,
        entrypoint=entrypoint,
        working_dir=config.working_dir or ic.get("WorkingDir") or "",
        user=config.user or ic.get("User") or "",
        labels=labels,
        stop_signal=config.stop_signal or ic.get("StopSignal") or None,
        exposed_ports=exposed,
        volumes=volumes,
        on_build=tuple(ic.get("OnBuild") or ()),
        healthcheck=health_checks.merge_with_image(config.healthcheck, ic.get("Healthcheck")),
    )


def check_host_config(hc: HostConfig) -> None:
    from ..oci.caps import CAPABILITIES, normalize

    for field_name, caps in (("CapAdd", hc.cap_add), ("CapDrop", hc.cap_drop)):
        for cap in caps:
            if normalize(cap) != "CAP_ALL" and normalize(cap) not in CAPABILITIES:
                raise InvalidParameter(f'invalid {field_name}: unknown capability: "{normalize(cap)}"')
    policy = hc.restart_policy.name
    if policy not in ("", *POLICIES):
        validate_policy(hc.restart_policy)
    if hc.auto_remove and policy not in ("", "no"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    validate_policy(hc.restart_policy)
