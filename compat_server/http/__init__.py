"""The HTTP front layer: listeners (unix, tcp, tcp+TLS), an h11 ASGI driver for the REST API,
and hijacked connections (attach, exec start) with correct half-close.  See
/work/shared/design/HIJACK.md for the why."""
from .connection import ASGIApp
from .hijack import HIJACK_PATH, HijackConn, HijackHandler, HijackRequest, is_hijack_route
from .listeners import ListenerError, TLSOptions, parse_host
from .server import Server
from .stream import PeerInfo

__all__ = [
    "HIJACK_PATH",
    "ASGIApp",
    "HijackConn",
    "HijackHandler",
    "HijackRequest",
    "ListenerError",
    "PeerInfo",
    "Server",
    "TLSOptions",
    "is_hijack_route",
    "parse_host",
]
