"""test_stream.py — black-box tests of the message stream (GET /v1/stream): the real
parleyd, real WebSockets (wsclient.py), real protobuf frames (pb.py), real SQLite.

Covers: auth before the upgrade; queueing for an offline device and deletion only on
its ack (P8), per-device copies (P8), online push, expiry with the sender told (P9),
no plaintext at rest (P6), stale device lists, idempotent resend, limits and error
frames, and a kill -9 fault test (nothing acknowledged OK is ever lost).
"""
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pb  # noqa: E402
import wsclient  # noqa: E402
from harness import Server, run  # noqa: E402

TESTKIT = os.environ.get("PARLEY_TESTKIT", "build/parley-testkit")


def msgid():
    return os.urandom(16)


class Dev:
    """One logged-in device of a user, optionally with keys and a stream."""

    def __init__(self, server, username, doc):
        self.server = server
        self.username = username
        self.token = doc["token"]
        self.user_id = doc["user_id"]
        self.device_id = doc["device_id"]
        self.ws = None
        self.inbox = []  # pushes received while waiting for a reply
        self.next_id = 1

    def upload_keys(self):
        body = json.loads(subprocess.check_output([TESTKIT, "keys-upload", "--onetime", "2"]))
        status, doc, _ = self.server.request("PUT", "/v1/keys", body, token=self.token)
        assert status == 200, (status, doc)
        return self

    def connect(self, timeout=10):
        self.ws = wsclient.connect("127.0.0.1", self.server.port, "/v1/stream",
                                   {"Authorization": "Bearer " + self.token}, timeout=timeout)
        self.inbox = []
        return self

    def close(self):
        if self.ws:
            self.ws.close()
            self.ws = None

    def frame(self, timeout=10):
        op, data = self.ws.recv(timeout=timeout)
        assert op == wsclient.OP_BINARY, op
        return pb.decode("ServerFrame", data)

    def request(self, **body):
        rid = self.next_id
        self.next_id += 1
        self.ws.send_binary(pb.encode("ClientFrame", dict(id=rid, **body)))
        return rid

    def call(self, timeout=10, **body):
        rid = self.request(**body)
        return self.reply(rid, timeout)

    def reply(self, rid, timeout=10):
        deadline = time.time() + timeout
        while True:
            f = self.frame(timeout=max(0.1, deadline - time.time()))
            if f["id"] == rid:
                return f
            assert f["id"] == 0, f"reply for an unexpected request: {f}"
            self.inbox.append(f)

    def send(self, copies, to_user=None, group_id=None, mid=None):
        body = {"client_message_id": mid or msgid(),
                "copies": [{"device_id": d, "ciphertext": ct} for d, ct in copies.items()]}
        if group_id:
            body["group_id"] = group_id
        else:
            body["to_user"] = to_user
        return self.call(send=body)

    def push(self, timeout=10):
        if self.inbox:
            return self.inbox.pop(0)
        return self.frame(timeout)

    def envelopes_until_drained(self, timeout=10):
        out = []
        while True:
            f = self.push(timeout)
            if "drained" in f:
                return out, f["drained"]["delivered"]
            assert "envelope" in f, f
            out.append(f["envelope"])

    def ack(self, ids):
        f = self.call(ack={"envelope_ids": list(ids)})
        assert "ack_result" in f, f
        return f["ack_result"]["deleted"]

    def no_frame(self, wait=0.5):
        if self.inbox:
            return False
        try:
            self.ws.recv(timeout=wait)
            return False
        except socket.timeout:
            return True


def send_request(sender, to, mid, ciphertext):
    """Send one message to `to`'s single device without waiting; returns the request id."""
    return sender.request(send={"client_message_id": mid, "to_user": to.user_id,
                                "copies": [{"device_id": to.device_id,
                                            "ciphertext": ciphertext}]})


def user(server, name, keyed=True):
    d = Dev(server, name, server.new_user(name))
    return d.upload_keys() if keyed else d


def second_device(server, first, keyed=True):
    status, doc, _ = server.login(first.username)
    assert status == 201, (status, doc)
    d = Dev(server, first.username, doc)
    return d.upload_keys() if keyed else d


