"""TLS listener: client certificates, REST over TLS, and half-close of a hijacked stream."""
from __future__ import annotations

import socket
import ssl

import pytest

from compat_server.http import ListenerError, TLSOptions

from .conftest import Certs, ServerThread, WireClient, body_json, client_context, raw_request

UPGRADE = {"Connection": "Upgrade", "Upgrade": "tcp"}


@pytest.fixture
def tls_server(certs: Certs, servers: list[ServerThread]) -> ServerThread:
    s = ServerThread(["tcp://127.0.0.1:0"],
                     tls=TLSOptions(certs.server_cert, certs.server_key, certs.ca, verify=True))
    servers.append(s)
    return s.start()


def tls_connect(server: ServerThread, certs: Certs, with_cert: bool = True) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.tcp_port()), timeout=10)
    return client_context(certs, with_cert).wrap_socket(raw, server_hostname="localhost")


def test_rest_over_tls_with_keep_alive_and_client_cert(tls_server: ServerThread, certs: Certs) -> None:
    c = WireClient(tls_connect(tls_server, certs))
    for _ in range(3):
        assert c.request("GET", "/ping")[:3:2] == (200, b"OK")
    status, _, body = c.request("GET", "/peer/x")
    assert status == 200
    info = body_json(body)
    assert info["scheme"] == "https"
    subject = dict(x[0] for x in info["tls_client_cert"]["subject"])
    assert subject["commonName"] == "test-client"
    _status, _, body = c.request("POST", "/echo", b"z" * 200000)
    assert body_json(body)["length"] == 200000


def test_client_without_certificate_is_refused(tls_server: ServerThread, certs: Certs) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
        # TLS 1.3: the refusal may only show on the first read after the handshake.
        c = WireClient(tls_connect(tls_server, certs, with_cert=False))
        c.request("GET", "/ping")
    # and the server still serves good clients
    assert WireClient(tls_connect(tls_server, certs)).request("GET", "/ping")[0] == 200


def test_plain_http_on_the_tls_port_does_not_kill_the_server(tls_server: ServerThread, certs: Certs) -> None:
    c = WireClient.tcp(tls_server.tcp_port())
    c.send(raw_request("GET", "/ping"))
    c.read_to_eof()
    assert WireClient(tls_connect(tls_server, certs)).request("GET", "/ping")[0] == 200


def test_tls_half_close_keeps_output_flowing(tls_server: ServerThread, certs: Certs) -> None:
    s = tls_connect(tls_server, certs)
    c = WireClient(s)
    c.send(raw_request("POST", "/containers/abc/attach?stream=1&stdin=1&stdout=1", headers=UPGRADE))
    assert c.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 101 UPGRADED\r\n")
    c.send(b"stdin over tls")
    # Send our close_notify without waiting for the server's (the CLI's CloseWrite).
    s.setblocking(False)
    with pytest.raises(ssl.SSLWantReadError):
        s.unwrap()
    s.settimeout(10)
    out = b""
    while True:
        try:
            chunk = s.recv(4096)
        except ssl.SSLZeroReturnError:
            break
        if not chunk:
            break
        out += chunk
    assert out == b"got 14 bytes\nstdin over tls"


def test_bad_key_pair_is_a_listener_error(certs: Certs, servers: list[ServerThread]) -> None:
    s = ServerThread(["tcp://127.0.0.1:0"], tls=TLSOptions(certs.server_cert, certs.client_key))
    servers.append(s)
    with pytest.raises(ListenerError, match="X509 key pair"):
        s.start()


def test_tls_without_verify_accepts_clients_without_certificates(certs: Certs,
                                                                 servers: list[ServerThread]) -> None:
    s = ServerThread(["tcp://127.0.0.1:0"], tls=TLSOptions(certs.server_cert, certs.server_key))
    servers.append(s)
    s.start()
    c = WireClient(tls_connect(s, certs, with_cert=False))
    status, _, body = c.request("GET", "/peer/x")
    assert status == 200
    assert body_json(body)["tls_client_cert"] is None


def test_tls_on_a_non_loopback_address_needs_no_opt_in(certs: Certs, servers: list[ServerThread]) -> None:
    s = ServerThread(["tcp://0.0.0.0:0"], tls=TLSOptions(certs.server_cert, certs.server_key, certs.ca, True))
    servers.append(s)
    s.start()
    assert WireClient(tls_connect(s, certs)).request("GET", "/ping")[0] == 200
