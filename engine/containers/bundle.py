"""The bundle step: a container's files and rootfs, and the OCI spec of one start.

Create makes the container directory, the log file and the rootfs snapshot; remove destroys
them.  Each start prepares the bundle directory, and (once the start contributors have filled
in the StartPlan) writes hostname, hosts and resolv.conf and turns the container's record and
the plan into the OCI spec.
"""
from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import NotFound
from ..images.api import RootfsImages
from ..oci import hostopts
from ..types import Container
from . import files, hostaccess, resources
from .contributors import StartPlan
from .records import ContainerRecords

log = logging.getLogger(__name__)


class Bundles:
    def __init__(
        self,
        config: Config,
        images: RootfsImages,
        records: ContainerRecords,
        *,
        build_spec: Callable[..., dict[str, Any]],
        spec_input: Callable[..., Any],
        resolve_user: Callable[..., Any],
    ) -> None:
        self.config = config
        self.images = images
        self.records = records
        self._build_spec = build_spec
        self._spec_input = spec_input
        self._resolve_user = resolve_user

    def create_files(self, c: Container, image_id: str) -> None:
        cdir = self.config.containers_root / c.id
        cdir.mkdir(parents=True, exist_ok=False)
        if c.log_path:
            Path(c.log_path).parent.mkdir(exist_ok=True)
            Path(c.log_path).touch(mode=0o640)
        self.images.prepare_rootfs(c.id, image_id)

    def destroy_files(self, c: Container) -> None:
        # The rootfs mount first: removing a snapshot (or the bundle) under a mount that is
        # still there would delete through it and leave the mount behind.
        try:
            self.images.unmount_rootfs(c.id, self.config.bundles_root / c.id / "rootfs")
        except Exception:
            log.exception("unmounting rootfs of %s", c.id)
        try:
            self.images.remove_rootfs(c.id)
        except NotFound:
            pass
        except Exception:  # keep removing what can be removed
            log.exception("removing rootfs of %s", c.id)
        hostaccess.release_shm(str(self.config.containers_root / c.id))
        shutil.rmtree(self.config.containers_root / c.id, ignore_errors=True)
        shutil.rmtree(self.config.bundles_root / c.id, ignore_errors=True)

    def prepare_dirs(self, bundle: Path, rootfs: Path) -> None:
        bundle.mkdir(parents=True, exist_ok=True)
        for stale in ("exit.json",):
            try:
                (bundle / stale).unlink()
            except FileNotFoundError:
                pass
        rootfs.mkdir(exist_ok=True)

    def make_spec(self, c: Container, rootfs: Path, plan: StartPlan) -> dict[str, Any]:
        cfg = c.config
        hostname = plan.hostname if plan.hostname is not None else cfg.hostname
        uid, gid, groups, home = self.resolve(rootfs, cfg.user)
        # plan.env: what contributors (networking) add; the container's Env wins over it
        env = files.process_env(hostname, cfg.tty, home, plan.env, cfg.env)
        cdir = plan.container_dir
        files.write_atomic(cdir / "hostname", (hostname + "\n").encode())
        hosts = files.hosts_content(hostname, cfg.domainname, None, c.host_config.extra_hosts)
        for ip, names in plan.hosts_entries:
            hosts += f"{ip}\t{names}\n"
        for ip in plan.hosts_addresses:
            hosts += f"{ip}\t" + (f"{hostname}.{cfg.domainname} {hostname}" if cfg.domainname else hostname) + "\n"
        files.write_atomic(cdir / "hosts", hosts.encode())
        resolv = plan.resolv_conf
        if resolv is None:
            resolv = files.resolv_conf_content(
                Path("/etc/resolv.conf"),
                c.host_config.dns,
                c.host_config.dns_search,
                c.host_config.dns_options,
            )
        files.write_atomic(cdir / "resolv.conf", resolv.encode())
        mounts: list[tuple[str, str, str, tuple[str, ...]]] = [
            ("/etc/resolv.conf", "bind", str(cdir / "resolv.conf"), ("rbind", "rprivate")),
            ("/etc/hostname", "bind", str(cdir / "hostname"), ("rbind", "rprivate")),
            ("/etc/hosts", "bind", str(cdir / "hosts"), ("rbind", "rprivate")),
        ]
        mounts.extend(plan.mounts)
        # Parents before children (dockerd sorts by the number of path elements): a volume on
        # /etc must not hide the /etc/hosts bind made before it.
        mounts.sort(key=lambda m: len([p for p in m[0].split("/") if p]))
        try:
            group_text = read_in_root(rootfs, "etc/group") if c.host_config.group_add else ""
        except OSError:
            group_text = ""
        sec = hostopts.spec_options(c.host_config, [c.path, *c.args], self.peer, group_text, str(cdir),
                                    hostaccess.HOST)
        shm_size = hostopts.shareable_shm_size(c.host_config)
        if shm_size is not None:
            hostaccess.mount_shareable_shm(str(cdir), shm_size)
        ns_paths = plan.namespace_overrides()
        if ns_paths:
            # --network etc. from a contributor; the security options' own joins (ipc/pid/uts) win
            sec["ns_overrides"] = tuple({**ns_paths, **dict(sec.get("ns_overrides", ()))}.items())
        if plan.sysctls:
            sec["extra_sysctls"] = {**plan.sysctls, **sec.get("extra_sysctls", {})}
        inp = self._spec_input(
            container_id=c.id,
            hostname=hostname,
            domainname=cfg.domainname,
            rootfs=str(rootfs),
            readonly_rootfs=c.host_config.readonly_rootfs,
            args=sec.pop("args", [c.path, *c.args]),
            env=env,
            cwd=cfg.working_dir or "/",
            uid=uid,
            gid=gid,
            additional_gids=list(groups),
            tty=cfg.tty,
            extra_mounts=mounts,
            cgroups_path=self.cgroups_path(c),
            privileged=c.host_config.privileged,
            cap_add=tuple(c.host_config.cap_add),
            cap_drop=tuple(c.host_config.cap_drop),
            shm_size=c.host_config.shm_size or None,
            resources=resources.with_block_io(c.host_config.resources),
            rlimits=resources.rlimits(c.host_config.resources),
            oom_score_adj=c.host_config.resources.oom_score_adj,
            extra_options=tuple(plan.spec_options),
            **sec,
        )
        return self._build_spec(inp)

    def peer(self, ref: str) -> hostopts.Peer:
        """A container named in --ipc/--pid container:<ref>."""
        other = self.records.get(ref)
        return hostopts.Peer(other.id, other.state.pid if other.state.running else 0, other.host_config.ipc_mode,
                             str(self.config.containers_root / other.id))

    def resolve(self, rootfs: Path, user: str) -> tuple[int, int, tuple[int, ...], str]:
        uid, gid, groups = self._resolve_user(rootfs, user)
        home = "/"
        try:
            for line in read_in_root(rootfs, "etc/passwd").splitlines():
                parts = line.split(":")
                if len(parts) >= 6 and parts[2].isdigit() and int(parts[2]) == uid:
                    home = parts[5] or "/"
                    break
        except OSError:
            pass
        return uid, gid, tuple(groups), home

    def cgroups_path(self, c: Container) -> str:
        parent = c.host_config.cgroup_parent.strip("/") or self.config.cgroup_parent
        return f"/{parent}/{c.id}"

    def cleanup_run(self, c: Container) -> None:
        bundle = self.config.bundles_root / c.id
        try:
            self.images.unmount_rootfs(c.id, bundle / "rootfs")
        except Exception:
            log.exception("unmounting rootfs of %s", c.id)
        hostaccess.release_shm(str(self.config.containers_root / c.id))


def read_in_root(rootfs: Path, rel: str) -> str:
    """Read a file of the container's rootfs without following symlinks out of it."""
    path = rootfs / rel
    real = os.path.realpath(path)
    if not (real == str(rootfs) or real.startswith(str(rootfs).rstrip("/") + "/")):
        raise OSError("outside rootfs")
    with open(real, encoding="utf-8", errors="replace") as f:
        return f.read()