def rows(server, device_id=None):
    db = server.db()
    try:
        if device_id:
            return db.execute("SELECT COUNT(*) FROM envelopes WHERE device_id = ?",
                              (device_id,)).fetchone()[0]
        return db.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0]
    finally:
        db.close()


def ok(f):
    assert "send_result" in f, f
    assert f["send_result"]["status"] == pb.SEND_OK, f
    return f["send_result"]


def error_code(f):
    assert "error" in f, f
    return f["error"]["code"]


# ---------------------------------------------------------------- tests


def test_stream_auth_required_before_upgrade():
    with Server() as s:
        for headers in ({}, {"Authorization": "Bearer " + "A" * 43}, {"Authorization": "Basic x"}):
            try:
                wsclient.connect("127.0.0.1", s.port, "/v1/stream", headers)
                raise AssertionError("upgrade without a valid token")
            except wsclient.HandshakeError as e:
                assert e.status == 401, e
                assert json.loads(e.body)["error"]["code"] == "unauthorized"


def test_P8_envelope_deleted_only_after_ack():
    with Server() as s:
        alice, bob = user(s, "alice"), user(s, "bob")
        alice.connect()
        got, n = alice.envelopes_until_drained()
        assert got == [] and n == 0
        mid = msgid()
        r = ok(alice.send({bob.device_id: b"ciphertext-1"}, to_user=bob.user_id, mid=mid))
        assert r["server_time_ms"] > 0
        assert rows(s, bob.device_id) == 1
        bob.connect()
        got, n = bob.envelopes_until_drained()
        assert n == 1 and len(got) == 1, got
        e = got[0]
        assert e["ciphertext"] == b"ciphertext-1" and e["client_message_id"] == mid
        assert e["sender_user"] == alice.user_id and e["sender_device"] == alice.device_id
        assert e["sender_username"] == "alice" and e["kind"] == pb.KIND_MESSAGE
        assert e["group_id"] == ""
        assert bob.no_frame(), "delivered twice"
        assert rows(s, bob.device_id) == 1, "deleted before the ack"
        assert bob.ack([e["envelope_id"]]) == 1
        assert rows(s, bob.device_id) == 0
        assert bob.ack([e["envelope_id"]]) == 0  # acking again deletes nothing
        bob.close()
        bob.connect()
        got, n = bob.envelopes_until_drained()
        assert got == [] and n == 0
        alice.close()
        bob.close()


def test_P8_ack_with_id_0_deletes_without_answer():
    """An Ack with id 0 deletes like any ack but gets no AckResult (fire and forget);
    a malformed one is still refused, with an Error of id 0."""
    with Server() as s:
        alice, bob = user(s, "alice"), user(s, "bob")
        alice.connect()
        alice.envelopes_until_drained()
        for i in range(2):
            ok(alice.send({bob.device_id: b"quiet-%d" % i}, to_user=bob.user_id))
        assert rows(s, bob.device_id) == 2
        bob.connect()
        got, n = bob.envelopes_until_drained()
        assert n == 2, got
        first, second = (e["envelope_id"] for e in got)
        bob.ws.send_binary(pb.encode("ClientFrame", {"id": 0, "ack": {"envelope_ids": [first]}}))
        # an id'd ack sent after it is answered after it: nothing came for the first
        assert bob.ack([second]) == 1
        assert bob.inbox == [] and bob.no_frame(), bob.inbox
        assert rows(s, bob.device_id) == 0
        bob.ws.send_binary(pb.encode("ClientFrame", {"id": 0, "ack": {"envelope_ids": [0]}}))
        f = bob.frame()
        assert f["id"] == 0 and error_code(f) == "invalid_field", f
        # online: the pushed copy is held in memory, and the id-0 ack releases the OK
        rid = send_request(alice, bob, msgid(), b"held")
        e = bob.push()["envelope"]
        bob.ws.send_binary(pb.encode("ClientFrame",
                                     {"id": 0, "ack": {"envelope_ids": [e["envelope_id"]]}}))
        ok(alice.reply(rid))
        assert bob.no_frame() and rows(s, bob.device_id) == 0
        bob.close()
        bob.connect()
        got, n = bob.envelopes_until_drained()
        assert got == [] and n == 0


