"""The registry side of the engine: pull, push, login, distribution inspect.

All methods block (network, disk); callers run them in threads.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .. import gojson
from ..errors import EngineError, InvalidParameter
from ..images import reference as refs
from ..images.reference import Reference
from ..images.store import ImageStore
from ..state.db import Database
from . import client as C
from .auth import AuthConfig
from .client import RegistryClient, RegistryConfig
from .metadata import BlobMetadata
from .progress import Emit
from .pull import Platform, Puller, fetch_manifest, parse_platform, translate_pull_error
from .push import Pusher


def parse_pull_reference(image: str, tag: str) -> Reference:
    """``fromImage`` + ``tag`` as dockerd combines them (tag may be a digest)."""
    ref = refs.parse_normalized(image)
    if tag:
        if ":" in tag and tag.split(":", 1)[0] in ("sha256", "sha384", "sha512"):
            refs.validate_digest(tag)
            ref = Reference(ref.domain, ref.path, None, tag)
        else:
            ref = ref.name_only().with_tag(tag)
    return ref


class EventPublisher(Protocol):
    def publish_action(self, type_: str, action: str, actor_id: str, attributes: dict[str, str]) -> None: ...


@dataclass(frozen=True)
class SearchResult:
    name: str
    description: str
    star_count: int
    is_official: bool
    is_automated: bool


class RegistryService:
    def __init__(self, images: ImageStore, db: Database, config: RegistryConfig,
                 events: EventPublisher | None = None) -> None:
        self.images = images
        self.config = config
        self.metadata = BlobMetadata(db)
        self._events = events

    def _publish(self, action: str, actor: str, name: str) -> None:
        if self._events is not None:
            self._events.publish_action("image", action, actor, {"name": name})

    def client(self, domain: str, auth: AuthConfig) -> RegistryClient:
        return RegistryClient(domain, auth, self.config)

    # -- pull -------------------------------------------------------------------
    def pull(self, ref: Reference, auth: AuthConfig, emit: Emit, platform: str = "") -> list[str]:
        """Pull a tag, a digest, or every tag of a bare name; returns the familiar names pulled.
        Once all are in, one "pull" event each: the actor is the reference, `name` its repository."""
        want: Platform | None = parse_platform(platform)
        puller = Puller(self.images, self.metadata, self.config)
        if ref.tag is not None or ref.digest is not None:
            out = [puller.pull(ref, auth, emit, want)]
        else:
            out = [puller.pull(ref.with_tag(tag), auth, emit, want) for tag in self.list_tags(ref, auth)]
        for name in out:
            repo = name.split("@", 1)[0]
            if ":" in repo.rsplit("/", 1)[-1]:
                repo = repo.rsplit(":", 1)[0]
            self._publish("pull", name, repo)
        return out

    def list_tags(self, ref: Reference, auth: AuthConfig) -> list[str]:
        with self.client(ref.domain, auth) as cli:
            try:
                resp = cli.check(cli.request("GET", f"/v2/{ref.path}/tags/list", C.pull_scope(ref.path)))
            except Exception as err:  # noqa: BLE001 - translate_pull_error gives every failure dockerd's words
                raise translate_pull_error(err, ref) from None
            return sorted((resp.json() or {}).get("tags") or [])

    # -- push -------------------------------------------------------------------
    def push(self, name: str, tag: str, auth: AuthConfig, emit: Emit) -> None:
        ref = refs.parse_normalized(name)
        if tag:
            ref = ref.name_only().with_tag(tag)
        elif ref.digest is not None:
            raise InvalidParameter("cannot push a digest reference")
        Pusher(self.images, self.metadata, self.config).push(ref, auth, emit)
        self._publish("push", f"{name}:{tag}" if tag else name, name)

    # -- search -----------------------------------------------------------------
    def search(self, term: str, limit: int, flt: dict[str, list[str]]) -> list[SearchResult]:
        """`docker search`, with dockerd's is-official, is-automated and stars filters."""
        out: list[SearchResult] = []
        for r in search(self.config, term, limit):
            found = SearchResult(name=str(r.get("name", "")), description=str(r.get("description", "")),
                                 star_count=int(r.get("star_count") or 0), is_official=bool(r.get("is_official")),
                                 is_automated=bool(r.get("is_automated")))
            if "is-official" in flt and str(found.is_official).lower() not in flt["is-official"]:
                continue
            if "is-automated" in flt and str(found.is_automated).lower() not in flt["is-automated"]:
                continue
            if "stars" in flt and any(found.star_count < int(v) for v in flt["stars"]):
                continue
            out.append(found)
        return out

    # -- login ------------------------------------------------------------------
    def login(self, auth: AuthConfig) -> str:
        """Validate credentials against the registry; returns an identity token or ""."""
        address = auth.server_address or C.DEFAULT_INDEX
        domain = _server_domain(address)
        with self.client(domain, auth) as cli:
            return cli.login()

    # -- distribution inspect ---------------------------------------------------
    def inspect_distribution(self, name: str, auth: AuthConfig) -> dict[str, Any]:
        ref = refs.parse_normalized(name)
        if ref.tag is None and ref.digest is None:
            ref = ref.with_default_tag()
        target = ref.digest or ref.tag or refs.DEFAULT_TAG
        with self.client(ref.domain, auth) as cli:
            try:
                body, media, digest = fetch_manifest(cli, ref.path, target, C.pull_scope(ref.path))
            except Exception as err:  # noqa: BLE001 - translate_pull_error gives every failure dockerd's words
                raise translate_pull_error(err, ref) from None
            doc = gojson.loads(body)
            platforms: list[dict[str, Any]] = []
            if media in (C.MEDIA_DOCKER_LIST, C.MEDIA_OCI_INDEX):
                for e in doc.get("manifests") or []:
                    p = e.get("platform") or {}
                    platforms.append(_platform_json(p))
            else:
                cfg_digest = (doc.get("config") or {}).get("digest") or ""
                data = b"".join(c for _, c in cli.iter_blob(ref.path, cfg_digest, C.pull_scope(ref.path)))
                cfg = gojson.loads(data)
                platforms.append(_platform_json({"architecture": cfg.get("architecture", ""),
                                                 "os": cfg.get("os", ""), "variant": cfg.get("variant", "")}))
        return {"Descriptor": {"mediaType": media, "digest": digest, "size": len(body)},
                "Platforms": platforms}


