"""Check every JSON response docker-py receives against api_spec.

api_spec.validate_response(method, path, status, body) raises
jsonschema.ValidationError on a mismatch and ignores routes it does not know.
The path handed to it has the `/vX.Y` prefix removed and no query string.
"""
from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

_VERSION_PREFIX = re.compile(r"^/v\d+(\.\d+)?(?=/)")
_MISSING = object()
_validator: Any = None


def load_validator() -> Callable[[str, str, int, object], None] | None:
    """api_spec.validate_response, or None (with a warning) while api_spec does not exist yet."""
    global _validator
    if _validator is None:
        try:
            from api_spec import validate_response  # type: ignore[import-not-found]
        except ImportError as exc:
            warnings.warn(f"api_spec not importable ({exc}); JSON responses are NOT validated", stacklevel=2)
            print(f"WARNING: api_spec not importable ({exc}); JSON responses are not validated")
            _validator = _MISSING
        else:
            _validator = validate_response
    return None if _validator is _MISSING else _validator


def api_path(url: str) -> str:
    path = urlsplit(url).path or "/"
    return _VERSION_PREFIX.sub("", path)


class ResponseRecorder:
    """A requests response hook that validates non-streaming JSON bodies and remembers failures."""

    def __init__(self, validate: Callable[[str, str, int, object], None]) -> None:
        self.validate = validate
        self.failures: list[str] = []
        self.checked = 0

    def hook(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("stream"):
            return response  # attach, logs -f, events, pull progress: not a single JSON document
        ctype = response.headers.get("Content-Type", "")
        if not ctype.startswith("application/json"):
            return response
        body_bytes = response.content  # requests caches it; the caller still sees it
        if not body_bytes:
            return response
        method = response.request.method
        path = api_path(response.request.url)
        try:
            body = json.loads(body_bytes)
        except ValueError as exc:
            self.failures.append(f"{method} {path} -> {response.status_code}: body is not JSON ({exc})")
            return response
        self.checked += 1
        try:
            self.validate(method, path, response.status_code, body)
        except Exception as exc:  # noqa: BLE001 - jsonschema.ValidationError, or a bug in the validator
            message = getattr(exc, "message", str(exc))
            where = "/".join(str(p) for p in getattr(exc, "absolute_path", []))
            self.failures.append(f"{method} {path} -> {response.status_code}: {message} (at /{where})")
        return response

    def install(self, api_client: Any) -> None:
        hooks = api_client.hooks.setdefault("response", [])
        if self.hook not in hooks:
            hooks.append(self.hook)