def test_P8_multi_device():
    with Server() as s:
        alice, bob1 = user(s, "alice"), user(s, "bob")
        bob2 = second_device(s, bob1)
        alice.connect()
        ok(alice.send({bob1.device_id: b"for-1", bob2.device_id: b"for-2"}, to_user=bob1.user_id))
        assert rows(s, bob1.device_id) == 1 and rows(s, bob2.device_id) == 1
        bob1.connect()
        got, _ = bob1.envelopes_until_drained()
        assert [e["ciphertext"] for e in got] == [b"for-1"]
        bob1.ack([got[0]["envelope_id"]])
        assert rows(s, bob1.device_id) == 0 and rows(s, bob2.device_id) == 1
        bob2.connect()
        got2, _ = bob2.envelopes_until_drained()
        assert [e["ciphertext"] for e in got2] == [b"for-2"]
        # an ack from one device never deletes another device's copy
        assert bob2.ack([got[0]["envelope_id"]]) == 0
        assert rows(s, bob2.device_id) == 1
        bob2.ack([got2[0]["envelope_id"]])
        assert rows(s) == 0


def test_online_push_and_own_devices():
    with Server() as s:
        alice, bob = user(s, "alice"), user(s, "bob")
        alice2 = second_device(s, alice)
        for d in (alice, bob, alice2):
            d.connect()
            assert d.envelopes_until_drained() == ([], 0)
        # a 1:1 message goes to the recipient and to the sender's other devices
        ok(alice.send({bob.device_id: b"hi bob", alice2.device_id: b"sync copy"}, to_user=bob.user_id))
        e = bob.push()["envelope"]
        assert e["ciphertext"] == b"hi bob"
        e2 = alice2.push()["envelope"]
        assert e2["ciphertext"] == b"sync copy" and e2["sender_device"] == alice.device_id
        assert alice.no_frame(0.3)
        bob.ack([e["envelope_id"]])
        alice2.ack([e2["envelope_id"]])
        assert rows(s) == 0
        # ping
        f = bob.call(ping={})
        assert f["pong"]["server_time_ms"] > 0
        status, text, _ = s.request("GET", "/metrics")
        text = text.decode() if isinstance(text, bytes) else str(text)
        assert status == 200
        for line in ("parley_messages_accepted_total 1", "parley_envelopes_delivered_total 2",
                     "parley_envelopes_acked_total 2"):
            assert line + "\n" in text, (line, text[-1500:])
        assert "parley_queue_commits_total" in text


def test_P9_expired_and_sender_told():
    with Server("--queue-ttl", "2s", "--purge-interval", "1s") as s:
        alice, bob = user(s, "alice"), user(s, "bob")
        alice.connect()
        alice.envelopes_until_drained()
        mid = msgid()
        ok(alice.send({bob.device_id: b"will expire"}, to_user=bob.user_id, mid=mid))
        assert rows(s, bob.device_id) == 1
        f = alice.push(timeout=10)  # the purge runs every second; ttl is 2 s
        e = f["envelope"]
        assert e["kind"] == pb.KIND_EXPIRED, e
        assert e["expired"]["client_message_id"] == mid
        assert e["expired"]["recipient_user"] == bob.user_id
        assert e["expired"]["devices"] == 1
        assert rows(s, bob.device_id) == 0
        bob.connect()
        assert bob.envelopes_until_drained() == ([], 0)
        assert rows(s, alice.device_id) == 1  # the notice is queued like a message
        assert alice.ack([e["envelope_id"]]) == 1
        assert rows(s) == 0
        # a sender offline at expiry gets the notice when it connects again
        ok(bob.send({alice.device_id: b"x"}, to_user=alice.user_id))
        alice.close()
        bob.close()
        deadline = time.time() + 10
        while time.time() < deadline and rows(s, bob.device_id) == 0:
            time.sleep(0.2)
        assert rows(s, alice.device_id) == 0 and rows(s, bob.device_id) == 1
        bob.connect()
        got, n = bob.envelopes_until_drained()
        assert n == 1 and got[0]["kind"] == pb.KIND_EXPIRED, got
        assert got[0]["expired"]["recipient_user"] == alice.user_id


