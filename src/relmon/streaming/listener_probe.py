"""What security protocol a Kafka listener speaks, found with two small requests.

When a client cannot bootstrap, "cannot reach Kafka" is only the right message if nothing
listens. A SASL client pointed at a plaintext listener (or TLS at a plaintext one, or the
reverse) reaches the port and fails in the handshake, and aiokafka reports all of these as
"Unable to bootstrap". :func:`probe` tells them apart, blocking and in a few seconds (it
runs only on the way out, before the error is shown):

1. TCP connect: refused or timed out → nothing to learn here (``None``).
2. An ``ApiVersions`` v0 request in plain bytes: a Kafka answer means a plaintext
   listener; else a TLS handshake (certificates not checked: only "does it speak TLS"),
   and the same request inside it.
3. A ``SaslHandshake`` v1 request: ``ILLEGAL_SASL_STATE`` (34) means the listener has no
   SASL; an answer listing mechanisms means it wants a SASL login, and which kinds.
"""

from __future__ import annotations

import socket
import ssl
import struct
from dataclasses import dataclass

TIMEOUT_S = 3.0
API_VERSIONS, SASL_HANDSHAKE = 18, 17
ILLEGAL_SASL_STATE = 34
CLIENT_ID = b"relmon-probe"


@dataclass(frozen=True)
class Listener:
    """What answered at ``address``: its protocol as relmon's setting names it, or
    ``not Kafka`` when something else listens there."""

    address: str
    protocol: str  # PLAINTEXT | SASL_PLAINTEXT | SSL | SASL_SSL | "not Kafka"
    mechanisms: tuple[str, ...] = ()


def probe(bootstrap: str, mechanism: str = "PLAIN") -> Listener | None:
    """The first bootstrap address that accepts a TCP connection, and what it speaks."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=TIMEOUT_S):
                pass
        except (OSError, ValueError):
            continue
        return _identify(address.strip(), host, int(port), mechanism)
    return None


def _identify(address: str, host: str, port: int, mechanism: str) -> Listener:
    found = _speak(host, port, None, mechanism)
    if found is not None:
        sasl, mechanisms = found
        return Listener(address, "SASL_PLAINTEXT" if sasl else "PLAINTEXT", mechanisms)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only asks whether it speaks TLS at all
    found = _speak(host, port, context, mechanism)
    if found is not None:
        sasl, mechanisms = found
        return Listener(address, "SASL_SSL" if sasl else "SSL", mechanisms)
    return Listener(address, "not Kafka")


def _speak(
    host: str, port: int, context: ssl.SSLContext | None, mechanism: str
) -> tuple[bool, tuple[str, ...]] | None:
    """(wants SASL, mechanisms offered) if a Kafka broker answers; None otherwise."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S) as raw:
            conn: socket.socket = context.wrap_socket(raw, server_hostname=host) if context else raw
            if _request(conn, API_VERSIONS, 0, 1, b"") is None:
                return None
            name = mechanism.encode()
            body = _request(conn, SASL_HANDSHAKE, 1, 2, struct.pack(">h", len(name)) + name)
    except (OSError, ssl.SSLError, struct.error):
        return None
    if body is None or len(body) < 2:
        return (True, ())  # answered ApiVersions, then closed on the handshake: unusual
    (error,) = struct.unpack_from(">h", body)
    if error == ILLEGAL_SASL_STATE:
        return (False, ())
    return (True, _strings(body[2:]))


def _request(
    conn: socket.socket, api_key: int, version: int, correlation: int, body: bytes
) -> bytes | None:
    """Send one request; its response's body (after the correlation id), None if none."""
    header = struct.pack(">hhih", api_key, version, correlation, len(CLIENT_ID)) + CLIENT_ID
    payload = header + body
    conn.sendall(struct.pack(">i", len(payload)) + payload)
    size_bytes = _read(conn, 4)
    if size_bytes is None:
        return None
    (size,) = struct.unpack(">i", size_bytes)
    if not 4 <= size <= 1_000_000:
        return None  # not a Kafka frame (a TLS alert, an HTTP answer, ...)
    response = _read(conn, size)
    if response is None or struct.unpack_from(">i", response)[0] != correlation:
        return None
    return response[4:]


def _read(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _strings(body: bytes) -> tuple[str, ...]:
    """A Kafka ``[string]`` array (the SaslHandshake response's mechanisms)."""
    (count,) = struct.unpack_from(">i", body)
    out, at = [], 4
    for _ in range(max(0, min(count, 32))):
        (length,) = struct.unpack_from(">h", body, at)
        out.append(body[at + 2 : at + 2 + length].decode("utf-8", "replace"))
        at += 2 + length
    return tuple(out)
