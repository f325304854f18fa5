"""The errors of a failed container (or exec) start, classified and worded like dockerd's."""
from __future__ import annotations

from engine.errors import Conflict, EngineError, InvalidParameter


class StartFailed(EngineError):
    """The container could not be created (HTTP 500); ``exit_code`` is what dockerd records."""

    def __init__(self, message: str, exit_code: int = 128) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NotRunning(Conflict):
    """The shim answered that its container's process has exited (it is finishing up)."""


class InvalidStartConfig(InvalidParameter):
    """The command or a mount is wrong (HTTP 400): exit code 127 or 126."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def start_error(detail: str, exit_code: int = 128, *, exec_: bool = False) -> EngineError:
    """dockerd's classification and wording of a failed container (or exec) start."""
    if exec_:
        message = f"OCI runtime exec failed: exec failed: unable to start container process: {detail}: unknown"
    else:
        message = (
            "failed to create shim task: OCI runtime create failed: runc create failed: "
            f"unable to start container process: {detail}: unknown"
        )
    if "executable file not found" in detail or "no such file or directory" in detail:
        return InvalidStartConfig(message, 127)
    if "permission denied" in detail:
        return InvalidStartConfig(message, 126)
    if "not a directory" in detail:
        return InvalidStartConfig(
            message + ": Are you trying to mount a directory onto a file (or vice-versa)? "
            "Check if the specified host path exists and is the expected type", 127)
    return StartFailed(message, exit_code if exit_code not in (0, 126, 127) else 128)