def test_P9_default_ttl_15_days_with_injected_clock():
    """The default TTL is 15 days to the second; the server's clock is moved (--clock-offset)
    instead of waiting: kept one minute before expiry, purged and the sender told after."""
    data = tempfile.mkdtemp(prefix="parley-ttl-")
    try:
        ttl_scenario(data)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def ttl_scenario(data):
    with Server("--purge-interval", "1s", data_dir=data) as s:
        alice, bob = user(s, "alice"), user(s, "bob")
        alice.connect()
        alice.envelopes_until_drained()
        mid = msgid()
        ok(alice.send({bob.device_id: b"fifteen days"}, to_user=bob.user_id, mid=mid))
        db = s.db()
        created_ms, expires = db.execute(
            "SELECT created_at_ms, expires_at FROM envelopes").fetchone()
        db.close()
        assert expires - created_ms // 1000 == 15 * 86400, (created_ms, expires)
        alice.close()
    with Server("--purge-interval", "1s", "--clock-offset", "14d", data_dir=data) as s:
        s.request("GET", "/healthz")
        time.sleep(2.5)  # two purge runs: 14 days is not 15
        assert rows(s, bob.device_id) == 1
    with Server("--purge-interval", "1s", "--clock-offset", "15d", data_dir=data) as s:
        # 15 days after the send plus the seconds since: past the expiry
        alice.server = s
        alice.connect()
        got, _ = alice.envelopes_until_drained() if rows(s, alice.device_id) else ([], 0)
        deadline = time.time() + 10
        while not got and time.time() < deadline:
            f = alice.push(timeout=10)
            if "envelope" in f:
                got.append(f["envelope"])
        assert got and got[0]["kind"] == pb.KIND_EXPIRED, got
        assert got[0]["expired"]["client_message_id"] == mid
        assert rows(s, bob.device_id) == 0


def test_P6_no_plaintext_at_rest():
    marker = b"PARLEY-PLAINTEXT-MARKER-" + os.urandom(6).hex().encode()
    with Server() as s:
        alice, bob = user(s, "alice"), user(s, "bob")
        alice.connect()
        ok(alice.send({bob.device_id: marker}, to_user=bob.user_id))
        assert rows(s, bob.device_id) == 1
        db = s.db()
        body = db.execute("SELECT body FROM envelopes").fetchone()[0]
        db.close()
        # v1 XChaCha20-Poly1305 (+41 bytes), v2 AES-256-GCM (+29) where the CPU has AES-NI
        assert marker not in body and len(body) == len(marker) + {1: 41, 2: 29}[body[0]]
        files = [os.path.join(s.data, f) for f in os.listdir(s.data)]
        for path in files + [s.log_path]:
            with open(path, "rb") as fh:
                assert marker not in fh.read(), f"marker found in {path}"
        assert alice.user_id.encode() not in open(s.log_path, "rb").read()
        # and yet it is delivered intact
        bob.connect()
        got, _ = bob.envelopes_until_drained()
        assert got[0]["ciphertext"] == marker


def test_stale_devices_and_retry():
    with Server() as s:
        alice, bob1 = user(s, "alice"), user(s, "bob")
        bob2 = second_device(s, bob1)
        unkeyed = second_device(s, bob1, keyed=False)
        alice.connect()
        mid = msgid()
        bogus = "ab" * 16
        f = alice.send({bob1.device_id: b"1", bogus: b"2", unkeyed.device_id: b"3"},
                       to_user=bob1.user_id, mid=mid)
        r = f["send_result"]
        assert r["status"] == pb.SEND_STALE_DEVICES, r
        assert r["missing"] == [{"user_id": bob1.user_id, "device_id": bob2.device_id}], r
        assert {d["device_id"] for d in r["extra"]} == {bogus, unkeyed.device_id}, r
        assert rows(s) == 0, "a stale send stored something"
        ok(alice.send({bob1.device_id: b"1", bob2.device_id: b"2"}, to_user=bob1.user_id, mid=mid))
        assert rows(s) == 2


