"""test_rights_consent.py — consent, policy versions, retention and the audit log, against
the real parleyd and real `parleyd admin` processes on the same data directory.

Covers P28/P12 (per-purpose consent with history, withdrawal at once), P29 (parental
consent gate and its audited operator record), P30 (a material policy published by the
admin process gates the running server's API, allow-list, acceptance), P31 (each
retention category purged on time and not before, by the admin job and by the server's
purge pass), P26 (legal export audited first; tampering detected; transparency counts).
"""
import datetime
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PARLEYD, Server, expect_error, run  # noqa: E402

PURPOSES = {"contacts_sync", "suggestions", "diagnostics", "location_sharing"}


def admin(server, *args, offset=None):
    cmd = [PARLEYD, "admin", *args, "--data", server.data]
    if offset:
        cmd += ["--clock-offset", offset]
    return subprocess.run(cmd, capture_output=True, timeout=60, text=True)


def publish(server, version, kind, text=None):
    path = os.path.join(server.tmp, f"policy-{version}.txt")
    with open(path, "w") as f:
        f.write(text or f"Privacy policy {version}.\nWe keep your messages 15 days at most.\n")
    p = admin(server, "policy", "publish", "--version", version, "--file", path, f"--{kind}")
    assert p.returncode == 0, p.stderr
    return p


def consents(server, token):
    status, doc, _ = server.request("GET", "/v1/me/consents", token=token)
    assert status == 200, (status, doc)
    return {c["purpose"]: c for c in doc["consents"]}


def test_P28_consent_recorded_with_history():
    with Server() as s:
        publish(s, "2025-01", "minor")
        u = s.new_user("c_alice")
        tok = u["token"]
        got = consents(s, tok)
        assert set(got) == PURPOSES, got
        assert all(c["granted"] is False and c["updated_at"] is None for c in got.values())
        status, doc, _ = s.request("PUT", "/v1/me/consents/contacts_sync", {"granted": True},
                                   token=tok)
        assert status == 200 and doc["granted"] is True and doc["policy_version"] == "2025-01", doc
        got = consents(s, tok)
        assert got["contacts_sync"]["granted"] is True
        assert got["contacts_sync"]["policy_version"] == "2025-01"
        assert got["suggestions"]["granted"] is False
        status, doc, _ = s.request("PUT", "/v1/me/consents/contacts_sync", {"granted": False},
                                   token=tok)
        assert status == 200 and doc["granted"] is False
        with s.db() as db:
            hist = db.execute("SELECT purpose, granted, policy_version FROM consent_history "
                              "WHERE user_id = ? ORDER BY id", (u["user_id"],)).fetchall()
        assert hist == [("contacts_sync", 1, "2025-01"), ("contacts_sync", 0, "2025-01")], hist
        # Strict input and unknown purposes.
        expect_error(s.request("PUT", "/v1/me/consents/ads", {"granted": True}, token=tok),
                     404, "unknown_purpose")
        expect_error(s.request("PUT", "/v1/me/consents/suggestions", {"granted": "yes"},
                               token=tok), 400, "invalid_type")
        expect_error(s.request("PUT", "/v1/me/consents/suggestions",
                               {"granted": True, "extra": 1}, token=tok), 400, "unknown_field")
        expect_error(s.request("PUT", "/v1/me/consents/suggestions", {}, token=tok),
                     400, "missing_field")
        expect_error(s.request("GET", "/v1/me/consents"), 401, "unauthorized")


def test_P12_withdrawal_refuses_at_once():
    # The very next read after a withdrawal sees it (no cache), for every purpose.
    with Server() as s:
        tok = s.new_user("c_bob")["token"]
        for p in sorted(PURPOSES):
            assert s.request("PUT", f"/v1/me/consents/{p}", {"granted": True},
                             token=tok)[0] == 200
            assert consents(s, tok)[p]["granted"] is True
            assert s.request("PUT", f"/v1/me/consents/{p}", {"granted": False},
                             token=tok)[0] == 200
            assert consents(s, tok)[p]["granted"] is False


