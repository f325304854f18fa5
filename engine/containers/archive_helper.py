"""The process behind `docker cp`: works inside the container's own root.

Started as a fresh interpreter (``python -m engine.containers.archive_helper SPEC``) by
engine/containers/archive.py.  A running container's mount namespace is joined and its
root becomes ours (chroot); for a stopped container a private mount namespace gets the
rootfs and the container's volumes and binds, then the same chroot.  Every path is then
resolved by the kernel inside the container's filesystem: no symlink, ``..`` or swapped-in
link can reach the host, and whatever we mounted vanishes with this process.

Output protocol on stdout: one JSON line (``{"stat": ...}`` or ``{"error": kind, "message":
...}``), then, for ``get``, the tar stream.  ``put`` reads the tar from stdin.
"""
from __future__ import annotations

# Everything is imported before the chroot: the host's module paths do not exist inside the
# container, and nothing may be imported (or loaded by NSS) from the container's files once we
# are in it.  bz2, lzma and zlib are what tarfile's stream mode would import lazily.
import bz2  # noqa: F401
import json
import lzma  # noqa: F401
import os
import shutil
import stat as st
import sys
import tarfile
import zlib  # noqa: F401
from typing import IO, Any

from engine.containers.archive_io import BodyError, BodyReader, Sink, extract_file, write_tar
from engine.containers.archive_stat import GO_DIR, Failure, path_stat
from engine.oci.user import resolve_user_from

# No user/group name lookups in tar headers: glibc would load NSS modules from the container's
# /lib once we are in its root (CVE-2019-14271 in dockerd's cp).
setattr(tarfile, "pwd", None)  # noqa: B010
setattr(tarfile, "grp", None)  # noqa: B010

CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_REMOUNT = 0x20
MS_RDONLY = 0x1
MS_PRIVATE = 1 << 18

_BUF = 1 << 20   # tar stream and file copy buffers: big reads and writes on the pipes


def _lib() -> Any:
    import ctypes
    import ctypes.util
    lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return lib