def test_idempotent_resend():
    with Server() as s:
        alice, bob = user(s, "alice"), user(s, "bob")
        alice.connect()
        mid = msgid()
        ok(alice.send({bob.device_id: b"once"}, to_user=bob.user_id, mid=mid))
        f = alice.send({bob.device_id: b"once"}, to_user=bob.user_id, mid=mid)
        assert f["send_result"]["status"] == pb.SEND_DUPLICATE, f
        assert rows(s, bob.device_id) == 1
        # also over a new connection (a retry after a reconnect)
        alice.close()
        alice.connect()
        f = alice.send({bob.device_id: b"once"}, to_user=bob.user_id, mid=mid)
        assert f["send_result"]["status"] == pb.SEND_DUPLICATE, f
        assert rows(s, bob.device_id) == 1


def test_limits_and_refusals():
    with Server("--max-envelope", "1024") as s:
        alice, bob, carol = user(s, "alice"), user(s, "bob"), user(s, "carol")
        alice.connect()
        assert error_code(alice.send({bob.device_id: b"x" * 1025}, to_user=bob.user_id)) == "too_large"
        ok(alice.send({bob.device_id: b"x" * 1024}, to_user=bob.user_id))
        # unknown recipient
        assert error_code(alice.send({bob.device_id: b"x"}, to_user="cd" * 16)) == "not_found"
        # malformed fields
        f = alice.call(send={"client_message_id": b"short", "to_user": bob.user_id,
                             "copies": [{"device_id": bob.device_id, "ciphertext": b"x"}]})
        assert error_code(f) == "invalid_field"
        f = alice.call(send={"client_message_id": msgid(), "to_user": "not-an-id",
                             "copies": [{"device_id": bob.device_id, "ciphertext": b"x"}]})
        assert error_code(f) == "invalid_field"
        f = alice.call(send={"client_message_id": msgid(), "to_user": bob.user_id,
                             "copies": [{"device_id": bob.device_id, "ciphertext": b"x"},
                                        {"device_id": bob.device_id, "ciphertext": b"y"}]})
        assert error_code(f) == "invalid_field"
        f = alice.call(send={"client_message_id": msgid(), "to_user": bob.user_id, "copies": []})
        assert error_code(f) == "invalid_field"
        # group send from a non-member
        status, doc, _ = s.request("POST", "/v1/groups", {"name": "g", "members": ["bob"]},
                                   token=alice.token)
        assert status == 201, (status, doc)
        gid = doc["group_id"]
        carol.connect()
        f = carol.send({alice.device_id: b"x", bob.device_id: b"y"}, group_id=gid)
        assert error_code(f) == "not_member", f
        # a member's group send works
        f = alice.send({bob.device_id: b"to the group"}, group_id=gid)
        ok(f)
        bob.connect()
        got, _ = bob.envelopes_until_drained()
        assert [e["group_id"] for e in got] == ["", gid]


def test_send_rate_limited():
    with Server("--send-rate-per-min", "3") as s:
        alice, bob = user(s, "alice"), user(s, "bob")
        alice.connect()
        for _ in range(3):
            ok(alice.send({bob.device_id: b"x"}, to_user=bob.user_id))
        assert error_code(alice.send({bob.device_id: b"x"}, to_user=bob.user_id)) == "rate_limited"


