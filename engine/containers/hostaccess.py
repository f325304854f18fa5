"""What a container's spec needs from the host and from its rootfs, read (or mounted) here,
in the bundle step, so that ``engine.oci`` stays pure: it turns typed inputs into config.json
and touches nothing.

- ``HOST``: the lookups the spec options call back into (device nodes for ``--device`` and
  ``--privileged``, docker-init for ``--init``);
- ``resolve_user``: ``Config.User`` against the image's /etc/passwd and /etc/group, read
  through the rootfs with symlinks resolved inside it;
- the host-side tmpfs of a shareable IPC container's /dev/shm (mounted at start, released at
  stop and removal).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import EngineError
from ..oci import hostopts
from ..oci.user import resolve_user_from
from . import devices

# Where we find docker-init (tini) on the host for --init.
INIT_CANDIDATES = ("/usr/bin/docker-init", "/usr/libexec/docker/docker-init", "/usr/bin/tini-static",
                   "/usr/local/bin/tini-static", "/sbin/tini-static")


def find_init_binary() -> str:
    for path in INIT_CANDIDATES:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise EngineError('exec: "docker-init": executable file not found in $PATH')


HOST = hostopts.HostLookups(
    host_devices=devices.host_devices,
    devices_from_path=devices.devices_from_path,
    init_binary=find_init_binary,
)


# ------------------------------------------------------------------ the image's user database
def read_in_rootfs(rootfs: Path, rel: str) -> str | None:
    """A file of the rootfs, with symlinks resolved inside it (an image cannot point its
    /etc/passwd at the host's); None when it is missing or unreadable."""
    from ..runtime.fs import secure_join

    try:
        path = secure_join(str(rootfs), rel)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        return f.read()


def resolve_user(rootfs: Path, user: str) -> tuple[int, int, list[int]]:
    """-> (uid, gid, additional_gids) for ``user`` in this rootfs (see ``oci.user``)."""
    return resolve_user_from(user, lambda rel: read_in_rootfs(rootfs, rel))


# ------------------------------------------------------------------ shareable /dev/shm
def mount_shareable_shm(container_dir: str, size: int) -> str:
    """Mount (once) the host-side tmpfs of a shareable IPC container's /dev/shm.  A mount in
    the container's own namespace cannot be bound into another one: like dockerd, the tmpfs
    lives on the host and both containers bind it."""
    from ..runtime import syscalls as S
    from ..runtime.linux import linux_syscalls

    path = hostopts.shm_path(container_dir)
    os.makedirs(path, exist_ok=True)
    if not os.path.ismount(path):
        try:
            linux_syscalls().mount("shm", path, "tmpfs", S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC,
                                    f"mode=1777,size={size}")
        except OSError as e:
            raise EngineError(f"mounting shm tmpfs: {e}") from None
    return path


def release_shm(container_dir: str) -> None:
    """Unmount a shareable /dev/shm (at stop and removal; a no-op for the others)."""
    path = hostopts.shm_path(container_dir)
    if os.path.ismount(path):
        from ..runtime import syscalls as S
        from ..runtime.linux import linux_syscalls

        try:
            linux_syscalls().umount2(path, S.MNT_DETACH)
        except OSError:
            pass
