"""End-to-end encrypted messaging with the real CLI against a real parleyd: two users
talk offline and online, multi-device fan-out (the recipient's other devices and the
sender's own), exactly-once after a redelivery, safety numbers, and what is on disk:
the local store holds no plaintext (P7) and the server never sees the text (P10)."""
import json
import os
import select
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time

from harness import PARLEY, Server, cli, run

S = None
PW = "a long messaging password\n"
N = [0]


def home():
    return tempfile.mkdtemp(prefix="parley-msg-")


def user(prefix):
    """Register a fresh user and log in one device; returns (username, home)."""
    N[0] += 1
    name = f"{prefix}{N[0]}"
    h = home()
    cli(S, h, "register", "--username", name, "--name", prefix.title(), "--dob", "1990-01-01",
        "--password-stdin", stdin=PW)
    device(name, h)
    return name, h


def device(name, h=None):
    """Log in another device of name (its own home); returns the home."""
    h = h or home()
    p = cli(S, h, "login", "--username", name, "--password-stdin", stdin=PW)
    assert b"warning" not in p.stderr, p.stderr  # keys uploaded at login
    return h


def recv(h, *extra):
    p = cli(S, h, "--json", "recv", "--timeout", "20", *extra)
    lines = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
    return [m for m in lines if m.get("type") == "message"]


def send(h, to, text):
    p = cli(S, h, "--json", "send", to, text)
    return json.loads(p.stdout)["id"]


def test_offline_then_online_conversation():
    alice, ha = user("alice")
    bob, hb = user("bob")
    # Bob is offline (no CLI running): the message waits on the server.
    mid = send(ha, bob, "hello bob, are you there?")
    got = recv(hb)
    assert len(got) == 1, got
    m = got[0]
    assert m["id"] == mid and m["from"] == alice and m["text"] == "hello bob, are you there?"
    assert isinstance(m["sent_at"], int) and m["sent_at"] > 1_600_000_000
    assert recv(hb) == []  # acked: nothing left
    # Bob answers over the now established session; Alice receives it.
    send(hb, alice, "yes, here")
    got = recv(ha)
    assert [(m["from"], m["text"]) for m in got] == [(bob, "yes, here")], got
    # A few more in a row, in order.
    for i in range(5):
        send(ha, bob, f"line {i}")
    got = recv(hb)
    assert [m["text"] for m in got] == [f"line {i}" for i in range(5)], got
    # History on both sides, with delivery receipts applied to Alice's copy.
    hist = json.loads(cli(S, hb, "--json", "history", alice).stdout)["messages"]
    assert [x["text"] for x in hist] == ["hello bob, are you there?", "yes, here"] + \
        [f"line {i}" for i in range(5)]
    recv(ha)  # take in Bob's delivery receipts
    hist = json.loads(cli(S, ha, "--json", "history", bob).stdout)["messages"]
    assert hist[0]["outgoing"] and hist[0]["status"] == "delivered", hist[0]
    # Text mode is readable too.
    assert b"you: hello bob" in cli(S, ha, "history", bob).stdout


def test_multi_device_fanout():
    alice, ha1 = user("alice")
    bob, hb1 = user("bob")
    hb2 = device(bob)
    ha2 = device(alice)
    mid = send(ha1, bob, "to all of bob's devices")
    for h in (hb1, hb2):
        got = recv(h)
        assert [(m["id"], m["text"]) for m in got] == [(mid, "to all of bob's devices")], got
    # Alice's other device gets a sync copy of what she sent.
    got = recv(ha2)
    assert len(got) == 1 and got[0]["outgoing"] and got[0]["to"] == bob, got
    assert got[0]["text"] == "to all of bob's devices"
    # Bob answers from his second device: Alice's two devices and Bob's first get it.
    send(hb2, alice, "from bob's phone")
    for h in (ha1, ha2):
        assert [m["text"] for m in recv(h)] == ["from bob's phone"]
    got = recv(hb1)
    assert [m["text"] for m in got] == ["from bob's phone"] and got[0]["outgoing"]
    # A device that logs in later gets messages sent after its keys were uploaded.
    hb3 = device(bob)
    send(ha2, bob, "third device too")
    assert [m["text"] for m in recv(hb3)] == ["third device too"]


