"""Accounts API, black-box against a real parleyd: P1, P2, P5, P29 and rectification."""
import re
import shutil
import sys
import tempfile
import time

from harness import Server, expect_error, run

S = None


def test_P1_register_takes_exactly_the_profile_fields():
    status, doc, _ = S.register("alice", region="PL", gender="female")
    assert status == 201, doc
    assert set(doc) == {"user_id"}
    status, doc, _ = S.register("bob.b_1")
    assert status == 201, doc
    # Unknown fields are rejected, not stored.
    expect_error(S.register("carol", phone="+48123456789"), 400, "unknown_field")
    expect_error(S.request("POST", "/v1/accounts",
                           {"username": "carol", "dob": "1990-01-01", "password": "x" * 12}),
                 400, "missing_field")
    with S.db() as db:
        assert db.execute("select count(*) from users where username='carol'").fetchone()[0] == 0


def test_P1_username_rules():
    expect_error(S.register("alice"), 409, "username_taken")
    for bad in ["ab", "a" * 33, "Alice", "al ice", "al-ice", "ąlice", ""]:
        status, doc, _ = S.register(bad)
        assert status == 400, (bad, status, doc)
    status, _, _ = S.register("a" * 32)
    assert status == 201


def test_P1_field_validation():
    expect_error(S.register("dave", dob="2001-02-29"), 400, "invalid_date")
    expect_error(S.register("dave", dob="1990-13-01"), 400, "invalid_date")
    expect_error(S.register("dave", dob="3000-01-01"), 400, "invalid_date")
    expect_error(S.register("dave", dob="17.05.1990"), 400, "invalid_date")
    status, doc, _ = S.register("dave", name=12)
    assert status == 400 and doc["error"]["code"] == "invalid_type", doc
    status, doc, _ = S.register("dave", password="short")
    assert status == 400, doc
    status, doc, _ = S.register("dave", name="")
    assert status == 400, doc
    status, doc, _ = S.register("dave", region="XX")
    assert status == 400, doc


def test_P29_under_13_refused_and_nothing_stored():
    today = time.gmtime()
    dob = f"{today.tm_year - 12:04d}-01-01"
    before = S.db().execute("select count(*) from users").fetchone()[0]
    expect_error(S.register("kiddo", dob=dob), 403, "age_restricted")
    with S.db() as db:
        assert db.execute("select count(*) from users").fetchone()[0] == before
        for (table,) in db.execute("select name from sqlite_master where type='table'"):
            for row in db.execute(f"select * from \"{table}\""):
                assert "kiddo" not in repr(row), (table, row)
    assert "kiddo" not in S.logs()


def test_P29_eu_teen_needs_parental_consent():
    today = time.gmtime()
    teen = f"{today.tm_year - 14:04d}-01-01"
    status, doc, _ = S.register("teen_pl", dob=teen, region="PL")
    assert status == 201, doc
    tok = S.login("teen_pl")[1]["token"]
    status, me, _ = S.request("GET", "/v1/me", token=tok)
    assert status == 200 and me["parental_consent_required"] is True, me
    status, doc, _ = S.register("teen_us", dob=teen, region="US")
    assert status == 201, doc
    tok = S.login("teen_us")[1]["token"]
    assert S.request("GET", "/v1/me", token=tok)[1]["parental_consent_required"] is False


def test_P2_sessions_and_no_secrets_at_rest():
    status, doc, _ = S.login("alice", device_name="laptop")
    assert status == 201, doc
    token = doc["token"]
    assert set(doc) >= {"token", "user_id", "device_id"}
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token), token  # 256 bits, base64url
    expect_error(S.login("alice", password="wrong password"), 401, "invalid_credentials")
    expect_error(S.login("nobody_here"), 401, "invalid_credentials")
    with S.db() as db:
        dump = "\n".join(db.iterdump())
    assert token not in dump
    assert "correct horse battery" not in dump
    assert "$argon2id$" in dump
    logs = S.logs()
    assert token not in logs and "correct horse battery" not in logs
    # Logout revokes the token at once.
    assert S.request("DELETE", "/v1/sessions/current", token=token)[0] == 204
    expect_error(S.request("GET", "/v1/me", token=token), 401, "unauthorized")
    expect_error(S.request("GET", "/v1/me"), 401, "unauthorized")
    expect_error(S.request("GET", "/v1/me", token="not-a-token"), 401, "unauthorized")


