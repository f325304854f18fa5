"""Resolve a container's ``User`` ("name", "uid", "name:group", "uid:gid") against
the image's /etc/passwd and /etc/group, the way dockerd does.

Pure: the files come through ``read`` ("/etc/passwd" -> its text, or None when
the image has none).  ``engine.containers.hostaccess.resolve_user`` reads them
from a rootfs, with symlinks resolved inside it.
"""
from __future__ import annotations

from collections.abc import Callable

from engine.errors import InvalidParameter

_MAX_ID = 2147483647

ReadFile = Callable[[str], "str | None"]


def _entries(text: str | None, nfields: int) -> list[list[str]]:
    out: list[list[str]] = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < nfields:
            parts += [""] * (nfields - len(parts))
        out.append(parts)
    return out


def _numeric(value: str) -> int | None:
    if value.lstrip("-").isdigit():
        n = int(value)
        if n < 0 or n > _MAX_ID:
            raise InvalidParameter("uids and gids must be in range 0-2147483647")
        return n
    return None


def resolve_user_from(user: str, read: ReadFile) -> tuple[int, int, list[int]]:
    """-> (uid, gid, additional_gids); additional_gids starts with the primary gid."""
    user_part, _, group_part = (user or "").partition(":")
    passwd = _entries(read("/etc/passwd"), 7)
    uid, gid = 0, 0
    name: str | None = None
    matched = False

    num = _numeric(user_part) if user_part else 0
    if user_part and num is None:
        for p in passwd:
            if p[0] == user_part:
                uid, gid, name, matched = _safe_int(p[2]), _safe_int(p[3]), p[0], True
                break
        else:
            raise InvalidParameter(f"unable to find user {user_part}: no matching entries in passwd file")
    else:
        uid = num or 0
        for p in passwd:
            if p[2].isdigit() and int(p[2]) == uid:
                gid, name, matched = _safe_int(p[3]), p[0], True
                break

    groups_text: str | None = None
    if group_part:
        gnum = _numeric(group_part)
        if gnum is None:
            groups_text = read("/etc/group")
            for g in _entries(groups_text, 4):
                if g[0] == group_part:
                    gid = _safe_int(g[2])
                    break
            else:
                raise InvalidParameter(f"unable to find group {group_part}: no matching entries in group file")
        else:
            gid = gnum
        return uid, gid, [gid]

    extra: list[int] = []
    if matched and name is not None:
        groups_text = read("/etc/group")
        for g in _entries(groups_text, 4):
            members = [m.strip() for m in g[3].split(",") if m.strip()]
            if name in members and g[2].isdigit():
                extra.append(int(g[2]))
    gids = [gid] + sorted({x for x in extra if x != gid})
    return uid, gid, gids


def _safe_int(v: str) -> int:
    try:
        return int(v)
    except ValueError:
        return 0