def test_invalid_frames_answered_server_keeps_serving():
    with Server() as s:
        alice, bob = user(s, "alice"), user(s, "bob")
        alice.connect()
        bob.connect()
        alice.envelopes_until_drained()
        bob.envelopes_until_drained()
        alice.ws.send_binary(b"\xff\xff\xff\xff not protobuf")
        f = alice.frame()
        assert f["id"] == 0 and error_code(f) == "invalid_frame", f
        alice.ws.send_text("hello")
        f = alice.frame()
        assert f["id"] == 0 and error_code(f) == "invalid_frame", f
        # a frame without a body is refused with its id
        rid = alice.request()
        f = alice.reply(rid)
        assert error_code(f) == "invalid_frame"
        assert "pong" in alice.call(ping={})
        alice.ws.send_binary(pb.encode("ClientFrame", {"id": 0, "ping": {}}))  # id 0
        f = alice.frame()
        assert f["id"] == 0 and error_code(f) == "invalid_frame"
        try:
            alice.frame(timeout=5)
            raise AssertionError("not closed after repeated invalid frames")
        except wsclient.ConnectionClosed as e:
            assert e.code == 1002, e
        # everyone else is still served
        assert "pong" in bob.call(ping={})
        ok(bob.send({alice.device_id: b"still here"}, to_user=alice.user_id))


def test_device_reconnect_replaces_old_connection():
    with Server() as s:
        alice, bob = user(s, "alice"), user(s, "bob")
        old = Dev(s, "bob", {"token": bob.token, "user_id": bob.user_id, "device_id": bob.device_id})
        old.connect()
        old.envelopes_until_drained()
        bob.connect()
        bob.envelopes_until_drained()
        try:
            old.frame(timeout=5)
            raise AssertionError("old connection not closed")
        except wsclient.ConnectionClosed as e:
            assert e.code == 4000, e
        alice.connect()
        ok(alice.send({bob.device_id: b"to the new one"}, to_user=bob.user_id))
        assert bob.push()["envelope"]["ciphertext"] == b"to the new one"


def test_large_backlog_drains_in_windows():
    with Server("--send-rate-per-min", "100000") as s:
        alice, bob = user(s, "alice"), user(s, "bob")
        alice.connect()
        n = 700
        ids = []
        for i in range(n):
            ids.append(alice.request(send={"client_message_id": msgid(), "to_user": bob.user_id,
                                           "copies": [{"device_id": bob.device_id,
                                                       "ciphertext": b"m%d" % i}]}))
        for rid in ids:
            ok(alice.reply(rid))
        bob.connect()

        def collect(timeout):
            frames = []
            while True:
                try:
                    f = bob.push(timeout=timeout)
                except socket.timeout:
                    return frames
                frames.append(f)
                if "drained" in f:
                    return frames

        batch = collect(1.0)  # without acks the server stops at the window
        assert len(batch) == 256 and all("envelope" in f for f in batch), len(batch)
        received = []
        while True:
            envs = [f["envelope"] for f in batch if "envelope" in f]
            received += envs
            if any("drained" in f for f in batch):
                assert batch[-1]["drained"]["delivered"] == n
                break
            assert envs, "stalled: nothing more after the acks"
            bob.ack([e["envelope_id"] for e in envs])
            batch = collect(2.0)
        bob.ack([e["envelope_id"] for e in envs])
        assert [e["ciphertext"] for e in received] == [b"m%d" % i for i in range(n)]
        assert rows(s) == 0


def test_big_backlog_bytes_stay_in_window():
    """40 envelopes of 200 KB (8 MB) for an offline device: the drain sends about 2 MiB,
    waits for acks, never overflows the connection's 4 MiB output queue."""
    with Server() as s:
        alice, bob = user(s, "alice"), user(s, "bob")
        alice.connect()
        n = 40
        for i in range(n):
            ok(alice.send({bob.device_id: bytes([i]) * 200_000}, to_user=bob.user_id))
        bob.connect()
        first = []
        while True:
            try:
                first.append(bob.frame(timeout=1.0))
            except socket.timeout:
                break
        assert 1 <= len(first) <= 12 and all("envelope" in f for f in first), len(first)
        received = [f["envelope"] for f in first]
        to_ack = [e["envelope_id"] for e in received]
        while True:
            bob.request(ack={"envelope_ids": to_ack})
            to_ack = []
            f = bob.frame(timeout=10)
            if f["id"] != 0:
                continue
            if "drained" in f:
                break
            received.append(f["envelope"])
            to_ack.append(f["envelope"]["envelope_id"])
        assert [e["ciphertext"][0] for e in received] == list(range(n))
        assert all(len(e["ciphertext"]) == 200_000 for e in received)


