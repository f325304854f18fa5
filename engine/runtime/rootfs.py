"""The container's root file system: mounts, /dev, pivot_root, masked and read-only paths.

Run by the init (``engine.runtime.init.run_init``) in the container's new mount
namespace, in runc's order.
"""
from __future__ import annotations

import os
import stat

from engine.runtime import fs
from engine.runtime import syscalls as S
from engine.runtime.procbuild import InitError, err_text, step

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing/dataclasses cost ~10 ms at every container start
    from typing import Any

    from engine.runtime.init import InitConfig


# (name, major, minor) created in every container's /dev, mode 0666 root:root
DEFAULT_DEVICES: tuple[tuple[str, int, int], ...] = (
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
)


DEV_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
)


def setup_rootfs(cfg: InitConfig, sys: S.Syscalls, rootfs: str, tty: bool) -> None:
    spec = cfg.spec
    linux = spec.get("linux") or {}
    # Nothing we mount may propagate back to the host.
    prop = fs.parse_mount_options([linux.get("rootfsPropagation") or "rslave"]).propagation
    step("making / a slave mount", sys.mount, None, "/", None, prop or (S.MS_SLAVE | S.MS_REC), None)
    step("bind-mounting rootfs", sys.mount, rootfs, rootfs, None, S.MS_BIND | S.MS_REC, None)

    for m in spec.get("mounts") or []:
        mount_one(cfg, sys, rootfs, m)

    # /dev contents (only when /dev is our tmpfs, as with every dockerd container).
    dev = fs.secure_join(rootfs, "/dev")
    dev_is_tmpfs = any(m.get("destination") == "/dev" and m.get("type") == "tmpfs" for m in spec.get("mounts") or [])
    if dev_is_tmpfs:
        for name, major, minor in DEFAULT_DEVICES:
            make_device(sys, os.path.join(dev, name), "c", major, minor, 0o666, 0, 0)
        for target, name in DEV_SYMLINKS:
            link = os.path.join(dev, name)
            if not sys.exists(link):
                step(f"creating /dev/{name}", sys.symlink, target, link)
    for d in linux.get("devices") or []:
        path = fs.secure_join(rootfs, d["path"])
        fs.mkdir_all(sys, os.path.dirname(path))
        make_device(sys, path, d.get("type", "c"), int(d.get("major", 0)), int(d.get("minor", 0)),
                     int(d.get("fileMode", 0o666)), int(d.get("uid", 0)), int(d.get("gid", 0)))
    if tty and dev_is_tmpfs:
        console = os.path.join(dev, "console")
        if not sys.exists(console):
            step("creating /dev/console", sys.create_file, console, 0)


def mount_one(cfg: InitConfig, sys: S.Syscalls, rootfs: str, m: dict[str, Any]) -> None:
    dest_rel = m["destination"]
    typ = m.get("type") or ""
    src = m.get("source") or ""
    # "rro" (recursively read-only): read-only like "ro", then mount_setattr for the submounts too
    raw_opts = list(m.get("options") or [])
    recursive_ro = "rro" in raw_opts
    opts = fs.parse_mount_options(["ro" if o == "rro" else o for o in raw_opts])
    dest = fs.secure_join(rootfs, dest_rel)
    desc = f'error mounting "{src}" to rootfs at "{dest_rel}"'
    is_bind = bool(opts.flags & S.MS_BIND) or typ == "bind"

    if typ == "cgroup":
        mount_cgroup(cfg, sys, dest, opts, desc)
        return
    # Create the mount point: a file for a bind of a file, else a directory.
    if not sys.exists(dest):
        try:
            if is_bind and sys.exists(src) and not sys.is_dir(src):
                fs.mkdir_all(sys, os.path.dirname(dest))
                sys.create_file(dest, 0o755)
            else:
                fs.mkdir_all(sys, dest)
        except OSError as e:
            raise InitError(f"{desc}: {err_text(e)}") from None
    flags = opts.flags
    if is_bind:
        flags |= S.MS_BIND
        step(desc, sys.mount, src, dest, None, flags & (S.MS_BIND | S.MS_REC), None)
        # Bind mounts ignore every other flag on the first call: remount to apply them.
        extra = flags & ~(S.MS_BIND | S.MS_REC | S.MS_REMOUNT)
        if extra:
            step(desc, sys.mount, None, dest, None, S.MS_BIND | S.MS_REMOUNT | (flags & ~S.MS_REC), None)
        if recursive_ro:
            step(desc, sys.make_readonly_recursive, dest)
    else:
        try:
            sys.mount(src, dest, typ, flags, opts.data or None)
        except OSError as e:
            if typ == "sysfs" and e.errno == 1:
                # no private network namespace: the kernel refuses a new sysfs, bind the host's
                step(desc, sys.mount, "/sys", dest, None, S.MS_BIND | S.MS_REC, None)
                step(desc, sys.mount, None, dest, None, S.MS_BIND | S.MS_REMOUNT | S.MS_REC | flags, None)
            else:
                raise InitError(f"{desc}: {err_text(e)}") from None
    if opts.propagation:
        step(desc, sys.mount, None, dest, None, opts.propagation, None)