def _platform_json(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"architecture": p.get("architecture", ""), "os": p.get("os", "")}
    if p.get("os.version"):
        out["os.version"] = p["os.version"]
    if p.get("os.features"):
        out["os.features"] = p["os.features"]
    if p.get("variant"):
        out["variant"] = p["variant"]
    return out


def _server_domain(address: str) -> str:
    """``serveraddress`` as the CLI sends it: a host, or a URL like https://index.docker.io/v1/."""
    a = address.strip()
    for prefix in ("https://", "http://"):
        if a.startswith(prefix):
            a = a[len(prefix):]
    a = a.split("/", 1)[0]
    if not a:
        raise InvalidParameter("invalid registry address")
    if a in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return C.DEFAULT_INDEX
    return a


def certs_dir_default() -> Path:
    return Path("/etc/pydockerd/certs.d")


# -- search ---------------------------------------------------------------------------

def _nameserver() -> str:
    try:
        for line in Path("/etc/resolv.conf").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                return parts[1]
    except OSError:
        pass
    return ""


def search(config: RegistryConfig, term: str, limit: int) -> list[dict[str, Any]]:
    """``GET /images/search``: the v1 search API of the index named in ``term``.

    Docker Hub (the default index) is never contacted: this daemon has no outside network, so
    the answer is the error dockerd gives when the index cannot be resolved.  A registry named
    in the term (``host:port/name``) is asked like dockerd asks it.
    """
    import httpx

    if limit < 1 or limit > 100:
        raise InvalidParameter(f"Limit {limit} is outside the range of [1, 100]")
    index, _, remote = term.partition("/")
    if not remote or not (any(c in index for c in ".:") or index == "localhost") \
            or index in ("docker.io", "index.docker.io"):
        index, remote = C.DEFAULT_INDEX, term
    if index == C.DEFAULT_INDEX:
        url = f"https://index.docker.io/v1/search?q={_query_escape(remote)}&n={limit}"
        ns = _nameserver()
        where = f" on {ns}:53" if ns else ""
        raise EngineError(f'Get "{url}": dial tcp: lookup index.docker.io{where}: no such host')
    if not config.is_insecure(index) and not ipaddress_is_local(index):
        raise EngineError(f'Get "https://{index}/v1/_ping": dial tcp: lookup {index}: no such host')
    attempts: list[str] = []
    for scheme in ("https", "http"):
        ping = f"{scheme}://{index}/v1/_ping"
        try:
            with httpx.Client(verify=False, timeout=15) as cl:
                cl.get(ping)
                resp = cl.get(f"{scheme}://{index}/v1/search", params={"q": remote, "n": str(limit)})
        except httpx.HTTPError as err:
            attempts.append(f"{scheme.upper()} attempt: {C.go_url_error('GET', ping, err, index)}")
            continue
        if resp.status_code != 200:
            raise EngineError(f"Unexpected status code {resp.status_code}")
        return list((resp.json() or {}).get("results") or [])
    raise EngineError(f'invalid registry endpoint "http://{index}/v1/". ' + ". ".join(attempts))


def _query_escape(s: str) -> str:
    from urllib.parse import quote_plus
    return quote_plus(s)


def ipaddress_is_local(host: str) -> bool:
    return RegistryConfig().is_insecure(host)