def test_P29_parental_consent_gate():
    with Server() as s:
        dob = (datetime.date.today() - datetime.timedelta(days=14 * 365 + 30)).isoformat()
        status, doc, _ = s.register("c_teen", dob=dob, region="DE")
        assert status == 201, doc
        status, doc, _ = s.login("c_teen")
        tok, uid = doc["token"], doc["user_id"]
        status, me, _ = s.request("GET", "/v1/me", token=tok)
        assert status == 200 and me["parental_consent_required"] is True, me
        expect_error(s.request("PUT", "/v1/me/consents/location_sharing", {"granted": True},
                               token=tok), 403, "parental_consent_required")
        # Withdrawing is always possible.
        assert s.request("PUT", "/v1/me/consents/location_sharing", {"granted": False},
                         token=tok)[0] == 200
        p = admin(s, "parental-consent", "c_teen")
        assert p.returncode == 2, p.stderr
        p = admin(s, "parental-consent", "c_teen", "--reference", "signed form #42",
                  "--operator", "ops-anna")
        assert p.returncode == 0, p.stderr
        status, doc, _ = s.request("PUT", "/v1/me/consents/location_sharing", {"granted": True},
                                   token=tok)
        assert status == 200 and doc["granted"] is True, doc
        with s.db() as db:
            rows = db.execute("SELECT actor, kind, subject, detail FROM audit_log").fetchall()
            assert db.execute("SELECT reference FROM parental_consents WHERE user_id = ?",
                              (uid,)).fetchone() == ("signed form #42",)
        assert len(rows) == 1 and rows[0][:2] == ("ops-anna", "parental_consent"), rows
        assert rows[0][3] == "signed form #42" and uid not in rows[0][2], rows
        assert admin(s, "parental-consent", "nobody_here", "--reference", "x").returncode == 1


def gated(s, tok, version):
    status, doc, _ = s.request("GET", "/v1/me", token=tok)
    if status == 200:
        return False
    assert status == 403 and doc["error"]["code"] == "policy_consent_required", (status, doc)
    assert doc["error"]["version"] == version and version in doc["error"]["message"], doc
    return True


def test_P30_material_policy_gates_api():
    with Server() as s:
        expect_error(s.request("GET", "/v1/policy"), 404, "no_policy")
        old = s.new_user("c_carol")
        other = s.new_user("c_dave")
        tok = old["token"]
        publish(s, "v1", "minor")
        time.sleep(2.5)
        assert not gated(s, tok, "v1")  # a minor version gates nothing
        # Published by another process while the server runs: seen within seconds.
        time.sleep(1.1)  # registrations in a later second than the publication below
        publish(s, "v2", "material", "Version 2: we now keep call quality data 90 days.\n")
        deadline = time.time() + 5
        while not gated(s, tok, "v2"):
            assert time.time() < deadline, "the material policy did not gate within 5 s"
            time.sleep(0.2)
        status, doc, _ = s.request("GET", "/v1/policy")
        assert status == 200 and doc["version"] == "v2" and doc["material"] is True
        assert doc["text"].startswith("Version 2") and isinstance(doc["published_at"], int)
        # Gated: other features, the stream, granting a consent.
        expect_error(s.request("GET", "/v1/devices", token=tok), 403, "policy_consent_required")
        expect_error(s.request("GET", "/v1/stream", token=tok,
                               headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                        "Sec-WebSocket-Version": "13"}),
                     403, "policy_consent_required")
        expect_error(s.request("PUT", "/v1/me/consents/diagnostics", {"granted": True},
                               token=tok), 403, "policy_consent_required")
        # Allowed: reading consents, withdrawing.
        assert s.request("GET", "/v1/me/consents", token=tok)[0] == 200
        assert s.request("PUT", "/v1/me/consents/diagnostics", {"granted": False},
                         token=tok)[0] == 200
        # A new account registers under v2 and is not gated.
        new = s.new_user("c_erin")
        assert s.request("GET", "/v1/me", token=new["token"])[0] == 200
        # Accepting an unknown or older version does not lift the gate.
        expect_error(s.request("POST", "/v1/policy/accept", {"version": "v9"}, token=tok),
                     404, "unknown_version")
        assert s.request("POST", "/v1/policy/accept", {"version": "v1"}, token=tok)[0] == 200
        assert gated(s, tok, "v2")
        status, doc, _ = s.request("POST", "/v1/policy/accept", {"version": "v2"}, token=tok)
        assert status == 200 and doc["version"] == "v2", doc
        assert not gated(s, tok, "v2")
        assert s.request("GET", "/v1/devices", token=tok)[0] == 200
        # A later minor version keeps the acceptance; logout works while gated.
        publish(s, "v3", "minor")
        time.sleep(2.5)
        assert not gated(s, tok, "v2")
        assert gated(s, other["token"], "v2")
        assert s.request("DELETE", "/v1/sessions/current", token=other["token"])[0] == 204
        with s.db() as db:
            acc = db.execute("SELECT p.version FROM policy_acceptances a JOIN policies p "
                             "ON p.seq = a.policy_seq WHERE a.user_id = ? ORDER BY p.seq",
                             (old["user_id"],)).fetchall()
        assert acc == [("v1",), ("v2",)], acc
        assert admin(s, "policy", "publish", "--version", "v2", "--file",
                     os.path.join(s.tmp, "policy-v2.txt"), "--minor").returncode == 1


