"""test_stream_revoke.py — ending a session ends its open stream (POLICY P27, P5).

The real parleyd, real WebSockets: a device's stream (GET /v1/stream) is closed with code
4001 "revoked" at once when the device is revoked, when it logs out and when its account
is deleted (the handler calls stream_disconnect_* after the store committed: the log says
by=request), and within the re-validation bound (STREAM_REVALIDATE_MS, 3 s, plus a
thread-pool lookup) when another process deletes the account (parleyd admin
close-underage: the connection's periodic session check, by=session_check).
Uses test_stream.py's Dev helper.
"""
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsclient  # noqa: E402
from harness import PARLEYD, Server, run  # noqa: E402
from test_stream import Dev, second_device, user  # noqa: E402

AT_ONCE_S = 1.0          # a request's own close: well under the re-validation period
REVALIDATE_S = 3.0       # STREAM_REVALIDATE_MS (server/stream/stream_int.h)
BOUND_S = REVALIDATE_S + 2.0


def closed_within(dev, seconds):
    """Wait for dev's stream to be closed by the server; return (code, elapsed)."""
    start = time.time()
    deadline = start + seconds
    while True:
        left = deadline - time.time()
        if left <= 0:
            raise AssertionError(f"stream still open after {seconds} s")
        try:
            dev.ws.recv(timeout=left)  # frames sent before the close are skipped
        except wsclient.ConnectionClosed as e:
            return e.code, time.time() - start
        except socket.timeout:
            continue


def revocations(s, by):
    """The server's stream_revoked log events with the given by= value."""
    n = 0
    for line in s.logs().splitlines():
        if "stream_revoked" not in line:
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            ev = {}
        if ev.get("by") == by or f"by={by}" in line:
            n += 1
    return n


def alive(dev):
    """The stream still answers a ping."""
    f = dev.call(ping={})
    return "pong" in f


def connected(dev):
    dev.connect()
    dev.envelopes_until_drained()
    return dev


def test_P27_deleted_account_stream_closed_at_once():
    with Server() as s:
        alice = connected(user(s, "alice", keyed=False))
        bob = user(s, "bob", keyed=False)
        bob2 = second_device(s, bob, keyed=False)
        connected(bob)
        connected(bob2)
        status, doc, _ = s.request("DELETE", "/v1/me", {"password": "correct horse battery"},
                                   token=bob.token)
        assert status == 204, (status, doc)
        for d in (bob, bob2):
            code, took = closed_within(d, AT_ONCE_S)
            assert code == 4001, code
        assert revocations(s, "request") == 2, s.logs()[-2000:]
        assert revocations(s, "session_check") == 0
        # the token cannot open a new stream, and other users are untouched
        try:
            Dev(s, "bob", {"token": bob.token, "user_id": bob.user_id,
                           "device_id": bob.device_id}).connect()
            raise AssertionError("a deleted account opened a stream")
        except wsclient.HandshakeError as e:
            assert e.status == 401, e.status
        assert alive(alice)


def test_P5_revoked_device_stream_closed_at_once():
    with Server() as s:
        bob = connected(user(s, "bob", keyed=False))
        bob2 = connected(second_device(s, bob, keyed=False))
        status, doc, _ = s.request("DELETE", f"/v1/devices/{bob2.device_id}", token=bob.token)
        assert status == 204, (status, doc)
        code, _ = closed_within(bob2, AT_ONCE_S)
        assert code == 4001, code
        assert revocations(s, "request") == 1
        assert alive(bob), "revoking one device closed another"


def test_P5_logout_closes_stream():
    with Server() as s:
        bob = connected(user(s, "bob", keyed=False))
        other = connected(second_device(s, bob, keyed=False))
        status, doc, _ = s.request("DELETE", "/v1/sessions/current", token=bob.token)
        assert status == 204, (status, doc)
        code, _ = closed_within(bob, AT_ONCE_S)
        assert code == 4001, code
        assert revocations(s, "request") == 1
        assert alive(other)


def test_P27_admin_close_underage_closes_stream_within_bound():
    with Server() as s:
        alice = connected(user(s, "alice", keyed=False))
        kid = connected(user(s, "kid", keyed=False))
        p = subprocess.run([PARLEYD, "admin", "close-underage", "kid", "--operator", "ops1",
                            "--data", s.data], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        code, took = closed_within(kid, BOUND_S)
        assert code == 4001, code
        assert revocations(s, "session_check") == 1, s.logs()[-2000:]
        assert alive(alice)
        # the live check did not close a stream whose session is still valid
        time.sleep(REVALIDATE_S + 0.5)
        assert alive(alice)


if __name__ == "__main__":
    tests = [
        test_P27_deleted_account_stream_closed_at_once,
        test_P5_revoked_device_stream_closed_at_once,
        test_P5_logout_closes_stream,
        test_P27_admin_close_underage_closes_stream_within_bound,
    ]
    only = [t for t in tests if any(a in t.__name__ for a in sys.argv[1:])]
    sys.exit(run(only or tests))
