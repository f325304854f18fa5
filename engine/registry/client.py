"""A small client for the registry HTTP API v2 (the "distribution" protocol), on httpx.

One ``RegistryClient`` talks to one registry host for one operation.  It finds
the endpoint the way dockerd does (https first; plain http only for insecure
registries: loopback, ``--insecure-registry`` entries), answers auth
challenges (bearer tokens cached per scope, or basic auth) and turns registry
errors into dockerd's words.  It is synchronous: pulls and pushes run in
worker threads, with a few threads for parallel layer transfers.
"""
from __future__ import annotations

import base64
import ipaddress
import re
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ..errors import EngineError, NotFound, Unauthorized
from .auth import AuthConfig

DEFAULT_INDEX = "docker.io"
INDEX_HOST = "registry-1.docker.io"
USER_AGENT = "docker/28.2.2 go/go1.24 (pydockerd)"

MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_ACCEPT = ", ".join([MEDIA_DOCKER_MANIFEST, MEDIA_DOCKER_LIST, MEDIA_OCI_MANIFEST, MEDIA_OCI_INDEX])


@dataclass(frozen=True)
class RegistryConfig:
    insecure: tuple[str, ...] = ()      # --insecure-registry: host[:port] or CIDR
    mirrors: tuple[str, ...] = ()       # --registry-mirror (accepted; docker.io is never contacted here)
    certs_dir: Path = Path("/etc/pydockerd/certs.d")

    def is_insecure(self, host: str) -> bool:
        """dockerd's rule: listed hosts, hosts whose IP is in a listed CIDR, and loopback."""
        if host in self.insecure:
            return True
        name = host
        if name.startswith("["):
            name = name[1:].split("]", 1)[0]
        elif name.count(":") == 1:
            name = name.split(":", 1)[0]
        if name == "localhost":
            return True
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return False
        if ip.is_loopback:
            return True
        for entry in self.insecure:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        return False


class RegistryError(EngineError):
    """An error the registry answered with (``{"errors": [{"code", "message"}]}``)."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RegistryNotFound(RegistryError, NotFound):
    pass


class RegistryUnauthorized(RegistryError, Unauthorized):
    pass


def registry_host(domain: str) -> str:
    return INDEX_HOST if domain == DEFAULT_INDEX else domain


def _error_text(resp: httpx.Response) -> tuple[str, str]:
    """(Go's errcode text ``"<code words>: <message>"``, first code)."""
    try:
        errors = resp.json().get("errors") or []
    except (ValueError, AttributeError):
        errors = []
    parts: list[str] = []
    first = ""
    for e in errors:
        if not isinstance(e, dict):
            continue
        code = str(e.get("code") or "UNKNOWN")
        first = first or code
        words = code.lower().replace("_", " ")
        msg = str(e.get("message") or words)
        parts.append(f"{words}: {msg}")
    if not parts:
        if resp.status_code == 401:
            return "unauthorized: authentication required", "UNAUTHORIZED"
        return f"received unexpected HTTP status: {resp.status_code} {resp.reason_phrase}", ""
    return ", ".join(parts), first


_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), {k.lower(): v for k, v in _CHALLENGE_RE.findall(rest)}


def go_url_error(method: str, url: str, err: Exception, host: str) -> str:
    """The words Go's net/http uses for transport failures."""
    verb = method[:1] + method[1:].lower()
    text = str(err)
    if isinstance(err, httpx.ConnectError):
        if "refused" in text.lower():
            text = f"dial tcp {host}: connect: connection refused"
        elif "Name or service not known" in text or "nodename nor servname" in text:
            text = f"dial tcp: lookup {host.rsplit(':', 1)[0]}: no such host"
    elif isinstance(err, httpx.TimeoutException):
        text = (
            "net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)"
        )
    if "CERTIFICATE_VERIFY_FAILED" in text:
        text = "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    elif "BAD_CERTIFICATE" in text or "CERTIFICATE_REQUIRED" in text:
        text = "remote error: tls: bad certificate"
    return f'{verb} "{url}": {text}'


