"""Volume and mount-point records (engine types; the HTTP layer builds Docker's JSON from them)."""
from __future__ import annotations

from dataclasses import dataclass

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
DEFAULT_DRIVER = "local"

# Mount types, as Docker names them.
VOLUME = "volume"
BIND = "bind"
TMPFS = "tmpfs"


@dataclass(frozen=True)
class Volume:
    name: str
    driver: str
    mountpoint: str
    created_at: str                  # RFC 3339, seconds, as dockerd shows it
    # None when the creator gave none (dockerd shows null then, {} for an empty map)
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None
    scope: str = "local"

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in (self.labels or {})


@dataclass(frozen=True)
class MountPoint:
    """One mount of a container (Docker's MountPoint), resolved at create.

    ``source`` is the host path (bind) or the volume's mount point (volume);
    ``name``/``driver`` name the volume.  ``mode`` is what the user wrote after
    the second colon of ``-v`` ("z" for named volumes given without one, as dockerd).
    ``tmpfs_data`` is the tmpfs mount data (size=..,mode=..).  ``from_binds`` tells
    a ``-v`` bind (missing host directory is created) from a ``--mount`` one.
    """

    type: str
    destination: str
    source: str = ""
    name: str = ""
    driver: str = ""
    mode: str = ""
    rw: bool = True
    propagation: str = ""
    copy_data: bool = True
    tmpfs_data: str = ""
    from_binds: bool = False
    non_recursive: bool = False
    tmpfs_options: tuple[str, ...] = ()   # extra mount flags of a tmpfs (exec/noexec)
    subpath: str = ""                     # --mount volume-subpath: a directory inside the volume
    # read-only binds are recursively read-only ("rro") unless bind-recursive=writable asked otherwise
    ro_non_recursive: bool = False
    ro_force_recursive: bool = False
