"""A private Docker registry (Debian's docker-registry, distribution 2.x) on 127.0.0.1.

Loopback registries are trusted over plain HTTP by every daemon, so no TLS or
--insecure-registry flag is needed.
"""
from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import io
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance_tests.harness import READY_TIMEOUT, wait_until


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    root: Path
    port: int
    proc: subprocess.Popen[bytes]
    scheme: str = "http"
    token_server: TokenServer | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.scheme != "https":
            return None
        ctx = ssl.create_default_context(cafile=str(self.root / "ca.crt"))
        ctx.load_cert_chain(str(self.root / "client.cert"), str(self.root / "client.key"))
        return ctx

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.token_server is not None:
            self.token_server.stop()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _key_and_cert(subject: str, issuer_key: Any = None, issuer_name: str = "", ca: bool = False,
                  ip: str = "") -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name or subject)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                        critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def _write_pem(path: Path, key: Any = None, cert: Any = None) -> None:
    from cryptography.hazmat.primitives import serialization
    if key is not None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    else:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_tls_files(root: Path) -> None:
    """ca.crt; server.crt/server.key for 127.0.0.1 and client.cert/client.key, both signed by it."""
    ca_key, ca_cert = _key_and_cert("pydockerd test CA", ca=True)
    key, cert = _key_and_cert("127.0.0.1", issuer_key=ca_key, issuer_name="pydockerd test CA", ip="127.0.0.1")
    _write_pem(root / "ca.crt", cert=ca_cert)
    _write_pem(root / "server.crt", cert=cert)
    _write_pem(root / "server.key", key=key)
    key, cert = _key_and_cert("test client", issuer_key=ca_key, issuer_name="pydockerd test CA")
    _write_pem(root / "client.cert", cert=cert)
    _write_pem(root / "client.key", key=key)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A bearer token issuer for docker-registry's ``auth: token``: RS256 JWTs with the certificate in x5c.

    Known users get every action they ask for; anonymous requests get ``pull`` only, and nothing
    in repositories under ``private/``; a wrong password gets 401.  ``requests`` records the scopes
    asked for.  Asked with ``offline_token=true``, it also hands out a refresh token, which the
    OAuth form (POST ``grant_type=refresh_token``) trades for tokens of its user.
    """

    def __init__(self, root: Path, users: dict[str, str]) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from cryptography.hazmat.primitives import serialization
        self.users = users
        self.requests: list[tuple[str, list[str]]] = []
        self.refresh_tokens: dict[str, str] = {}
        self.key, self.cert = _key_and_cert("test-issuer", ca=True)
        self.cert_path = root / "token.crt"
        _write_pem(self.cert_path, cert=self.cert)
        self._x5c = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                user = ""
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if server.users.get(user) != password:
                        self.send_response(401)
                        self.send_header("Content-Type", "application/json")
                        self.end_headers()
                        self.wfile.write(b'{"details":"incorrect username or password"}')
                        return
                scopes = query.get("scope", [])
                server.requests.append((user, scopes))
                answer = {"token": server.sign(user, scopes, query.get("service", [""])[0]), "expires_in": 300}
                if user and query.get("offline_token") == ["true"]:
                    refresh = f"refresh-{uuid.uuid4().hex}"
                    server.refresh_tokens[refresh] = user
                    answer["refresh_token"] = refresh
                self._answer(200, answer)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                user = server.refresh_tokens.get(form.get("refresh_token", [""])[0], "")
                if form.get("grant_type") != ["refresh_token"] or not user:
                    self._answer(401, {"details": "invalid refresh token"})
                    return
                scopes = form.get("scope", [""])[0].split()
                server.requests.append((f"refresh:{user}", scopes))
                self._answer(200, {"access_token": server.sign(user, scopes, form.get("service", [""])[0]),
                                   "expires_in": 300})

            def _answer(self, status: int, obj: dict[str, Any]) -> None:
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, user: str, scopes: list[str], service: str) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        access = []
        for scope in scopes:
            for one in scope.split(" "):
                kind, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                granted = [a for a in actions.split(",")
                           if a and (user or (a == "pull" and not name.startswith("private/")))]
                access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self._x5c]}
        claims = {"iss": "test-issuer", "sub": user, "aud": service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(sig)}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_registry(root: Path, users: dict[str, str] | None = None, *, tls: bool = False,
                   client_certs: bool = False, token_users: dict[str, str] | None = None) -> Registry:
    """Start a registry.

    ``users``: basic auth against an htpasswd file (bcrypt).  ``tls``: HTTPS with a certificate for
    127.0.0.1 from a CA made here (``root/ca.crt``).  ``token_users``: bearer token auth, with a
    small token server (``TokenServer``) that signs JWTs for those users (and for anonymous pulls).
    """
    binary = shutil.which("docker-registry")
    if binary is None:
        raise FileNotFoundError("docker-registry not installed (Debian package docker-registry)")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}/data\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    token_server = None
    if tls:
        make_tls_files(root)
        with open(config, "a") as f:
            f.write(f"  tls:\n    certificate: {root}/server.crt\n    key: {root}/server.key\n")
            if client_certs:
                # clients must show a certificate from the same CA (root/client.cert, root/client.key)
                f.write(f"    clientcas:\n      - {root}/ca.crt\n")
    if token_users is not None:
        token_server = TokenServer(root, token_users)
        with open(config, "a") as f:
            f.write(f"auth:\n  token:\n    realm: {token_server.realm}\n    service: test-registry\n"
                    f"    issuer: test-issuer\n    rootcertbundle: {token_server.cert_path}\n")
    if users:
        htpasswd = root / "htpasswd"
        htpasswd.write_text("")
        for user, password in users.items():
            subprocess.run(["htpasswd", "-B", "-b", str(htpasswd), user, password], check=True,
                           capture_output=True)
        with open(config, "a") as f:
            f.write(f"auth:\n  htpasswd:\n    realm: pydockerd-test\n    path: {htpasswd}\n")
    with open(root / "registry.log", "ab") as log:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    reg = Registry(root, port, proc, "https" if tls else "http", token_server)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {proc.returncode}: {(root / 'registry.log').read_text()}")
        try:
            with urllib.request.urlopen(f"{reg.scheme}://{reg.address}/v2/", timeout=2,
                                        context=reg.ssl_context()) as resp:
                return resp.status == 200
        except urllib.error.HTTPError as err:
            return err.code == 401 and bool(users or token_users is not None)
    try:
        wait_until(ready, READY_TIMEOUT, "docker-registry to answer /v2/")
    except BaseException:
        reg.stop()
        raise
    return reg


# --- seeding a registry without a daemon's push ----------------------------------------------------

MEDIA_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def saved_image_parts(archive: bytes) -> tuple[bytes, list[bytes]]:
    """(config JSON, uncompressed layer tars) of the first image of a ``docker save`` archive."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        entry = manifest[0]
        config = tf.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
        layers = [tf.extractfile(p).read() for p in entry["Layers"]]  # type: ignore[union-attr]
    return config, layers