def test_P5_ids_random_and_opaque():
    ids = []
    for i in range(3):
        status, doc, _ = S.register(f"idcheck{i}")
        assert status == 201
        ids.append(doc["user_id"])
    assert len(set(ids)) == 3
    for uid in ids:
        assert len(uid) >= 22 and not uid.isdigit(), uid


def test_P5_devices_at_most_six():
    tokens = [S.login("bob.b_1", device_name=f"d{i}")[1]["token"] for i in range(6)]
    expect_error(S.login("bob.b_1"), 409, "device_limit")
    status, doc, _ = S.request("GET", "/v1/devices", token=tokens[0])
    assert status == 200 and len(doc["devices"]) == 6, doc
    assert sum(1 for d in doc["devices"] if d["current"]) == 1
    victim = [d for d in doc["devices"] if not d["current"]][0]["device_id"]
    assert S.request("DELETE", f"/v1/devices/{victim}", token=tokens[0])[0] == 204
    status, doc, _ = S.request("GET", "/v1/devices", token=tokens[0])
    assert len(doc["devices"]) == 5
    # The revoked device's token no longer works; another user's device can't be revoked.
    dead = [t for t in tokens if S.request("GET", "/v1/me", token=t)[0] == 401]
    assert len(dead) == 1
    alice = S.login("alice")[1]["token"]
    other = doc["devices"][0]["device_id"]
    expect_error(S.request("DELETE", f"/v1/devices/{other}", token=alice), 404, "not_found")
    assert S.login("bob.b_1")[0] == 201


def test_rectification_patch_me():
    tok = S.login("alice")[1]["token"]
    status, me, _ = S.request("PATCH", "/v1/me", {"name": "Alice Liddell", "region": "DE"},
                              token=tok)
    assert status == 200 and me["name"] == "Alice Liddell" and me["region"] == "DE", me
    status, me, _ = S.request("GET", "/v1/me", token=tok)
    assert me["name"] == "Alice Liddell" and me["username"] == "alice"
    status, me, _ = S.request("PATCH", "/v1/me", {"gender": None}, token=tok)
    assert status == 200 and me["gender"] is None, me
    expect_error(S.request("PATCH", "/v1/me", {"username": "mallory"}, token=tok),
                 400, "unknown_field")
    expect_error(S.request("PATCH", "/v1/me", {"dob": "1990-01-01"}, token=tok),
                 400, "unknown_field")


def test_rate_limit_login_per_account():
    with Server("--rl-login-account-per-min", "3") as s:
        assert s.register("rl_user")[0] == 201
        codes = [s.login("rl_user", password="bad password")[0] for _ in range(3)]
        assert codes == [401, 401, 401], codes
        status, doc, hdrs = s.login("rl_user")
        assert status == 429 and doc["error"]["code"] == "rate_limited", doc
        assert int(hdrs["retry-after"]) >= 1


def test_rate_limit_registration_per_ip():
    with Server("--rl-register-ip-per-hour", "2") as s:
        assert s.register("reg_a")[0] == 201
        assert s.register("reg_b")[0] == 201
        status, doc, hdrs = s.register("reg_c")
        assert status == 429 and "retry-after" in hdrs, doc


def test_session_expiry():
    data = tempfile.mkdtemp(prefix="parley-expiry-")
    try:
        with Server("--session-ttl", "60s", data_dir=data) as s:
            tok = s.new_user("exp_user")["token"]
            assert s.request("GET", "/v1/me", token=tok)[0] == 200
        # Same data directory, clock moved past the expiry: the token is dead.
        with Server("--clock-offset", "120s", data_dir=data) as s2:
            expect_error(s2.request("GET", "/v1/me", token=tok), 401, "unauthorized")
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    with Server() as S:
        status = run([test_P1_register_takes_exactly_the_profile_fields, test_P1_username_rules,
             test_P1_field_validation, test_P29_under_13_refused_and_nothing_stored,
             test_P29_eu_teen_needs_parental_consent, test_P2_sessions_and_no_secrets_at_rest,
             test_P5_ids_random_and_opaque, test_P5_devices_at_most_six,
             test_rectification_patch_me, test_rate_limit_login_per_account,
             test_rate_limit_registration_per_ip, test_session_expiry])
    sys.exit(status)
