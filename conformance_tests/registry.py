"""A private Docker registry (Debian's docker-registry, distribution 2.x) on 127.0.0.1.

Loopback registries are trusted over plain HTTP by every daemon, so no TLS or
--insecure-registry flag is needed.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import socket
import subprocess
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

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

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_registry(root: Path, users: dict[str, str] | None = None) -> Registry:
    """Start a registry; with ``users`` it requires basic auth against an htpasswd file (bcrypt)."""
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
    reg = Registry(root, port, proc)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {proc.returncode}: {(root / 'registry.log').read_text()}")
        try:
            with urllib.request.urlopen(f"http://{reg.address}/v2/", timeout=2) as resp:
                return resp.status == 200
        except urllib.error.HTTPError as err:
            return err.code == 401 and bool(users)
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
    base = f"http://{reg.address}"
    req = urllib.request.Request(f"{base}/v2/{repo}/blobs/uploads/", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=30) as resp:
        location = resp.headers["Location"]
    if location.startswith("/"):
        location = base + location
    sep = "&" if "?" in location else "?"
    req = urllib.request.Request(f"{location}{sep}digest={digest}", method="PUT", data=data,
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 201, resp.status
    return digest


def put_manifest(reg: Registry, repo: str, ref: str, body: bytes, media_type: str) -> str:
    req = urllib.request.Request(f"http://{reg.address}/v2/{repo}/manifests/{ref}", method="PUT", data=body,
                                 headers={"Content-Type": media_type})
    with urllib.request.urlopen(req, timeout=30) as resp:
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