class RegistryClient:
    """Talks to one registry host with one set of credentials."""

    def __init__(self, domain: str, auth: AuthConfig, config: RegistryConfig) -> None:
        self.domain = domain
        self.host = registry_host(domain)
        self.auth = auth
        self.config = config
        self.insecure = config.is_insecure(self.host)
        self.base: str | None = None
        self._client: httpx.Client | None = None
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._tokens: dict[tuple[str, ...], str] = {}
        self.refresh_token = ""
        self._lock = threading.Lock()

    # -- transport --------------------------------------------------------------
    def _tls(self, verify_insecure: bool) -> ssl.SSLContext | bool:
        ctx = ssl.create_default_context()
        d = self.config.certs_dir / self.host
        if d.is_dir():
            for ca in sorted(d.glob("*.crt")):
                ctx.load_verify_locations(cafile=str(ca))
            for cert in sorted(d.glob("*.cert")):
                key = cert.with_suffix(".key")
                if key.exists():
                    ctx.load_cert_chain(str(cert), str(key))
        if verify_insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _new_client(self, scheme: str) -> httpx.Client:
        verify: Any = self._tls(self.insecure) if scheme == "https" else False
        return httpx.Client(verify=verify, timeout=httpx.Timeout(60.0, connect=15.0),
                            headers={"User-Agent": USER_AGENT}, follow_redirects=True,
                            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> None:
        """GET /v2/ on each candidate endpoint: https, then http for insecure registries."""
        if self.base is not None:
            return
        schemes = ["https", "http"] if self.insecure else ["https"]
        last: Exception | None = None
        for scheme in schemes:
            client = self._new_client(scheme)
            url = f"{scheme}://{self.host}/v2/"
            try:
                resp = client.get(url)
            except httpx.HTTPError as err:
                client.close()
                last = EngineError(go_url_error("GET", url, err, self.host))
                continue
            if resp.status_code == 401 and resp.headers.get("WWW-Authenticate"):
                self._challenge = parse_challenge(resp.headers["WWW-Authenticate"])
            elif resp.status_code >= 400 and resp.status_code != 401:
                client.close()
                last = RegistryError(_error_text(resp)[0], resp.status_code)
                continue
            self._client, self.base = client, f"{scheme}://{self.host}"
            return
        assert last is not None
        raise last

    # -- auth ---------------------------------------------------------------------
    def _token(self, scopes: tuple[str, ...], verb: str = "Get", target: str = "", offline: bool = False) -> str:
        assert self._challenge is not None and self._client is not None
        with self._lock:
            cached = self._tokens.get(scopes)
        if cached:
            return cached
        params = self._challenge[1]
        realm = params.get("realm", "")
        query: list[tuple[str, str | int | float | bool | None]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        for s in scopes:
            query.append(("scope", s))
        basic = None
        if self.auth.username:
            query.append(("account", self.auth.username))
            basic = (self.auth.username, self.auth.password)
        if offline:
            # login asks for a refresh token too: the CLI keeps it as the identity token
            query += [("client_id", "docker"), ("offline_token", "true")]
        try:
            if self.auth.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": self.auth.identity_token,
                        "service": params.get("service", ""), "client_id": "docker", "scope": " ".join(scopes)}
                resp = self._client.post(realm, data=form)
            else:
                resp = self._client.get(realm, params=query, auth=basic)
        except httpx.HTTPError as err:
            raise EngineError(go_url_error("GET", realm, err, self.host)) from None
        if resp.status_code == 401:
            # Go's token handler: the token server's "details" become an "unauthorized" error
            # of the request that needed the token.
            try:
                details = str((resp.json() or {}).get("details") or "")
            except ValueError:
                details = ""
            text = f"unauthorized: {details}" if details else _error_text(resp)[0]
            raise RegistryUnauthorized(f'{verb} "{target or self.url("/v2/")}": {text}', 401, "UNAUTHORIZED")
        if resp.status_code != 200:
            raise RegistryError(f"token auth attempt for registry: {realm}: "
                                f"{resp.status_code} {resp.reason_phrase}", resp.status_code)
        body = resp.json()
        token = body.get("token") or body.get("access_token") or ""
        self.refresh_token = str(body.get("refresh_token") or "")
        with self._lock:
            self._tokens[scopes] = token
        return token

    def _auth_header(self, scopes: tuple[str, ...], verb: str = "Get", target: str = "") -> dict[str, str]:
        if self._challenge is None:
            return {}
        scheme, _ = self._challenge
        if scheme == "bearer":
            return {"Authorization": f"Bearer {self._token(scopes, verb, target)}"}
        if scheme == "basic" and self.auth.username:
            raw = f"{self.auth.username}:{self.auth.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def _require_credentials(self, verb: str, url: str) -> None:
        """Go's basic-auth handler fails before sending when it has nothing to send."""
        if self._challenge is not None and self._challenge[0] == "basic" and not self.auth.username:
            raise EngineError(f'{verb} "{url}": no basic auth credentials')

    def login(self) -> str:
        """Check the credentials: ping, then a token (bearer) or an authenticated /v2/ (basic).

        Returns the identity token (an OAuth refresh token) when the token server gave one."""
        self.ping()
        assert self._client is not None and self.base is not None
        if self._challenge is None:
            return ""
        if self._challenge[0] == "bearer":
            self._token((), offline=bool(self.auth.username) and not self.auth.identity_token)
            return self.refresh_token
        url = f"{self.base}/v2/"
        self._require_credentials("Get", url)
        resp = self._client.get(url, headers=self._auth_header(()))
        if resp.status_code == 401:
            raise RegistryUnauthorized(f"login attempt to {url} failed with status: 401 Unauthorized", 401,
                                       "UNAUTHORIZED")
        return ""

    # -- requests -----------------------------------------------------------------
    def url(self, path: str) -> str:
        assert self.base is not None
        return path if path.startswith("http") else f"{self.base}{path}"

    def request(self, method: str, path: str, scopes: tuple[str, ...], *, stream: bool = False,
                headers: dict[str, str] | None = None, shown_verb: str = "", **kw: Any) -> httpx.Response:
        self.ping()
        assert self._client is not None
        url = self.url(path)
        verb = shown_verb or method[:1] + method[1:].lower()
        self._require_credentials(verb, url)
        hdrs = dict(headers or {})
        hdrs.update(self._auth_header(scopes, verb, url))
        try:
            req = self._client.build_request(method, url, headers=hdrs, **kw)
            resp = self._client.send(req, stream=stream)
            if resp.status_code == 401 and resp.headers.get("WWW-Authenticate") and self._challenge is None:
                # The registry asked for auth only now (e.g. /v2/ was open): answer once.
                resp.close()
                self._challenge = parse_challenge(resp.headers["WWW-Authenticate"])
                hdrs.update(self._auth_header(scopes))
                req = self._client.build_request(method, url, headers=hdrs, **kw)
                resp = self._client.send(req, stream=stream)
        except httpx.HTTPError as err:
            raise EngineError(go_url_error(method, url, err, self.host)) from None
        return resp

    def check(self, resp: httpx.Response) -> httpx.Response:
        """Raise the registry's error for a failed response."""
        if resp.status_code < 400:
            return resp
        if not resp.is_closed:
            resp.read()
        text, code = _error_text(resp)
        if resp.status_code == 401 and 'error="insufficient_scope"' in resp.headers.get("WWW-Authenticate", ""):
            # Go's registry client: a token without the needed rights means "denied".
            text, code = "denied: requested access to the resource is denied", "DENIED"
            raise RegistryError(text, 401, code)
        if resp.status_code == 401:
            raise RegistryUnauthorized(text, 401, code)
        if resp.status_code == 404:
            raise RegistryNotFound(text, 404, code)
        raise RegistryError(text, resp.status_code, code)

    def iter_blob(self, repo: str, digest: str, scopes: tuple[str, ...]) -> Iterator[tuple[int, bytes]]:
        """Yield (Content-Length, chunk) pairs of a blob."""
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", scopes, stream=True)
        try:
            self.check(resp)
            total = int(resp.headers.get("Content-Length") or 0)
            try:
                for chunk in resp.iter_bytes(1 << 20):
                    yield total, chunk
            except httpx.HTTPError as err:
                raise EngineError(f"error pulling blob {digest}: {err}") from None
        finally:
            resp.close()


def pull_scope(repo: str) -> tuple[str, ...]:
    return (f"repository:{repo}:pull",)


def push_scope(repo: str) -> tuple[str, ...]:
    return (f"repository:{repo}:push,pull",)

