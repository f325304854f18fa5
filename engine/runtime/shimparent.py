"""The shim parent: one preloaded interpreter that forks a shim per container.

A fresh interpreter per shim costs an interpreter start and the imports at every
``docker run``, and each shim then holds its own copy of every module it loaded
(~6-9 MiB of private memory).  Instead the daemon starts this process once (a
fresh interpreter, never a fork of the asyncio server), it imports everything a
shim and a container init need, freezes its heap (``gc.freeze()``: the children's
collector never writes to the parent's objects) and forks one child per request.
The children share the parent's pages copy-on-write.

Protocol on fd 0, a SOCK_SEQPACKET socketpair whose other end the daemon holds::

    parent -> daemon   b"ready"                         preloaded, serving
    daemon -> parent   JSON shim options + SCM_RIGHTS [report pipe, stderr]
    parent -> daemon   {"ok": true}                     the shim is forked
                       {"ok": false, "message": ...}    it could not be

The report pipe becomes the shim's stdout: the shim writes its one JSON report
line there exactly as a freshly started shim does (``engine.runtime.shim``), so
the daemon reads the outcome of the create the same way for both.

Each child does ``setsid`` and forks again (the intermediate exits at once and the
parent reaps it), so a shim is in its own session, nobody's child, and outlives
both this parent and the daemon.  Before it runs any shim code the child replaces
fds 0-2 with its own and closes every other descriptor: nothing of the parent (the
daemon's socket, the parent's log) reaches the shim or its container.

EOF on fd 0 means the daemon went away (or closed the runtime): the parent exits;
the shims it forked are not affected.  A new daemon starts a new parent.
"""
from __future__ import annotations

import gc
import json
import os
import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_REQUEST = 1 << 20


def preload() -> None:
    """Import what a shim, a container init and an exec use, once, here; read the
    host's cgroup mounts once (see cgroups.remember_mounts) and make the syscall
    interface every child uses (see linux.linux_syscalls)."""
    import fcntl  # noqa: F401
    import hashlib  # noqa: F401
    import struct  # noqa: F401
    import traceback  # noqa: F401

    import engine.oci.caps
    import engine.runtime.init
    import engine.runtime.seccomp
    import engine.runtime.shim
    import engine.runtime.syscall_table_x86_64
    from engine.runtime import cgroups
    from engine.runtime.linux import linux_syscalls
    cgroups.remember_mounts()
    linux_syscalls()
    try:
        import engine.logs.jsonfile  # noqa: F401
    except ImportError:  # a test tree without the log driver uses an override
        pass


def set_title(title: str) -> bool:
    """Write ``title`` over this process's original argv (what /proc/PID/cmdline and
    ps show), NUL padded; it is cut to the space the parent's argv had.  Children
    use it so that each shim names its bundle, as a freshly started shim does."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48, 49)
        room = end - start
        data = title.encode()[: room - 1]
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            mem.write(data + b"\0" * (room - len(data)))
        return True
    except (OSError, ValueError, IndexError):
        return False


def _child(fds: list[int], opts: dict[str, Any]) -> None:
    """In the forked child: become the container's shim.  Never returns."""
    code = 1
    try:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)  # the intermediate: the parent reaps it, the shim is orphaned
        report_w, err = fds[0], fds[1]
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(report_w, 1)
        os.dup2(err, 2)
        os.closerange(3, 1 << 20)  # the parent's socket, log, and the received fds' originals
        set_title(f"pydockerd engine.runtime.shim {opts.get('bundle', '')}")
        from engine.runtime import shim
        os.chdir(opts["bundle"])
        shim.run(opts)
        code = 0
    except BaseException:  # noqa: BLE001 - never return into the parent's loop
        import traceback
        traceback.print_exc()
    finally:
        os._exit(code)


def serve(sock: socket.socket) -> None:
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, MAX_REQUEST, 4)
        except InterruptedError:
            continue
        except OSError:
            return
        if not msg:
            for fd in fds:
                os.close(fd)
            return  # the daemon is gone
        reply: dict[str, Any] = {"ok": True}
        try:
            if len(fds) != 2:
                raise ValueError(f"expected 2 descriptors, got {len(fds)}")
            opts = json.loads(msg)
            pid = os.fork()
            if pid == 0:
                _child(fds, opts)
            os.waitpid(pid, 0)
        except (OSError, ValueError) as e:
            reply = {"ok": False, "message": f"shim parent: {e}"}
        finally:
            for fd in fds:
                os.close(fd)
        try:
            sock.send(json.dumps(reply).encode())
        except OSError:
            return


def main(argv: list[str] | None = None) -> None:
    sock = socket.socket(fileno=0)
    preload()
    # Collect once, then move every object to the permanent generation: the
    # children's collections never touch (and so never copy) the parent's heap.
    gc.collect()
    gc.freeze()
    sock.send(b"ready")
    serve(sock)
    os._exit(0)


if __name__ == "__main__":
    main()