def count(s, table):
    with s.db() as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def seed_retention_rows(s, t):
    with s.db() as db:
        db.execute("INSERT INTO call_quality (received_at, started_at, duration_ms, codec) "
                   "VALUES (?, ?, 60000, 'opus')", (t, t))
        db.execute("INSERT INTO security_events (at, kind) VALUES (?, 'login_failed')", (t,))
        db.execute("INSERT INTO reports (id, created_at) VALUES ('r1', ?)", (t,))
        db.execute("INSERT INTO purchases (id, user_id, product, order_ref, purchased_at) "
                   "VALUES ('p1', 'pseudo', 'phone_link', 'rcpt-1', ?)", (t,))


def test_P31_retention_per_category():
    with Server() as s:
        p = admin(s, "retention")
        assert p.returncode == 0
        for cat in ("queued_envelopes", "sessions", "call_quality", "security_events", "reports",
                    "purchases", "consents_and_history", "audit_log"):
            assert cat in p.stdout, p.stdout
        seed_retention_rows(s, int(time.time()))
        tables = ["security_events", "call_quality", "reports", "purchases"]
        # (offset just before, offset at) the period of each table, in that order. The
        # rows were written a moment ago, so "before" is a day early.
        steps = [("6d", "8d"), ("89d", "91d"), ("364d", "366d"), ("2190d", "2192d")]
        for i, (before, after) in enumerate(steps):
            p = admin(s, "retention", "--run", offset=before)
            assert p.returncode == 0, p.stderr
            assert [count(s, t) for t in tables[i:]] == [1] * (4 - i), (before, tables[i:])
            p = admin(s, "retention", "--run", offset=after)
            assert p.returncode == 0, p.stderr
            assert count(s, tables[i]) == 0, (after, tables[i], p.stdout)
            assert f"{tables[i]} 1" in p.stdout, p.stdout
    # The server's own purge pass runs the same jobs.
    with Server("--purge-interval", "1s", "--clock-offset", "8d") as s:
        seed_retention_rows(s, int(time.time()))
        deadline = time.time() + 10
        while count(s, "security_events"):
            assert time.time() < deadline, "the purge pass did not delete security events"
            time.sleep(0.2)
        assert count(s, "call_quality") == 1 and count(s, "reports") == 1


def test_P26_audit_tamper_detected():
    with Server() as s:
        u = s.new_user("c_frank")
        expect = admin(s, "export", "c_frank")
        assert expect.returncode == 2
        p = admin(s, "export", "c_frank", "--reason", "court order 2025/17", "--operator", "ops-b")
        assert p.returncode == 0, p.stderr
        doc = json.loads(p.stdout)
        assert doc["user_id"] == u["user_id"], doc.keys()
        p = admin(s, "parental-consent", "c_frank", "--reference", "ref-1")
        assert p.returncode == 0, p.stderr
        p = admin(s, "audit", "verify")
        assert p.returncode == 0 and "2 entries" in p.stdout, (p.stdout, p.stderr)
        p = admin(s, "transparency", "--since", "2000-01-01")
        assert p.returncode == 0, p.stderr
        assert "legal_export 1" in p.stdout and "parental_consent 1" in p.stdout, p.stdout
        assert "chain intact" in p.stdout
        assert admin(s, "transparency", "--since", "yesterday").returncode == 2
        with s.db() as db:
            kinds = db.execute("SELECT kind, detail FROM audit_log ORDER BY seq").fetchall()
            assert kinds[0] == ("legal_export", "court order 2025/17"), kinds
            # The log refuses edits ...
            try:
                db.execute("UPDATE audit_log SET detail = 'routine' WHERE seq = 1")
                raise AssertionError("audit_log accepted an UPDATE")
            except Exception as e:  # sqlite3.IntegrityError
                assert "append-only" in str(e), e
        # ... and an edit made around the triggers is detected, naming the entry.
        with s.db() as db:
            db.execute("DROP TRIGGER audit_log_no_update")
            db.execute("UPDATE audit_log SET detail = 'routine check' WHERE seq = 1")
        p = admin(s, "audit", "verify")
        assert p.returncode == 1 and "entry 1" in p.stderr, (p.stdout, p.stderr)
        p = admin(s, "transparency", "--since", "2000-01-01")
        assert "BROKEN at entry 1" in p.stdout, p.stdout


if __name__ == "__main__":
    sys.exit(run([test_P28_consent_recorded_with_history, test_P12_withdrawal_refuses_at_once,
                  test_P29_parental_consent_gate, test_P30_material_policy_gates_api,
                  test_P31_retention_per_category, test_P26_audit_tamper_detected]))