def test_exactly_once_after_redelivery():
    alice, ha = user("alice")
    bob, hb = user("bob")
    send(ha, bob, "only once please")
    # Stored locally but not acked: the server delivers it again next time.
    got = recv(hb, "--no-ack")
    assert [m["text"] for m in got] == ["only once please"]
    got = recv(hb)  # redelivered, recognised as seen, acked silently
    assert got == [], got
    got = recv(hb)
    assert got == []
    hist = json.loads(cli(S, hb, "--json", "history", alice).stdout)["messages"]
    assert [x["text"] for x in hist] == ["only once please"]
    # P8: the redelivered copy was acked, so nothing of Bob's is left in the queue.
    bob_id = json.loads(cli(S, hb, "--json", "whoami").stdout)["user_id"]
    db = S.db()
    try:
        left = db.execute("SELECT count(*) FROM envelopes WHERE user_id = ?",
                          (bob_id,)).fetchone()[0]
    finally:
        db.close()
    assert left == 0, left


def test_safety_numbers_match():
    alice, ha = user("alice")
    bob, hb = user("bob")
    send(ha, bob, "hi")
    recv(hb)
    a = json.loads(cli(S, ha, "--json", "safety-number", bob).stdout)
    b = json.loads(cli(S, hb, "--json", "safety-number", alice).stdout)
    assert len(a["safety_number"]) == 60 and a["safety_number"].isdigit()
    assert a["safety_number"] == b["safety_number"], (a, b)
    assert not a["identity_changed"]


def test_chat_over_a_pipe():
    alice, ha = user("alice")
    bob, hb = user("bob")
    p = cli(S, ha, "chat", bob, stdin="first line\nsecond line\n")
    assert p.returncode == 0
    assert [m["text"] for m in recv(hb)] == ["first line", "second line"]


def test_listen_and_send_on_one_device():
    """listen (which also sends receipts) and send run at once on the same home: the
    local store's write lock keeps them from using a ratchet state twice."""
    alice, ha = user("alice")
    bob, hb = user("bob")
    send(ha, bob, "start")
    recv(hb)
    recv(ha)
    cmd = [PARLEY, "--server", f"http://127.0.0.1:{S.port}", "--home", hb, "--json", "listen"]
    listener = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for i in range(6):
            send(ha, bob, f"a{i}")
            send(hb, alice, f"b{i}")
        deadline = time.time() + 20
        seen = []
        while time.time() < deadline and len(seen) < 6:
            line = listener.stdout.readline()
            if not line:
                break
            m = json.loads(line)
            if m.get("type") == "message":
                seen.append(m["text"])
        assert seen == [f"a{i}" for i in range(6)], seen
    finally:
        listener.terminate()
        out, err = listener.communicate(timeout=20)
    assert listener.returncode == 0, (listener.returncode, err)
    assert b"could not be decrypted" not in err, err
    p = cli(S, ha, "--json", "recv")
    texts = [json.loads(l)["text"] for l in p.stdout.decode().splitlines()
             if json.loads(l).get("type") == "message"]
    assert texts == [f"b{i}" for i in range(6)], (texts, p.stderr)
    assert b"could not be decrypted" not in p.stderr


