"""test_writeback.py — write-back (server/stream/held.h): a message for a device that is
connected is held in memory, pushed, and written to the queue only if that device does
not ack it within --writeback-ms. The real parleyd, WebSockets and SQLite.

Covers: an acked held copy never reaches the database and the sender's OK waits for the
ack (P8); an unacked one is written when it falls due, and only then is the sender told
OK; a held copy reaches a device that reconnects before acking (drains read the held
set); SIGTERM writes what is held; SIGKILL with the recipient online loses nothing
acknowledged OK.
"""
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pb  # noqa: E402
import wsclient  # noqa: E402
from harness import Server, run  # noqa: E402
from test_stream import msgid, ok, rows, send_request, user  # noqa: E402


def metric(s, name):
    status, text, _ = s.request("GET", "/metrics")
    text = text.decode() if isinstance(text, bytes) else str(text)
    assert status == 200
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError(f"no metric {name}")


def online_pair(s):
    alice, bob = user(s, "alice"), user(s, "bob")
    for d in (alice, bob):
        d.connect()
        assert d.envelopes_until_drained() == ([], 0)
    return alice, bob


def test_P8_writeback_acked_copy_never_written():
    with Server("--writeback-ms", "10000") as s:
        alice, bob = online_pair(s)
        rid = alice.request(send={"client_message_id": msgid(), "to_user": bob.user_id,
                                  "copies": [{"device_id": bob.device_id,
                                              "ciphertext": b"held-1"}]})
        e = bob.push()["envelope"]
        assert e["ciphertext"] == b"held-1"
        assert rows(s) == 0, "a held copy was written"
        assert alice.no_frame(0.3), "OK before the copy was kept anywhere"
        assert bob.ack([e["envelope_id"]]) == 1
        r = ok(alice.reply(rid))
        assert r["server_time_ms"] > 0
        assert rows(s) == 0
        assert metric(s, "parley_queue_held_acked_total") == 1
        assert metric(s, "parley_queue_held_written_total") == 0
        assert bob.ack([e["envelope_id"]]) == 0  # gone: acking again deletes nothing


def test_writeback_unacked_copy_written_when_due():
    with Server("--writeback-ms", "300") as s:
        alice, bob = online_pair(s)
        t0 = time.time()
        mid = msgid()
        rid = alice.request(send={"client_message_id": mid, "to_user": bob.user_id,
                                  "copies": [{"device_id": bob.device_id,
                                              "ciphertext": b"slow reader"}]})
        e = bob.push()["envelope"]
        ok(alice.reply(rid))
        assert time.time() - t0 >= 0.25, "OK came before the copy was written"
        assert rows(s, bob.device_id) == 1, "OK without the copy in the queue"
        assert metric(s, "parley_queue_held_written_total") == 1
        # written, so remembered: a retry of the same id is a duplicate
        r = alice.send({bob.device_id: b"slow reader"}, to_user=bob.user_id, mid=mid)
        assert r["send_result"]["status"] == pb.SEND_DUPLICATE, r
        assert bob.ack([e["envelope_id"]]) == 1
        assert rows(s) == 0


def test_writeback_held_copy_reaches_reconnecting_device():
    with Server("--writeback-ms", "10000") as s:
        alice, bob = online_pair(s)
        mid = msgid()
        rid = alice.request(send={"client_message_id": mid, "to_user": bob.user_id,
                                  "copies": [{"device_id": bob.device_id,
                                              "ciphertext": b"again"}]})
        first = bob.push()["envelope"]
        bob.close()  # gone without acking; the copy is still held
        bob.connect()
        got, n = bob.envelopes_until_drained()
        assert n == 1 and [g["client_message_id"] for g in got] == [mid], got
        assert got[0]["envelope_id"] == first["envelope_id"]
        assert got[0]["sender_username"] == "alice"
        assert rows(s) == 0
        assert bob.ack([first["envelope_id"]]) == 1
        ok(alice.reply(rid))


