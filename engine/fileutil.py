"""Writing a file so that readers see the old content or the new, never a mix.

Stdlib only: the shim imports it (engine.runtime.shim) as well as the daemon.
"""
from __future__ import annotations

import os


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``.

    Atomic against a crash of the writer (a reader sees the old or the new file).  It
    does not fsync: what is written this way (runtime state under the exec root,
    files of a container) is not needed after a power loss."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)