def mount_cgroup(cfg: InitConfig, sys: S.Syscalls, dest: str, opts: fs.MountOptions, desc: str) -> None:
    fs.mkdir_all(sys, dest)
    ro = opts.flags & S.MS_RDONLY
    base = opts.flags & (S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC)
    if cfg.cgroup_version == 2:
        step(desc, sys.mount, "cgroup", dest, "cgroup2", opts.flags, None)
        return
    # v1: a tmpfs with the container's own directory of each hierarchy bound in.
    step(desc, sys.mount, "tmpfs", dest, "tmpfs", base, "mode=755")
    for host_dir, name in cfg.cgroup_binds:
        sub = os.path.join(dest, name)
        fs.mkdir_all(sys, sub)
        step(desc, sys.mount, host_dir, sub, None, S.MS_BIND | S.MS_REC, None)
        step(desc, sys.mount, None, sub, None, S.MS_BIND | S.MS_REMOUNT | base | ro, None)


def make_device(sys: S.Syscalls, path: str, typ: str, major: int, minor: int, mode: int, uid: int, gid: int) -> None:
    kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}.get(typ)
    if kind is None:
        raise InitError(f"{typ} is not a valid device type for device {path}")
    if sys.exists(path):
        return
    try:
        sys.mknod(path, kind | (mode & 0o7777), major, minor)
    except PermissionError:
        # mknod is refused (e.g. a user namespace): bind the host's node instead
        host = "/dev/" + os.path.basename(path)
        sys.create_file(path, 0)
        step(f"binding device {host}", sys.mount, host, path, None, S.MS_BIND, None)
        return
    except OSError as e:
        raise InitError(f"creating device {path}: {err_text(e)}") from None
    step(f"chmod device {path}", sys.chmod, path, mode & 0o7777)
    step(f"chown device {path}", sys.chown, path, uid, gid)


def pivot_root(sys: S.Syscalls, rootfs: str) -> None:
    # pivot_root(".", "."): the old root ends up stacked on top of the new one,
    # where a lazy unmount removes it without needing a directory for it.
    step("chdir to rootfs", sys.chdir, rootfs)
    step("pivot_root", sys.pivot_root, ".", ".")
    step("making old root a slave", sys.mount, None, ".", None, S.MS_SLAVE | S.MS_REC, None)
    step("unmounting old root", sys.umount2, ".", S.MNT_DETACH)
    step("chdir to /", sys.chdir, "/")


def mask_path(sys: S.Syscalls, path: str) -> None:
    if not sys.exists(path):
        return
    if sys.is_dir(path):
        step(f"masking {path}", sys.mount, "tmpfs", path, "tmpfs", S.MS_RDONLY, None)
    else:
        step(f"masking {path}", sys.mount, "/dev/null", path, None, S.MS_BIND, None)


def readonly_path(sys: S.Syscalls, path: str) -> None:
    if not sys.exists(path):
        return
    step(f"making {path} read-only", sys.mount, path, path, None, S.MS_BIND | S.MS_REC, None)
    # keep nosuid/nodev/noexec of the underlying mount (a bind remount would clear them)
    flags = sys.statvfs_flags(path)
    step(f"making {path} read-only", sys.mount, None, path, None,
          S.MS_BIND | S.MS_REMOUNT | S.MS_RDONLY | S.MS_REC | flags, None)