def _check(rc: int, what: str) -> None:
    if rc != 0:
        import ctypes
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(lib: Any, src: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    def enc(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    _check(lib.mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {src} on {target}")


def _seal() -> None:
    """After the chroot: no more imports from disk (the container's files could shadow modules)."""
    sys.path[:] = []
    sys.path_importer_cache.clear()


def enter_running(pid: int) -> None:
    lib = _lib()
    root_fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY)
    ns_fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    _check(lib.setns(ns_fd, CLONE_NEWNS), "setns")
    os.fchdir(root_fd)
    os.chroot(".")
    os.chdir("/")
    _seal()


def enter_stopped(rootfs: str, layers: list[dict[str, Any]], mounts: list[dict[str, Any]]) -> None:
    from engine.runtime.fs import secure_join
    from engine.snapshots import mount as mnt

    lib = _lib()
    _check(lib.unshare(CLONE_NEWNS), "unshare")
    _mount(lib, None, "/", None, MS_REC | MS_PRIVATE, None)
    os.makedirs(rootfs, exist_ok=True)
    mnt.mount_all([mnt.Mount(m["type"], m["source"], tuple(m["options"])) for m in layers], rootfs)
    for m in mounts:
        src, dest = m["source"], secure_join(rootfs, m["destination"])
        if not os.path.lexists(src):
            continue
        if not os.path.lexists(dest):
            if os.path.isdir(src):
                os.makedirs(dest, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                open(dest, "a").close()
        _mount(lib, src, dest, None, MS_BIND | MS_REC, None)
        if not m["rw"]:
            _mount(lib, None, dest, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
    os.chdir(rootfs)
    os.chroot(".")
    os.chdir("/")
    _seal()


def _abs(path: str) -> str:
    """filepath.Join("/", path), keeping a trailing "/." or "/" as dockerd does."""
    clean = os.path.normpath(os.path.join("/", path))
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if path.endswith("/.") and clean != "/":
        return clean + "/."
    if path.endswith("/") and clean != "/":
        return clean + "/"
    return clean


class _Streaming(Exception):
    """The tar stream had begun: an error can only end it (the client sees a short archive)."""


def do_get(path: str, out: IO[bytes], go: IO[bytes], sock: int | None, spec: dict[str, Any]) -> None:
    p = _abs(path)
    stat = path_stat(p, path)
    out.write(json.dumps({"stat": stat}).encode() + b"\n")
    out.flush()
    if sock is None:
        try:
            _write_tar(p, stat, out)
        except (OSError, tarfile.TarError) as err:
            raise _Streaming(str(err)) from err
        return
    # Straight onto the client's connection, once the daemon has sent the response head.
    if go.read(1) != b"g":
        raise _Streaming("the daemon did not send the response")
    try:
        src, arcname = _tar_names(p, stat)
        write_tar(src, arcname, Sink(sock, chunked=bool(spec.get("chunked"))))
    except (OSError, tarfile.TarError) as err:
        out.write(json.dumps({"error": "stream", "message": str(err)}).encode() + b"\n")
        return
    out.write(b'{"done": true}\n')


def _tar_names(p: str, stat: dict[str, Any]) -> tuple[str, str]:
    """The path to archive and its name in the archive (dockerd's rebasing of the copied path)."""
    is_dir = bool(stat["mode"] & GO_DIR)
    src = p.rstrip("/") if p not in ("/",) else "/"
    if src.endswith("/."):
        src = src[:-2] or "/"
    arcname = "." if p.endswith("/.") or src == "/" else os.path.basename(src)
    if not is_dir:
        arcname = os.path.basename(src)
    if p.endswith(("/", "/.")) and os.path.islink(src):
        # a trailing separator follows a link to a directory, as dockerd (inside our root: the
        # link resolves within the container's filesystem)
        src = os.path.realpath(src)
    return src, arcname


def _write_tar(p: str, stat: dict[str, Any], out: IO[bytes]) -> None:
    src, arcname = _tar_names(p, stat)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_BUF) as tf:
        # big copies: the stream's buffer is re-joined on every write, 16 KiB pieces make that quadratic
        tf.copybufsize = _BUF   # type: ignore[attr-defined]
        tf.add(src, arcname=arcname, recursive=True)


def _inside(base: str, target: str) -> bool:
    base = base.rstrip("/") or "/"
    return base == "/" or target == base or target.startswith(base + "/")


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _tar_reader(src: Any) -> tarfile.TarFile:
    """A plain tar from the client's socket is read in tarfile's random-access mode (forward
    seeks only), whose big reads go straight into the files; a compressed one, or one from the
    pipe, in stream mode."""
    if isinstance(src, BodyReader):
        magic = src.read(6)
        src.unread(bytes(magic))
        if not magic.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ")):
            tf: tarfile.TarFile = tarfile.open(fileobj=src, mode="r:")   # type: ignore[call-overload]
            setattr(tf, "makefile", lambda info, target: extract_file(tf, info, target))  # noqa: B010
            return tf
    return tarfile.open(fileobj=src, mode="r|*", bufsize=_BUF)


def do_put(path: str, src: Any, spec: dict[str, Any]) -> None:
    p = _abs(path)
    try:
        dest = os.path.realpath(p.rstrip("/.") or "/") if p not in ("/", "/.") else "/"
        s = os.lstat(dest)
    except (FileNotFoundError, NotADirectoryError):
        raise Failure("notfound", "") from None
    if not st.S_ISDIR(s.st_mode):
        raise Failure("invalid", "extraction point is not a directory")
    for m in sorted(spec.get("mounts") or [], key=lambda m: -len(m["destination"])):
        if _inside(m["destination"], dest):
            if not m["rw"]:
                raise Failure("invalid", "mounted volume is marked read-only")
            break
    else:
        if spec.get("readonly_rootfs"):
            raise Failure("invalid", "container rootfs is marked read-only")
    owner: tuple[int, int] | None = None
    if spec.get("copy_uid_gid"):
        # (we are inside the container's root: its /etc/passwd and /etc/group are the ones read)
        uid, gid, _ = resolve_user_from(spec.get("user") or "", _read_text)
        owner = (uid, gid)
    allow_overwrite = not spec.get("no_overwrite_dir_non_dir")
    with _tar_reader(src) as tf:
        tf.copybufsize = _BUF   # type: ignore[attr-defined]  # (TarFile's copy buffer, 16 KiB by default)
        for member in tf:
            name = member.name
            rel = os.path.normpath("/" + name).lstrip("/")
            if name.startswith("/"):
                name = name.lstrip("/")
            joined = os.path.normpath(os.path.join(dest, name)) if name else dest
            if not _inside(dest, joined):
                raise Failure("system", f'"{member.name}" is outside of "{dest}"')
            if not rel:
                continue
            target = os.path.join(dest, rel) if dest != "/" else "/" + rel
            if member.issym():
                link = os.path.normpath(os.path.join(os.path.dirname(target), member.linkname))
                if not _inside(dest, link):
                    raise Failure("system", f'invalid symlink "{target}" -> "{member.linkname}"')
            if member.islnk():
                link = os.path.normpath(os.path.join(dest, member.linkname))
                if not _inside(dest, link):
                    raise Failure("system", f'invalid hardlink "{target}" -> "{member.linkname}"')
                member.linkname = os.path.relpath(link, dest) if dest != "/" else link.lstrip("/")
            try:
                existing = os.lstat(target)
            except FileNotFoundError:
                existing = None
            if existing is not None:
                exists_dir = st.S_ISDIR(existing.st_mode)
                if not allow_overwrite:
                    if exists_dir and not member.isdir():
                        raise Failure("system", f'cannot overwrite directory "{target}" with non-directory "{dest}"')
                    if not exists_dir and member.isdir():
                        raise Failure("system", f'cannot overwrite non-directory "{target}" with directory "{dest}"')
                if not (exists_dir and member.isdir()):
                    if exists_dir:
                        shutil.rmtree(target)
                    else:
                        os.unlink(target)
            if owner is not None:
                member.uid, member.gid = owner
            member.name = rel
            tf.extract(member, path=dest, numeric_owner=True, set_attrs=True)


def run(spec: dict[str, Any], src: IO[bytes], out: IO[bytes], sock: int | None = None) -> int:
    """One operation; returns the exit status.  ``sock``: the client's connection, for a body
    read or written by the helper itself (``src`` then carries what the daemon had already
    read of the request body, or, for ``get``, the go-ahead once the response head is sent)."""
    try:
        try:
            if spec.get("pid"):
                enter_running(int(spec["pid"]))
            else:
                enter_stopped(spec["rootfs"], spec["layers"], spec.get("mounts") or [])
        except OSError as err:
            raise Failure("system", str(err)) from None
        if spec["op"] == "stat":
            out.write(json.dumps({"stat": path_stat(_abs(spec["path"]), spec["path"])}).encode() + b"\n")
        elif spec["op"] == "get":
            do_get(spec["path"], out, src, sock, spec)
        elif sock is None:
            do_put(spec["path"], src, spec)
            out.write(b'{"ok": true}\n')
        else:
            body = BodyReader(sock, src.read(), chunked=bool(spec.get("chunked")), length=int(spec.get("length") or 0))
            try:
                do_put(spec["path"], body, spec)
            except (Failure, OSError, tarfile.TarError):
                # read (some of) the rest first: a client still sending when the answer comes
                # sees its upload cut (the docker CLI logs "closed pipe" errors)
                try:
                    body.drain(_BUF)
                except BodyError:
                    pass
                raise
            body.drain(_BUF)
            out.write(b'{"ok": true}\n')
    except _Streaming as err:
        sys.stderr.write(f"archive stream ended early: {err}\n")
        return 1
    except Failure as f:
        out.write(json.dumps({"error": f.kind, "message": f.message}).encode() + b"\n")
    except BodyError as err:
        out.write(json.dumps({"error": "badbody", "message": str(err)}).encode() + b"\n")
    except (OSError, tarfile.TarError) as err:
        out.write(json.dumps({"error": "system", "message": str(err)}).encode() + b"\n")
    out.flush()
    return 0


def serve(sock_fd: int) -> None:
    """The fork server: a fresh interpreter that forks one child per operation, so a `docker cp`
    does not pay for an interpreter start.  Each request on the SOCK_SEQPACKET socket is the spec
    (JSON) with two descriptors: the child's stdin and stdout.  EOF on the socket (the daemon went
    away) ends the server."""
    import signal
    import socket

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # children are reaped by the kernel
    sock = socket.socket(fileno=sock_fd)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 1 << 20, 3)
        except InterruptedError:
            continue
        except OSError:
            return
        if not msg:
            return
        if len(fds) not in (2, 3):
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                sock.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                with os.fdopen(fds[0], "rb", buffering=_BUF) as src, os.fdopen(fds[1], "wb", buffering=0) as raw:
                    out = __import__("io").BufferedWriter(raw, buffer_size=_BUF)
                    code = run(json.loads(msg), src, out, fds[2] if len(fds) == 3 else None)
                    out.flush()
            except BaseException:   # noqa: BLE001 - the child never returns into the server loop
                code = 1
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)


def main() -> None:
    if sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
        return
    sys.exit(run(json.loads(sys.argv[1]), sys.stdin.buffer, sys.stdout.buffer))


if __name__ == "__main__":
    main()