def test_fault_kill9_nothing_acknowledged_is_lost():
    """2,000 messages sent with retries while parleyd is SIGKILLed and restarted on the
    same data dir: every message acknowledged OK is delivered (exactly once after dedup)."""
    total = 2000
    s = Server("--send-rate-per-min", "1000000")
    s.start()
    try:
        alice, bob = user(s, "alice"), user(s, "bob")
        mids = [os.urandom(16) for _ in range(total)]
        acked = set()
        kills = 0
        # SIGKILL with 64 sends in flight each time the count of acknowledged messages
        # passes a (slightly random) threshold, then restart on the same data dir.
        thresholds = sorted(random.sample(range(150, total - 150), 5))

        def kill_and_restart():
            nonlocal kills
            kills += 1
            s.sigkill_restart()

        deadline = time.time() + 240
        while len(acked) < total and time.time() < deadline:
            try:
                alice.connect(timeout=5)
                pending = {}
                todo = [i for i in range(total) if i not in acked]
                pos = 0
                while pos < len(todo) or pending:
                    while pos < len(todo) and len(pending) < 64:
                        i = todo[pos]
                        pos += 1
                        pending[send_request(alice, bob, mids[i], b"fault-%d" % i)] = i
                    f = alice.frame(timeout=5)
                    if f["id"] in pending:
                        i = pending.pop(f["id"])
                        r = f.get("send_result")
                        if r and r["status"] in (pb.SEND_OK, pb.SEND_DUPLICATE):
                            acked.add(i)
                    if thresholds and len(acked) >= thresholds[0]:
                        thresholds.pop(0)
                        kill_and_restart()
            except (OSError, wsclient.ConnectionClosed, wsclient.HandshakeError):
                time.sleep(0.05)
            finally:
                alice.close()
        assert len(acked) == total, f"only {len(acked)} acknowledged"
        assert kills >= 1, "the server was never killed"
        if s.proc.poll() is not None:
            s.start()
        bob.connect(timeout=10)
        got = {}
        n_frames = 0
        to_ack = []
        while True:
            f = bob.frame(timeout=10)
            if f["id"] != 0:
                continue  # ack results
            if "drained" in f:
                break
            e = f["envelope"]
            n_frames += 1
            got.setdefault(e["client_message_id"], e["ciphertext"])
            to_ack.append(e["envelope_id"])
            if len(to_ack) >= 100:
                bob.request(ack={"envelope_ids": to_ack})
                to_ack = []
        for i in range(total):
            assert got.get(mids[i]) == b"fault-%d" % i, f"message {i} acknowledged but lost"
        assert len(got) == total
        print(f"   kills={kills} frames={n_frames} distinct={len(got)}", flush=True)
        s.stop()
    except BaseException:
        if s.proc and s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
        sys.stderr.write("---- parleyd log ----\n" + s.logs()[-6000:] + "\n")
        raise


if __name__ == "__main__":
    tests = [
        test_stream_auth_required_before_upgrade,
        test_P8_envelope_deleted_only_after_ack,
        test_P8_ack_with_id_0_deletes_without_answer,
        test_P8_multi_device,
        test_online_push_and_own_devices,
        test_P9_expired_and_sender_told,
        test_P9_default_ttl_15_days_with_injected_clock,
        test_P6_no_plaintext_at_rest,
        test_stale_devices_and_retry,
        test_idempotent_resend,
        test_limits_and_refusals,
        test_send_rate_limited,
        test_invalid_frames_answered_server_keeps_serving,
        test_device_reconnect_replaces_old_connection,
        test_large_backlog_drains_in_windows,
        test_big_backlog_bytes_stay_in_window,
        test_fault_kill9_nothing_acknowledged_is_lost,
    ]
    only = [t for t in tests if any(a in t.__name__ for a in sys.argv[1:])]
    sys.exit(run(only or tests))
