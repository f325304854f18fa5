"""Registry credentials as clients send them (``X-Registry-Auth``, ``POST /auth``)."""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from .. import gojson


@dataclass(frozen=True)
class AuthConfig:
    username: str = ""
    password: str = ""
    server_address: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)


def from_json(obj: Any) -> AuthConfig:
    if not isinstance(obj, dict):
        return AuthConfig()
    # Go decodes JSON field names case-insensitively; so do we.
    low = {str(k).lower(): v for k, v in obj.items()}

    def s(key: str) -> str:
        v = low.get(key)
        return v if isinstance(v, str) else ""
    return AuthConfig(s("username"), s("password"), s("serveraddress"), s("identitytoken"), s("registrytoken"))


def decode_header(value: str | None) -> AuthConfig:
    """``X-Registry-Auth``: base64url JSON (the CLI, docker-py); plain base64 and ``{}`` too.

    dockerd ignores a header it cannot decode and pulls anonymously; so do we.
    """
    if not value:
        return AuthConfig()
    raw = value.strip()
    for decoder in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            data = decoder(raw + "=" * (-len(raw) % 4))
            return from_json(gojson.loads(data))
        except (binascii.Error, ValueError):
            continue
    try:
        return from_json(gojson.loads(raw))
    except ValueError:
        return AuthConfig()


def decode_body(body: bytes) -> AuthConfig:
    doc = gojson.loads(body, stream=True) if body.strip() else {}
    doc = gojson.decode_as(doc, _AUTH_CONFIG)
    return from_json(doc)


_AUTH_CONFIG = gojson.Struct("registry.AuthConfig", "AuthConfig", dict.fromkeys(
    ("username", "password", "auth", "email", "serveraddress", "identitytoken", "registrytoken"), gojson.STRING))