def test_prekeys_topped_up_when_low():
    bob, hb = user("bob")
    carol, hc = user("carol")
    bob_token = json.load(open(os.path.join(hb, "credentials.json")))["token"]
    carol_token = json.load(open(os.path.join(hc, "credentials.json")))["token"]
    status, doc, _ = S.request("GET", "/v1/keys", token=bob_token)
    assert status == 200 and doc["one_time_prekeys"] == 100, (status, doc)
    for _ in range(85):  # others starting sessions use up Bob's one-time prekeys
        status, _, _ = S.request("GET", f"/v1/keys/{bob}", token=carol_token)
        assert status == 200
    status, doc, _ = S.request("GET", "/v1/keys", token=bob_token)
    assert doc["one_time_prekeys"] == 15, doc
    recv(hb)  # any messaging command notices the low stock and uploads a new batch
    status, doc, _ = S.request("GET", "/v1/keys", token=bob_token)
    assert doc["one_time_prekeys"] == 115, doc
    # The new prekeys work: a first contact uses one of them.
    alice, ha = user("alice")
    send(ha, bob, "with a fresh prekey")
    assert [m["text"] for m in recv(hb)] == ["with a fresh prekey"]


def test_errors():
    alice, ha = user("alice")
    p = cli(S, ha, "send", "nobody_here_xyz", "hi", check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    p = cli(S, ha, "send", "onlyone", check=False)
    assert p.returncode == 2
    p = cli(S, home(), "send", alice, "hi", check=False)  # not logged in
    assert p.returncode == 1 and b"not logged in" in p.stderr, p.stderr


def test_P7_local_store_has_no_plaintext():
    alice, ha = user("alice")
    bob, hb = user("bob")
    secret = "the treasure is under the third oak tree"
    send(ha, bob, secret)
    assert [m["text"] for m in recv(hb)] == [secret]
    for h in (ha, hb):
        db = os.path.join(h, "local.db")
        key = os.path.join(h, "local.key")
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        for name in os.listdir(h):
            if not name.startswith("local.db"):
                continue
            data = open(os.path.join(h, name), "rb").read()
            for needle in (secret, "treasure", alice, bob):
                assert needle.encode() not in data, (name, needle)
        assert os.path.getsize(db) > 0


def test_P10_server_never_sees_text():
    alice, ha = user("alice")
    bob, hb = user("bob")
    secret = "server must never read this sentence"
    send(ha, bob, secret)  # waits in the queue: Bob is offline
    for name in os.listdir(S.data):
        path = os.path.join(S.data, name)
        if os.path.isfile(path):
            assert secret.encode() not in open(path, "rb").read(), name
    assert [m["text"] for m in recv(hb)] == [secret]


def test_group_sender_keys():
    alice, ha = user("alice")
    bob, hb1 = user("bob")
    carol, hc = user("carol")
    hb2 = device(bob)
    g = json.loads(cli(S, ha, "--json", "group", "create", "team", bob, carol).stdout)
    gid = g["group_id"]
    assert sorted(m["username"] for m in g["members"]) == sorted([alice, bob, carol])
    cli(S, ha, "--json", "group", "send", gid, "hello team")
    for h in (hb1, hb2, hc):
        got = recv(h)
        assert [(m["text"], m["from"], m.get("group_id")) for m in got] == \
            [("hello team", alice, gid)], got
    # A second message goes with the sender key alone (the devices have it now).
    cli(S, ha, "group", "send", "team", "second")  # by name
    for h in (hb1, hb2, hc):
        assert [m["text"] for m in recv(h)] == ["second"]
    # Bob answers from his phone: Alice, Carol and Bob's other device get it.
    cli(S, hb2, "group", "send", gid, "bob here")
    for h in (ha, hc):
        assert [m["text"] for m in recv(h)] == ["bob here"]
    got = recv(hb1)
    assert [m["text"] for m in got] == ["bob here"] and got[0]["outgoing"], got
    # Carol is removed; the next message is for Alice and Bob only, under a new key.
    cli(S, ha, "group", "remove", gid, carol)
    cli(S, ha, "group", "send", gid, "after carol left")
    assert [m["text"] for m in recv(hb1)] == ["after carol left"]
    assert [m["text"] for m in recv(hb2)] == ["after carol left"]
    assert recv(hc) == []
    hist = json.loads(cli(S, hb1, "--json", "group", "history", gid).stdout)["messages"]
    assert [x["text"] for x in hist] == ["hello team", "second", "bob here", "after carol left"]
    groups = json.loads(cli(S, hb1, "--json", "group", "list").stdout)["groups"]
    assert [x["group_id"] for x in groups] == [gid]
    p = cli(S, hc, "group", "send", gid, "let me back in", check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)


def test_passphrase_protected_store():
    N[0] += 1
    name = f"pp{N[0]}"
    h = home()
    env_before = os.environ.get("PARLEY_PASSPHRASE")
    os.environ["PARLEY_PASSPHRASE"] = "a passphrase for the local store"
    try:
        cli(S, h, "register", "--username", name, "--name", "P", "--dob", "1990-01-01",
            "--password-stdin", stdin=PW)
        device(name, h)
        assert os.path.exists(os.path.join(h, "local.salt"))
        assert not os.path.exists(os.path.join(h, "local.key"))
        os.environ["PARLEY_PASSPHRASE"] = "wrong"
        p = cli(S, h, "recv", check=False)
        assert p.returncode == 1 and b"passphrase" in p.stderr, p.stderr
    finally:
        if env_before is None:
            os.environ.pop("PARLEY_PASSPHRASE", None)
        else:
            os.environ["PARLEY_PASSPHRASE"] = env_before


def local_rows(h):
    """Rows of the local history table (sealed records; only counts are readable)."""
    db = sqlite3.connect(os.path.join(h, "local.db"))
    try:
        return db.execute("SELECT count(*) FROM msgs").fetchone()[0]
    finally:
        db.close()


def test_P10_timer_deletes_opened_message():
    """P10: a disappearing-message timer runs on the clients: once the message was opened
    (received) and its timer ran out, the history entry is gone from the local store
    too, not merely hidden; the sender's copy goes the same way."""
    alice, ha = user("alice")
    bob, hb = user("bob")
    send(ha, bob, "kept")
    mid = json.loads(cli(S, ha, "--json", "send", "--expire", "2", bob,
                         "this disappears").stdout)["id"]
    got = recv(hb)
    assert [(m["text"], m["expire_after"]) for m in got] == [("kept", 0),
                                                             ("this disappears", 2)], got
    hist = json.loads(cli(S, hb, "--json", "history", alice).stdout)["messages"]
    assert [x["text"] for x in hist] == ["kept", "this disappears"], hist
    rows_b, rows_a = local_rows(hb), local_rows(ha)
    time.sleep(2.5)
    for h, peer, rows in ((hb, alice, rows_b), (ha, bob, rows_a)):
        hist = json.loads(cli(S, h, "--json", "history", peer).stdout)["messages"]
        assert [x["text"] for x in hist] == ["kept"], hist
        assert mid not in [x["id"] for x in hist]
        assert local_rows(h) == rows - 1, (local_rows(h), rows)  # deleted, not hidden
    cli(S, hb, "history", alice)  # reading again changes nothing
    assert local_rows(hb) == rows_b - 1


def test_P10_read_receipts_never_visible_to_server():
    """P10: read state is end-to-end. Bob's read receipt waits in Alice's queue as an
    envelope the server cannot tell from a short text message (same kind, same padded
    size, no read flag anywhere in its schema), yet Alice's client applies it."""
    alice, ha = user("alice")
    bob, hb = user("bob")
    mid = send(ha, bob, "did you read this?")
    recv(hb)                       # delivery receipt to Alice (queued: she is offline)
    cli(S, hb, "read", alice)      # read receipt, queued too
    send(hb, alice, "ok")          # and an ordinary short text
    alice_id = json.loads(cli(S, ha, "--json", "whoami").stdout)["user_id"]
    db = S.db()
    try:
        cols = [r[1] for r in db.execute("PRAGMA table_info(envelopes)")]
        rows = db.execute("SELECT * FROM envelopes WHERE user_id = ?", (alice_id,)).fetchall()
    finally:
        db.close()
    assert len(rows) == 3, rows
    for c in cols:  # no column that could carry read state
        assert not any(w in c.lower() for w in ("read", "receipt", "seen", "status")), cols
    shapes = set()
    for r in rows:
        rec = dict(zip(cols, r))
        shapes.add((rec["kind"], rec["sender_user"], rec["sender_device"], rec["group_id"],
                    rec["peer_user"], rec["peer_devices"], len(rec["body"]),
                    len(rec["client_msg_id"])))
    assert len(shapes) == 1, shapes  # receipt, receipt and text look alike to the server
    recv(ha)
    hist = json.loads(cli(S, ha, "--json", "history", bob).stdout)["messages"]
    assert hist[0]["id"] == mid and hist[0]["status"] == "read", hist[0]


def test_P9_expired_notice_reaches_sender():
    """P9: a message not delivered within the queue TTL is deleted and the sender's
    client is told: `recv` prints the notice on stderr, `listen --json` as an object,
    and the history entry's status becomes "expired". The recipient never gets it."""
    with Server("--queue-ttl", "2s", "--purge-interval", "1s",
                "--rl-register-ip-per-hour", "100000", "--rl-login-ip-per-min", "100000",
                "--rl-login-account-per-min", "100000") as srv:
        global S
        saved, S = S, srv
        try:
            alice, ha = user("alice")
            bob, hb = user("bob")
            mid = send(ha, bob, "you will never see this")
            # The notice is queued for Alice with the same short TTL: poll for it.
            want = f"message {mid[:8]} to {bob} expired undelivered (1 device(s))".encode()
            deadline, err = time.time() + 15, b""
            while time.time() < deadline and want not in err:
                time.sleep(0.5)
                err = cli(S, ha, "recv", "--timeout", "20").stderr
            assert want in err, err
            hist = json.loads(cli(S, ha, "--json", "history", bob).stdout)["messages"]
            assert [(x["id"], x["status"]) for x in hist] == [(mid, "expired")], hist
            assert recv(hb) == []
            # With the sender online (listen --json), the notice arrives as an object.
            cmd = [PARLEY, "--server", f"http://127.0.0.1:{S.port}", "--home", ha, "--json",
                   "listen"]
            lst = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                mid2 = send(ha, bob, "nor this")
                ready, _, _ = select.select([lst.stdout], [], [], 15)
                assert ready, "no expiry notice within 15 s"
                doc = json.loads(lst.stdout.readline())
            finally:
                lst.terminate()
                lst.communicate(timeout=20)
            assert doc == {"type": "expired", "id": mid2, "to": bob, "devices": 1}, doc
            assert recv(hb) == []
        finally:
            S = saved


if __name__ == "__main__":
    # Many accounts, logins and key fetches from one IP: lift those limits (they have
    # their own tests in test_accounts / test_keys_groups).
    with Server("--rl-register-ip-per-hour", "100000", "--rl-login-ip-per-min", "100000",
                "--rl-login-account-per-min", "100000", "--rl-key-fetch-per-hour",
                "100000") as S:
        status = run([test_offline_then_online_conversation, test_multi_device_fanout,
                      test_exactly_once_after_redelivery, test_safety_numbers_match,
                      test_chat_over_a_pipe, test_listen_and_send_on_one_device,
                      test_prekeys_topped_up_when_low, test_errors, test_P7_local_store_has_no_plaintext,
                      test_P10_server_never_sees_text, test_group_sender_keys,
                      test_passphrase_protected_store, test_P10_timer_deletes_opened_message,
                      test_P10_read_receipts_never_visible_to_server,
                      test_P9_expired_notice_reaches_sender])
    sys.exit(status)
