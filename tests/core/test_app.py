"""The HTTP app in-process (httpx ASGITransport) over a fake engine: routing, versions, errors."""
import asyncio
import json

import httpx
import pytest

from compat_server import versions
from compat_server.app import build_app
from engine.errors import NotFound


class FakeContainers:
    def __init__(self):
        self.created = []

    def get(self, ref):
        raise NotFound(f"No such container: {ref}")

    async def create(self, config, host_config, *, name):
        self.created.append((config, host_config, name))
        raise NotFound(f"No such image: {config.image}")


class FakeEngine:
    def __init__(self):
        self.containers = FakeContainers()


def call(method, path, **kw):
    app = build_app(FakeEngine())

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://docker") as client:
            return await client.request(method, path, **kw)

    return asyncio.run(go())


def test_ping_headers_bare_and_versioned():
    for path in ("/_ping", "/v1.50/_ping", "/v1.24/_ping"):
        r = call("GET", path)
        assert r.status_code == 200 and r.text == "OK"
        assert r.headers["API-Version"] == versions.MAX_API_VERSION
        assert r.headers["OSType"] == "linux"
        assert r.headers["Docker-Experimental"] == "false"
        assert r.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
        assert r.headers["Pragma"] == "no-cache"
    r = call("HEAD", "/_ping")
    assert r.status_code == 200 and r.content == b""


@pytest.mark.parametrize("path,text", [
    ("/v1.23/_ping", "client version 1.23 is too old. Minimum supported API version is 1.24"),
    ("/v9.99/_ping", "client version 9.99 is too new. Maximum supported API version is"),
])
def test_version_out_of_range(path, text):
    r = call("GET", path)
    assert r.status_code == 400
    assert text in r.json()["message"]


def test_unknown_route_and_method():
    r = call("GET", "/nope")
    assert r.status_code == 404 and r.json() == {"message": "page not found"}
    r = call("PUT", "/containers/json")
    assert r.status_code == 404 and r.json() == {"message": "page not found"}


def test_unknown_container_is_404():
    r = call("GET", "/v1.50/containers/x/json")
    assert r.status_code == 404 and r.json() == {"message": "No such container: x"}


@pytest.mark.parametrize("body,text", [
    (b"{bad", "invalid character 'b' looking for beginning of object key string"),
    (b'{"Image": 5}', "cannot unmarshal number into Go struct field"),
    (b'{"Image": "busybox", "Env": [1]}', "cannot unmarshal number"),
    (b'{"Image": "busybox", "Cmd": {"a": 1}}', "cannot unmarshal object"),
])
def test_create_bad_bodies(body, text):
    r = call("POST", "/v1.50/containers/create", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert text in r.json()["message"]


def test_create_unknown_image_reaches_engine():
    r = call("POST", "/containers/create", content=json.dumps({"Image": "nosuch", "Cmd": "true"}))
    assert r.status_code == 404 and r.json()["message"] == "No such image: nosuch"


def test_swarm_routes_answer_503():
    r = call("GET", "/swarm")
    assert r.status_code == 503 and "not a swarm manager" in r.json()["message"]
