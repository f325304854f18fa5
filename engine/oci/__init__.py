"""OCI runtime-spec building (pure functions): ``build_spec(SpecInput)`` and ``resolve_user_from``.

Nothing here touches the host, the rootfs or the runtime: what the spec needs
from them is read by the bundle step (``engine.containers.hostaccess``) and
passed in.

Exports are lazy: the container init imports ``engine.oci.caps`` and must stay cheap.
"""
from __future__ import annotations


def __getattr__(name: str) -> object:
    if name in ("SpecInput", "build_spec"):
        from engine.oci import spec
        return getattr(spec, name)
    if name == "resolve_user_from":
        from engine.oci.user import resolve_user_from
        return resolve_user_from
    raise AttributeError(name)
