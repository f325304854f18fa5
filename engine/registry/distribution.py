"""``RegistryAPI`` over HTTP: the distribution spec's endpoints through ``RegistryClient``."""
from __future__ import annotations

import hashlib

from . import client as C
from .auth import AuthConfig
from .client import RegistryClient, RegistryConfig
from .pull import fetch_manifest


def blob_size(cli: RegistryClient, repo: str, digest: str, scopes: tuple[str, ...]) -> int | None:
    resp = cli.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes)
    if resp.status_code == 200:
        return int(resp.headers.get("Content-Length") or 0)
    if resp.status_code == 404:
        return None
    cli.check(resp)
    return None


def upload_location(cli: RegistryClient, resp_location: str | None) -> str:
    from ..errors import EngineError

    if not resp_location:
        raise EngineError("registry did not return an upload location")
    return cli.url(resp_location) if resp_location.startswith("/") else resp_location


def with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def try_mount(cli: RegistryClient, repo: str, digest: str, from_repo: str) -> bool:
    """Cross-repository mount; a refusal opens an upload, which is cancelled."""
    scopes = (f"repository:{repo}:pull,push", f"repository:{from_repo}:pull")
    resp = cli.request("POST", f"/v2/{repo}/blobs/uploads/", scopes, params={"mount": digest, "from": from_repo})
    if resp.status_code == 201:
        return True
    if resp.status_code == 202:
        loc = resp.headers.get("Location")
        if loc:
            cli.request("DELETE", upload_location(cli, loc), scopes)
        return False
    cli.check(resp)
    return False


def upload_bytes(cli: RegistryClient, repo: str, data: bytes, scopes: tuple[str, ...]) -> str:
    """Monolithic upload: POST, then PUT ?digest= with the whole body (skipped when present)."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if blob_size(cli, repo, digest, scopes) is not None:
        return digest
    resp = cli.check(cli.request("POST", f"/v2/{repo}/blobs/uploads/", scopes))
    loc = upload_location(cli, resp.headers.get("Location"))
    cli.check(cli.request("PUT", with_digest(loc, digest), scopes, content=data,
                          headers={"Content-Type": "application/octet-stream"}))
    return digest


class HttpRepository:
    def __init__(self, cli: RegistryClient, path: str) -> None:
        self._cli = cli
        self.path = path
        self._pull = C.pull_scope(path)
        self._push = C.push_scope(path)

    def tags(self) -> list[str]:
        resp = self._cli.check(self._cli.request("GET", f"/v2/{self.path}/tags/list", self._pull))
        return sorted((resp.json() or {}).get("tags") or [])

    def get_manifest(self, ref: str) -> tuple[bytes, str, str]:
        return fetch_manifest(self._cli, self.path, ref, self._pull)

    def put_manifest(self, ref: str, media_type: str, body: bytes) -> str:
        resp = self._cli.check(self._cli.request("PUT", f"/v2/{self.path}/manifests/{ref}", self._push,
                                                 content=body, headers={"Content-Type": media_type}))
        return resp.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()

    def blob_size(self, digest: str) -> int | None:
        return blob_size(self._cli, self.path, digest, self._pull)

    def get_blob(self, digest: str) -> bytes:
        return b"".join(chunk for _, chunk in self._cli.iter_blob(self.path, digest, self._pull))

    def put_blob(self, data: bytes) -> str:
        return upload_bytes(self._cli, self.path, data, self._push)

    def mount_blob(self, digest: str, from_repo: str) -> bool:
        return try_mount(self._cli, self.path, digest, from_repo)


class HttpRegistry:
    def __init__(self, domain: str, auth: AuthConfig, config: RegistryConfig) -> None:
        self._cli = RegistryClient(domain, auth, config)

    def ping(self) -> None:
        self._cli.ping()

    def repository(self, path: str) -> HttpRepository:
        return HttpRepository(self._cli, path)

    def close(self) -> None:
        self._cli.close()