def test_writeback_sigterm_writes_what_is_held():
    s = Server("--writeback-ms", "10000")
    s.start()
    try:
        alice, bob = online_pair(s)
        mid = msgid()
        alice.request(send={"client_message_id": mid, "to_user": bob.user_id,
                            "copies": [{"device_id": bob.device_id, "ciphertext": b"kept"}]})
        assert bob.push()["envelope"]["client_message_id"] == mid
        assert rows(s) == 0
        alice.close()
        bob.close()
        s.stop()
        s.start()
        assert rows(s, bob.device_id) == 1, "SIGTERM dropped a held copy"
        bob.connect()
        got, _ = bob.envelopes_until_drained()
        assert [g["ciphertext"] for g in got] == [b"kept"]
        s.stop()
    finally:
        if s.proc and s.proc.poll() is None:
            s.kill()


def test_writeback_fault_kill9_recipient_online():
    """Alice sends 600 messages to Bob, who is online and acks as they come, while parleyd
    is SIGKILLed three times: every message Alice was told OK (or DUPLICATE) for reached
    Bob, before the kill or from the queue afterwards."""
    total = 600
    s = Server("--send-rate-per-min", "1000000", "--writeback-ms", "20")
    s.start()
    try:
        alice, bob = user(s, "alice"), user(s, "bob")
        mids = [os.urandom(16) for _ in range(total)]
        acked, received = set(), set()
        thresholds = sorted(random.sample(range(50, total - 50), 3))
        deadline = time.time() + 180
        while len(acked) < total and time.time() < deadline:
            try:
                alice.connect(timeout=5)
                bob.connect(timeout=5)
                pending = {}
                todo = [i for i in range(total) if i not in acked]
                pos = 0
                while pos < len(todo) or pending:
                    while pos < len(todo) and len(pending) < 32:
                        i = todo[pos]
                        pos += 1
                        pending[send_request(alice, bob, mids[i], b"wb-%d" % i)] = i
                    try:
                        f = bob.frame(timeout=0.05)
                    except socket.timeout:
                        f = {}
                    if "envelope" in f:
                        received.add(f["envelope"]["client_message_id"])
                        bob.request(ack={"envelope_ids": [f["envelope"]["envelope_id"]]})
                    while True:
                        try:
                            op, data = alice.ws.recv(timeout=0.001)
                        except OSError:
                            break
                        r = pb.decode("ServerFrame", data)
                        i = pending.pop(r["id"], None)
                        sr = r.get("send_result")
                        if i is not None and sr and sr["status"] in (pb.SEND_OK,
                                                                     pb.SEND_DUPLICATE):
                            acked.add(i)
                    if thresholds and len(acked) >= thresholds[0]:
                        thresholds.pop(0)
                        s.sigkill_restart()
                        break
            except (OSError, wsclient.ConnectionClosed, wsclient.HandshakeError):
                time.sleep(0.05)
            finally:
                alice.close()
                bob.close()
        assert len(acked) == total, f"only {len(acked)} acknowledged"
        bob.connect(timeout=10)
        got, _ = bob.envelopes_until_drained(timeout=10)
        received |= {e["client_message_id"] for e in got}
        lost = [i for i in range(total) if mids[i] not in received]
        assert not lost, f"{len(lost)} acknowledged messages never reached bob: {lost[:10]}"
        s.stop()
    except BaseException:
        if s.proc and s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
        sys.stderr.write("---- parleyd log ----\n" + s.logs()[-6000:] + "\n")
        raise


if __name__ == "__main__":
    tests = [
        test_P8_writeback_acked_copy_never_written,
        test_writeback_unacked_copy_written_when_due,
        test_writeback_held_copy_reaches_reconnecting_device,
        test_writeback_sigterm_writes_what_is_held,
        test_writeback_fault_kill9_recipient_online,
    ]
    only = [t for t in tests if any(a in t.__name__ for a in sys.argv[1:])]
    sys.exit(run(only or tests))
