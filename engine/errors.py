"""Typed engine errors.

Every error a user can hit belongs to exactly one of these classes.  The HTTP
layer maps the class to a status code in one place
(``compat_server.errors``); the engine never knows about HTTP.  Messages are
written in dockerd's words where dockerd has words for the situation.
"""
from __future__ import annotations


class EngineError(Exception):
    """Base class: an unexpected failure inside the engine (HTTP 500)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class NotFound(EngineError):
    """The named object does not exist (404)."""


class InvalidParameter(EngineError):
    """The request is malformed or names an impossible value (400)."""


class Conflict(EngineError):
    """The request conflicts with the current state (409)."""


class NotModified(EngineError):
    """Nothing to do: the object is already in the requested state (304)."""


class Forbidden(EngineError):
    """The operation is not allowed on this object (403)."""


class Unauthorized(EngineError):
    """Credentials are missing or wrong (401)."""


class Unavailable(EngineError):
    """The engine cannot serve the request now (503)."""


class NotImplementedYet(EngineError):
    """The feature exists in Docker but not in pydockerd yet (501)."""


class SystemError_(EngineError):
    """A failure of the host system (500) with a message meant for users."""


def no_such_container(name: str) -> NotFound:
    return NotFound(f"No such container: {name}")


def no_such_image(name: str) -> NotFound:
    return NotFound(f"No such image: {name}")


def go_json_kind(value: object) -> str:
    """The JSON kind Go's decoder names in "cannot unmarshal <kind> into ..." errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"
