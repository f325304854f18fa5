"""Small HTTP/1.1 wire helpers of the h11 driver: canned error responses and header looks."""
from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any


def plain_error(status: int) -> bytes:
    text = f"{status} {HTTPStatus(status).phrase}"
    return (
        f"HTTP/1.1 {text}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
        f"Content-Length: {len(text)}\r\n\r\n{text}"
    ).encode()


def json_error(status: int, message: str) -> bytes:
    body = json.dumps({"message": message}).encode() + b"\n"
    return (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def header_value(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    values = [v.decode("latin-1") for k, v in headers if k == name]
    return ", ".join(values) if values else None


def has_content_framing(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() in (b"content-length", b"transfer-encoding") for k, _ in headers)


def is_chunked(scope: dict[str, Any]) -> bool:
    return any(k.lower() == b"transfer-encoding" and b"chunked" in v.lower() for k, v in scope["headers"])


def reason_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""
