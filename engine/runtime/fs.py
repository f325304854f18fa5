"""Path and mount-option helpers for the container init (pure, no syscalls)."""
from __future__ import annotations

import errno
import os
import stat as _st

from engine.runtime import syscalls as S

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


# option -> (clear?, flag).  clear=True means the option removes the flag.
_FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, S.MS_RDONLY), "rw": (True, S.MS_RDONLY),
    "nosuid": (False, S.MS_NOSUID), "suid": (True, S.MS_NOSUID),
    "nodev": (False, S.MS_NODEV), "dev": (True, S.MS_NODEV),
    "noexec": (False, S.MS_NOEXEC), "exec": (True, S.MS_NOEXEC),
    "sync": (False, S.MS_SYNCHRONOUS), "async": (True, S.MS_SYNCHRONOUS),
    "dirsync": (False, S.MS_DIRSYNC),
    "remount": (False, S.MS_REMOUNT),
    "mand": (False, S.MS_MANDLOCK), "nomand": (True, S.MS_MANDLOCK),
    "noatime": (False, S.MS_NOATIME), "atime": (True, S.MS_NOATIME),
    "nodiratime": (False, S.MS_NODIRATIME), "diratime": (True, S.MS_NODIRATIME),
    "relatime": (False, S.MS_RELATIME), "norelatime": (True, S.MS_RELATIME),
    "strictatime": (False, S.MS_STRICTATIME), "nostrictatime": (True, S.MS_STRICTATIME),
    "bind": (False, S.MS_BIND), "rbind": (False, S.MS_BIND | S.MS_REC),
}

_PROPAGATION: dict[str, int] = {
    "private": S.MS_PRIVATE, "rprivate": S.MS_PRIVATE | S.MS_REC,
    "shared": S.MS_SHARED, "rshared": S.MS_SHARED | S.MS_REC,
    "slave": S.MS_SLAVE, "rslave": S.MS_SLAVE | S.MS_REC,
    "unbindable": S.MS_UNBINDABLE, "runbindable": S.MS_UNBINDABLE | S.MS_REC,
}


class MountOptions:
    """Parsed mount options (immutable by convention; no dataclasses in the init's import path)."""

    __slots__ = ("data", "flags", "propagation")

    def __init__(self, flags: int, propagation: int, data: str) -> None:
        self.flags = flags              # MS_* flags for mount(2)
        self.propagation = propagation  # MS_PRIVATE/SHARED/SLAVE/UNBINDABLE (| MS_REC), 0 if none
        self.data = data                # the file-system specific rest, comma separated


def parse_mount_options(options: list[str] | tuple[str, ...] | None) -> MountOptions:
    flags = 0
    prop = 0
    data: list[str] = []
    for opt in options or ():
        if opt in _FLAGS:
            clear, flag = _FLAGS[opt]
            if clear:
                flags &= ~flag
            else:
                flags |= flag
        elif opt in _PROPAGATION:
            prop = _PROPAGATION[opt]
        else:
            data.append(opt)
    return MountOptions(flags, prop, ",".join(data))


def secure_join(root: str, unsafe: str, *,
                islink: Callable[[str], bool] = os.path.islink,
                readlink: Callable[[str], str] = os.readlink) -> str:
    """Join ``unsafe`` under ``root`` resolving symlinks as if ``root`` were '/'.

    The result never leaves ``root``: '..' stops at the root and absolute
    symlink targets restart from it.  Components that do not exist are kept
    as they are (the caller creates them).
    """
    root = os.path.abspath(root)
    pending = [p for p in unsafe.split("/") if p]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        full = os.path.join(root, *resolved, part)
        if islink(full):
            links += 1
            if links > 255:
                raise OSError(errno.ELOOP, f"too many symlinks resolving {unsafe}")
            target = readlink(full)
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p] + pending
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def mkdir_all(sys: S.Syscalls, path: str, mode: int = 0o755) -> None:
    """mkdir -p through the syscall interface (so the fake records it)."""
    missing: list[str] = []
    p = path
    while p not in ("", "/") and not sys.exists(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        try:
            sys.mkdir(d, mode)
        except FileExistsError:
            pass


def look_path(name: str, path_env: str, *, root: str = "/") -> str:
    """Find an executable the way Go's exec.LookPath does (runc's behaviour).

    Returns the path (relative to ``root``'s view) or raises ExecLookupError
    with runc's wording and the exit code dockerd records.
    """
    def check(p: str) -> None:
        st = os.stat(os.path.join(root, p.lstrip("/")) if root != "/" else p)
        if _st.S_ISDIR(st.st_mode) or not (st.st_mode & 0o111):
            raise PermissionError(errno.EACCES, "permission denied")

    if "/" in name:
        try:
            check(name)
        except PermissionError:
            raise ExecLookupError(f'exec: {go_quote(name)}: permission denied', 126) from None
        except OSError as e:
            raise ExecLookupError(f'exec: {go_quote(name)}: stat {name}: {_strerror(e)}', 127) from None
        except ValueError:  # a NUL byte: the stat's EINVAL
            raise ExecLookupError(f'exec: {go_quote(name)}: stat {name}: invalid argument', 127) from None
        return name
    for d in path_env.split(":"):
        if d == "":
            d = "."
        cand = os.path.join(d, name)
        try:
            check(cand)
        except (OSError, ValueError):  # ValueError: a NUL byte, no such file
            continue
        return cand
    raise ExecLookupError(f'exec: {go_quote(name)}: executable file not found in $PATH', 127)


def _strerror(e: OSError) -> str:
    return os.strerror(e.errno).lower() if e.errno else str(e)


class ExecLookupError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def go_quote(text: str) -> str:
    """Go's %q of a string (strconv.Quote): printable characters kept, the rest escaped."""
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
             "\v": "\\v", "\\": "\\\\", '"': '\\"'}
    out = []
    for ch in text:
        if ch in named:
            out.append(named[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'