def upload_blob(reg: Registry, repo: str, data: bytes) -> str:
    """Monolithic upload (POST then PUT ?digest=); returns the digest."""
    digest = sha256_digest(data)
    base = f"{reg.scheme}://{reg.address}"
    req = urllib.request.Request(f"{base}/v2/{repo}/blobs/uploads/", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=30, context=reg.ssl_context()) as resp:
        location = resp.headers["Location"]
    if location.startswith("/"):
        location = base + location
    sep = "&" if "?" in location else "?"
    req = urllib.request.Request(f"{location}{sep}digest={digest}", method="PUT", data=data,
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=60, context=reg.ssl_context()) as resp:
        assert resp.status == 201, resp.status
    return digest


def put_manifest(reg: Registry, repo: str, ref: str, body: bytes, media_type: str) -> str:
    req = urllib.request.Request(f"{reg.scheme}://{reg.address}/v2/{repo}/manifests/{ref}", method="PUT",
                                 data=body, headers={"Content-Type": media_type})
    with urllib.request.urlopen(req, timeout=30, context=reg.ssl_context()) as resp:
        return str(resp.headers["Docker-Content-Digest"])


def seed_image(reg: Registry, repo: str, tag: str, config: bytes, layers: list[bytes],
               compress: bool = True) -> str:
    """Upload an image (gzip layers by default) and tag it; returns the manifest digest."""
    descs = []
    for layer in layers:
        blob = gzip.compress(layer, compresslevel=1, mtime=0) if compress else layer
        descs.append({"mediaType": MEDIA_LAYER_GZIP if compress else MEDIA_LAYER_TAR,
                      "size": len(blob), "digest": upload_blob(reg, repo, blob)})
    manifest = {
        "schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "size": len(config), "digest": upload_blob(reg, repo, config)},
        "layers": descs,
    }
    body = json.dumps(manifest, indent=3).encode()
    put_manifest(reg, repo, tag, body, MEDIA_MANIFEST)
    return sha256_digest(body)


def blob_file(reg: Registry, digest: str) -> Path:
    """Where the filesystem storage driver keeps a blob (to tamper with it)."""
    hexpart = digest.split(":", 1)[1]
    return reg.root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexpart[:2] / hexpart / "data"


OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def upload_oci_image(reg: Registry, repo: str, layers: list[bytes], arch: str,
                     extra_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Upload an OCI image manifest (gzip layers, untagged); returns its descriptor for an index."""
    cfg = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["sh"]},
                      "rootfs": {"type": "layers", "diff_ids": [sha256_digest(l) for l in layers]},
                      **(extra_config or {})}).encode()
    descs = []
    for layer in layers:
        blob = gzip.compress(layer, mtime=0)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": len(blob),
                      "digest": upload_blob(reg, repo, blob)})
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(cfg),
                                      "digest": upload_blob(reg, repo, cfg)},
                           "layers": descs}).encode()
    digest = put_manifest(reg, repo, sha256_digest(manifest), manifest, OCI_MANIFEST)
    return {"mediaType": OCI_MANIFEST, "size": len(manifest), "digest": digest,
            "platform": {"os": "linux", "architecture": arch}}
