"""wsclient.py — a minimal RFC 6455 WebSocket client over a plain socket, standard
library only, for the integration tests of /v1/stream.

connect() performs the opening handshake (with any extra headers, e.g. Authorization)
and returns a WebSocket, or raises HandshakeError carrying the HTTP status and body
when the server refuses the upgrade (e.g. 401 before the upgrade). Frames sent are
masked as a client must; pings are answered with pongs transparently; a close frame
from the server is echoed and reported as ConnectionClosed(code, reason).
"""
import base64
import hashlib
import os
import socket
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class HandshakeError(Exception):
    def __init__(self, status, headers, body):
        super().__init__(f"handshake refused: {status} {body[:200]!r}")
        self.status, self.headers, self.body = status, headers, body


class ConnectionClosed(Exception):
    def __init__(self, code, reason=""):
        super().__init__(f"closed {code} {reason}")
        self.code, self.reason = code, reason


def _read_http_head(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionClosed(1006, "eof during handshake")
        buf += chunk
        if len(buf) > 65536:
            raise HandshakeError(0, {}, buf)
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


class WebSocket:
    def __init__(self, sock, pending=b""):
        self.sock = sock
        self.buf = pending
        self.closed = None

    # ---- output ----
    def send_frame(self, opcode, payload, fin=True, mask=True):
        header = bytearray([(0x80 if fin else 0) | opcode])
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            header.append(mbit | n)
        elif n < 65536:
            header.append(mbit | 126)
            header += struct.pack("!H", n)
        else:
            header.append(mbit | 127)
            header += struct.pack("!Q", n)
        if mask:
            key = os.urandom(4)
            header += key
            payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload)) if n < 4096 else \
                _mask_fast(payload, key)
        self.sock.sendall(bytes(header) + payload)

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode())

    def close(self, code=1000, reason=""):
        try:
            self.send_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode())
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- input ----
    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionClosed(1006, "eof")
            self.buf += chunk

    def _frame(self):
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        if b1 & 0x80:
            raise ConnectionClosed(1002, "server frames must not be masked")
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv(self, timeout=None):
        """Return (opcode, payload) of the next data message; raises socket.timeout,
        or ConnectionClosed when the server closes."""
        if self.closed:
            raise self.closed
        self.sock.settimeout(timeout)
        parts, op = [], None
        while True:
            fin, opcode, payload = self._frame()
            if opcode == OP_PING:
                self.send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                try:
                    self.send_frame(OP_CLOSE, payload[:2])
                except OSError:
                    pass
                self.closed = ConnectionClosed(code, payload[2:].decode("utf-8", "replace"))
                raise self.closed
            if opcode != OP_CONT:
                op = opcode
            parts.append(payload)
            if fin:
                return op, b"".join(parts)


def _mask_fast(payload, key):
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def connect(host, port, path="/", headers=None, timeout=10):
    sock = socket.create_connection((host, port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    status, hdrs, rest = _read_http_head(sock)
    if status != 101:
        body = rest
        want = int(hdrs.get("content-length", "0") or 0)
        while len(body) < want:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        sock.close()
        raise HandshakeError(status, hdrs, body)
    expect = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    if hdrs.get("sec-websocket-accept") != expect:
        sock.close()
        raise HandshakeError(status, hdrs, b"bad Sec-WebSocket-Accept")
    return WebSocket(sock, rest)
