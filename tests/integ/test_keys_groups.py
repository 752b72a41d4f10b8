"""Keys and groups API, black-box against a real parleyd: prekey upload (signature and key
checks, identity pinning, stock limits), bundle fetch (one one-time prekey per device per
fetch, then the signed prekey alone), rate limits; groups (create, list, get, rename,
add, remove, leave, admin rules, 404 for non-members) and P20 (the server keeps only the
group name, members, admins and times). Key material comes from parley-testkit.
"""
import json
import os
import re
import subprocess
import sys

from harness import Server, expect_error, run

TESTKIT = os.environ.get("PARLEY_TESTKIT", "build/parley-testkit")
S = None
SEED_A = "a1" * 32
SEED_B = "b2" * 32


def testkit(*args, stdin=None):
    p = subprocess.run([TESTKIT, *args], input=stdin, capture_output=True, timeout=60,
                       text=True)
    return p


def upload_body(*args):
    p = testkit("keys-upload", *args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def put_keys(token, body):
    return S.request("PUT", "/v1/keys", body, token=token)


def fetch(token, username, query="", server=None):
    return (server or S).request("GET", f"/v1/keys/{username}{query}", token=token)


def stock(token):
    status, doc, _ = S.request("GET", "/v1/keys", token=token)
    assert status == 200, (status, doc)
    return doc


def bundles_verify(doc):
    p = testkit("bundle-verify", stdin=json.dumps(doc))
    return p.returncode == 0 and p.stdout.startswith("ok ")


_users = {}


def user(name):
    """A registered user with one logged-in device (cached per name)."""
    if name not in _users:
        _users[name] = S.new_user(name)
    return _users[name]


def device(name):
    """Another device (login) of an existing user."""
    status, doc, _ = S.login(name)
    assert status == 201, (status, doc)
    return doc


# ---------------------------------------------------------------- keys

def test_keys_auth_required():
    body = upload_body("--onetime", "1")
    expect_error(S.request("PUT", "/v1/keys", body), 401, "unauthorized")
    expect_error(S.request("GET", "/v1/keys"), 401, "unauthorized")
    expect_error(S.request("GET", "/v1/keys/alice"), 401, "unauthorized")
    expect_error(S.request("PUT", "/v1/keys", body, token="x" * 43), 401, "unauthorized")


def test_keys_upload_stock_and_top_up():
    tok = user("k_up")["token"]
    assert stock(tok) == {"one_time_prekeys": 0, "low": True}
    status, doc, _ = put_keys(tok, upload_body("--seed", SEED_A, "--onetime", "5"))
    assert status == 200, doc
    assert doc == {"one_time_prekeys": 5, "low": True}
    assert stock(tok) == doc
    # Top-up without a signed prekey, same identity: accepted; low clears at 20.
    body = upload_body("--seed", SEED_A, "--onetime", "15", "--first-id", "6",
                       "--no-signed-prekey")
    assert "signed_prekey" not in body
    status, doc, _ = put_keys(tok, body)
    assert status == 200 and doc == {"one_time_prekeys": 20, "low": False}, doc
    # Re-uploading the same ids replaces them: the stock does not grow.
    status, doc, _ = put_keys(tok, upload_body("--seed", SEED_A, "--onetime", "3"))
    assert status == 200 and doc["one_time_prekeys"] == 20, doc
    # A new signed prekey (rotation) with the same identity is accepted.
    status, doc, _ = put_keys(tok, upload_body("--seed", SEED_A, "--spk-id", "2"))
    assert status == 200 and doc["one_time_prekeys"] == 20, doc


def test_keys_first_upload_needs_signed_prekey():
    tok = user("k_first")["token"]
    expect_error(put_keys(tok, upload_body("--seed", SEED_A, "--onetime", "2",
                                           "--no-signed-prekey")),
                 400, "missing_signed_prekey")
    assert stock(tok)["one_time_prekeys"] == 0


def test_keys_bad_signature_refused_nothing_stored():
    tok = user("k_badsig")["token"]
    body = upload_body("--seed", SEED_A, "--onetime", "4", "--bad-signature")
    expect_error(put_keys(tok, body), 400, "invalid_signature")
    assert stock(tok)["one_time_prekeys"] == 0
    expect_error(fetch(user("k_fetcher")["token"], "k_badsig"), 404, "no_keys")
    # A signature made by another identity does not verify either.
    other = upload_body("--seed", SEED_B)
    body = upload_body("--seed", SEED_A)
    body["signed_prekey"]["signature"] = other["signed_prekey"]["signature"]
    expect_error(put_keys(tok, body), 400, "invalid_signature")
    # Signature over another prekey id.
    body = upload_body("--seed", SEED_A)
    body["signed_prekey"]["id"] = 7
    expect_error(put_keys(tok, body), 400, "invalid_signature")


def test_keys_invalid_keys_and_shapes():
    tok = user("k_shape")["token"]
    good = upload_body("--seed", SEED_A, "--onetime", "2")

    def with_(path, value):
        b = json.loads(json.dumps(good))
        cur = b
        for p in path[:-1]:
            cur = cur[p]
        if value is KeyError:
            del cur[path[-1]]
        else:
            cur[path[-1]] = value
        return b

    for bad in ["", "AAAA", good["identity_key"] + "=", good["identity_key"][:-1],
                good["identity_key"] + "A", "!" * 43, "A" * 44]:
        expect_error(put_keys(tok, with_(["identity_key"], bad)), 400, "invalid_key")
    # Not the standard base64 alphabet.
    std = good["identity_key"].replace("-", "+").replace("_", "/")
    if std != good["identity_key"]:
        expect_error(put_keys(tok, with_(["identity_key"], std)), 400, "invalid_key")
    # 32 zero bytes: an Ed25519 point of small order, unusable as an identity.
    expect_error(put_keys(tok, with_(["identity_key"], "A" * 43)), 400, "invalid_key")
    # A small-order X25519 one-time prekey (all zeros) is refused.
    expect_error(put_keys(tok, with_(["one_time_prekeys", 0, "public_key"], "A" * 43)),
                 400, "invalid_key")
    # u = 1 is of small order too.
    expect_error(put_keys(tok, with_(["signed_prekey", "public_key"], "AQ" + "A" * 41)),
                 400, "invalid_key")
    expect_error(put_keys(tok, with_(["signed_prekey", "signature"], "A" * 43)),
                 400, "invalid_signature")
    # Shapes.
    expect_error(put_keys(tok, with_(["extra"], 1)), 400, "unknown_field")
    expect_error(put_keys(tok, with_(["signed_prekey", "sk"], "A" * 43)), 400, "unknown_field")
    expect_error(put_keys(tok, with_(["one_time_prekeys", 1, "secret"], "x")), 400,
                 "unknown_field")
    expect_error(put_keys(tok, with_(["identity_key"], KeyError)), 400, "missing_field")
    expect_error(put_keys(tok, with_(["signed_prekey", "signature"], KeyError)), 400,
                 "missing_field")
    expect_error(put_keys(tok, with_(["signed_prekey", "id"], -1)), 400, "invalid_type")
    expect_error(put_keys(tok, with_(["signed_prekey", "id"], 2 ** 32)), 400, "invalid_type")
    expect_error(put_keys(tok, with_(["signed_prekey", "id"], "1")), 400, "invalid_type")
    expect_error(put_keys(tok, with_(["one_time_prekeys"], {"id": 1})), 400, "invalid_type")
    expect_error(put_keys(tok, with_(["one_time_prekeys", 0], 5)), 400, "invalid_type")
    expect_error(put_keys(tok, with_(["signed_prekey"], None)), 400, "invalid_type")
    expect_error(S.request("PUT", "/v1/keys", raw_body=b"[1]", token=tok), 400, "invalid_body")
    expect_error(S.request("PUT", "/v1/keys", raw_body=b"{", token=tok), 400, "invalid_json")
    dup = good["one_time_prekeys"][0]
    expect_error(put_keys(tok, with_(["one_time_prekeys"], [dup, dup])), 400,
                 "duplicate_prekey_id")
    assert stock(tok)["one_time_prekeys"] == 0
    # The unmodified body is fine.
    assert put_keys(tok, good)[0] == 200


def test_keys_identity_change_refused():
    tok = user("k_ident")["token"]
    assert put_keys(tok, upload_body("--seed", SEED_A, "--onetime", "3"))[0] == 200
    expect_error(put_keys(tok, upload_body("--seed", SEED_B, "--onetime", "3",
                                           "--first-id", "10")), 409, "identity_changed")
    expect_error(put_keys(tok, upload_body("--seed", SEED_B, "--no-signed-prekey")), 409,
                 "identity_changed")
    assert stock(tok)["one_time_prekeys"] == 3
    # The stored identity is still A.
    status, doc, _ = fetch(user("k_fetcher")["token"], "k_ident")
    assert status == 200, doc
    assert doc["devices"][0]["identity_key"] == upload_body("--seed", SEED_A)["identity_key"]
    # A new device (a new login) may have its own identity.
    tok2 = device("k_ident")["token"]
    assert put_keys(tok2, upload_body("--seed", SEED_B))[0] == 200


def test_keys_limits():
    tok = user("k_limits")["token"]
    expect_error(put_keys(tok, upload_body("--seed", SEED_A, "--onetime", "101")), 400,
                 "too_many_prekeys")
    assert stock(tok)["one_time_prekeys"] == 0
    status, doc, _ = put_keys(tok, upload_body("--seed", SEED_A, "--onetime", "100"))
    assert status == 200 and doc["one_time_prekeys"] == 100, doc
    status, doc, _ = put_keys(tok, upload_body("--seed", SEED_A, "--onetime", "100",
                                               "--first-id", "101"))
    assert status == 200 and doc == {"one_time_prekeys": 200, "low": False}, doc
    expect_error(put_keys(tok, upload_body("--seed", SEED_A, "--onetime", "1",
                                           "--first-id", "201")), 409, "prekey_stock_full")
    assert stock(tok)["one_time_prekeys"] == 200


def test_keys_fetch_consumes_one_prekey_per_device_until_exhausted():
    fetcher = user("k_alice")["token"]
    bob1 = user("k_bob")
    bob2 = device("k_bob")
    assert put_keys(bob1["token"], upload_body("--seed", SEED_A, "--onetime", "2"))[0] == 200
    assert put_keys(bob2["token"], upload_body("--seed", SEED_B, "--onetime", "2",
                                               "--first-id", "50"))[0] == 200
    seen = []
    for round_ in range(2):
        status, doc, _ = fetch(fetcher, "k_bob")
        assert status == 200, doc
        assert set(doc) == {"user_id", "username", "devices"}
        assert doc["user_id"] == bob1["user_id"] and doc["username"] == "k_bob"
        # Every keyed device (oldest first; the store breaks ties within one second by
        # id, so the order is not asserted); each hands out one prekey, lowest id first.
        assert sorted(d["device_id"] for d in doc["devices"]) == sorted(
            [bob1["device_id"], bob2["device_id"]])
        for d in doc["devices"]:
            assert set(d) == {"device_id", "identity_key", "signed_prekey", "one_time_prekey"}
            assert set(d["signed_prekey"]) == {"id", "public_key", "signature"}
            assert set(d["one_time_prekey"]) == {"id", "public_key"}
        assert {d["device_id"]: d["one_time_prekey"]["id"] for d in doc["devices"]} == {
            bob1["device_id"]: 1 + round_, bob2["device_id"]: 50 + round_}
        assert bundles_verify(doc), doc
        seen += [d["one_time_prekey"]["public_key"] for d in doc["devices"]]
        assert stock(bob1["token"])["one_time_prekeys"] == 1 - round_
        assert stock(bob2["token"])["one_time_prekeys"] == 1 - round_
    assert len(set(seen)) == 4  # never the same prekey twice
    # Exhausted: the signed prekey alone, still a valid bundle.
    for _ in range(2):
        status, doc, _ = fetch(fetcher, "k_bob")
        assert status == 200, doc
        assert [d["one_time_prekey"] for d in doc["devices"]] == [None, None]
        assert bundles_verify(doc), doc
    assert stock(bob1["token"]) == {"one_time_prekeys": 0, "low": True}
    # The served keys are the uploaded ones.
    up = upload_body("--seed", SEED_A, "--onetime", "2")
    d0 = [d for d in doc["devices"] if d["device_id"] == bob1["device_id"]][0]
    assert d0["identity_key"] == up["identity_key"]
    assert d0["signed_prekey"] == up["signed_prekey"]
    # Top up: fetches hand out prekeys again.
    assert put_keys(bob1["token"], upload_body("--seed", SEED_A, "--onetime", "1",
                                               "--first-id", "9",
                                               "--no-signed-prekey"))[0] == 200
    status, doc, _ = fetch(fetcher, "k_bob")
    assert {d["device_id"]: d["one_time_prekey"] and d["one_time_prekey"]["id"]
            for d in doc["devices"]} == {bob1["device_id"]: 9, bob2["device_id"]: None}


def test_keys_device_filter():
    fetcher = user("k_alice")["token"]
    carol1 = user("k_carol")
    carol2 = device("k_carol")
    carol3 = device("k_carol")  # never uploads keys
    assert put_keys(carol1["token"], upload_body("--seed", SEED_A, "--onetime", "3"))[0] == 200
    assert put_keys(carol2["token"], upload_body("--seed", SEED_B, "--onetime", "3"))[0] == 200
    status, doc, _ = fetch(fetcher, "k_carol", f"?device={carol2['device_id']}")
    assert status == 200, doc
    assert [d["device_id"] for d in doc["devices"]] == [carol2["device_id"]]
    assert bundles_verify(doc)
    assert stock(carol2["token"])["one_time_prekeys"] == 2
    assert stock(carol1["token"])["one_time_prekeys"] == 3  # untouched
    # A device without keys, another user's device and an unknown id: all no_keys.
    expect_error(fetch(fetcher, "k_carol", f"?device={carol3['device_id']}"), 404, "no_keys")
    expect_error(fetch(fetcher, "k_carol", f"?device={user('k_alice')['device_id']}"), 404,
                 "no_keys")
    expect_error(fetch(fetcher, "k_carol", "?device=" + "0" * 32), 404, "no_keys")
    # Malformed queries.
    expect_error(fetch(fetcher, "k_carol", "?device=xyz"), 400, "invalid_device")
    expect_error(fetch(fetcher, "k_carol", "?device=" + "A" * 32), 400, "invalid_device")
    expect_error(fetch(fetcher, "k_carol", "?other=1"), 400, "unknown_parameter")
    expect_error(fetch(fetcher, "k_carol", f"?device={carol1['device_id']}&x=1"), 400,
                 "unknown_parameter")
    # Without the filter: only keyed devices.
    status, doc, _ = fetch(fetcher, "k_carol")
    assert sorted(d["device_id"] for d in doc["devices"]) == sorted(
        [carol1["device_id"], carol2["device_id"]])


def test_keys_unknown_user_and_unkeyed_user_answer_alike():
    fetcher = user("k_alice")["token"]
    user("k_nokeys")
    a = fetch(fetcher, "k_nokeys")
    b = fetch(fetcher, "k_nobody_here")
    c = fetch(fetcher, "Not-A-Username")
    for r in (a, b, c):
        expect_error(r, 404, "no_keys")
    assert a[1] == b[1] == c[1]


def test_keys_revoked_device_keys_gone():
    fetcher = user("k_alice")["token"]
    dave1 = user("k_dave")
    dave2 = device("k_dave")
    assert put_keys(dave1["token"], upload_body("--onetime", "2"))[0] == 200
    assert put_keys(dave2["token"], upload_body("--onetime", "2"))[0] == 200
    status = S.request("DELETE", f"/v1/devices/{dave2['device_id']}", token=dave1["token"])[0]
    assert status == 204
    status, doc, _ = fetch(fetcher, "k_dave")
    assert status == 200, doc
    assert [d["device_id"] for d in doc["devices"]] == [dave1["device_id"]]


def test_keys_fetch_rate_limited_per_device():
    with Server("--rl-key-fetch-per-hour", "3") as s:
        a = s.new_user("rl_alice")
        s.new_user("rl_bob")
        for name in ["rl_bob", "rl_nobody", "rl_bob"]:  # misses count too
            status, _, _ = fetch(a["token"], name, server=s)
            assert status in (200, 404), status
        status, doc, hdrs = fetch(a["token"], "rl_bob", server=s)
        assert status == 429 and doc["error"]["code"] == "rate_limited", doc
        assert int(hdrs["retry-after"]) >= 1
        # Per device: another device of the same account has its own budget.
        status, doc, _ = s.login("rl_alice")
        assert fetch(doc["token"], "rl_bob", server=s)[0] == 404
        # Uploads and stock reads are not charged.
        assert s.request("GET", "/v1/keys", token=a["token"])[0] == 200


# ---------------------------------------------------------------- groups

def create_group(token, name, members=None):
    body = {"name": name}
    if members is not None:
        body["members"] = members
    return S.request("POST", "/v1/groups", body, token=token)


def get_group(token, gid):
    return S.request("GET", f"/v1/groups/{gid}", token=token)


def member_names(doc):
    return [m["username"] for m in doc["members"]]


def admins(doc):
    return [m["username"] for m in doc["members"] if m["admin"]]


def test_groups_auth_required():
    expect_error(S.request("POST", "/v1/groups", {"name": "x"}), 401, "unauthorized")
    expect_error(S.request("GET", "/v1/groups"), 401, "unauthorized")
    gid = "0" * 32
    expect_error(S.request("GET", f"/v1/groups/{gid}"), 401, "unauthorized")
    expect_error(S.request("PATCH", f"/v1/groups/{gid}", {"name": "x"}), 401, "unauthorized")
    expect_error(S.request("POST", f"/v1/groups/{gid}/members", {"username": "abc"}), 401,
                 "unauthorized")
    expect_error(S.request("DELETE", f"/v1/groups/{gid}/members/abc"), 401, "unauthorized")


def test_groups_create_get_list():
    alice, bob, carol, dave = (user(n) for n in ["g_alice", "g_bob", "g_carol", "g_dave"])
    status, doc, _ = create_group(alice["token"], "Ski trip",
                                  ["g_bob", "g_carol", "g_bob", "g_alice"])
    assert status == 201, doc
    assert set(doc) == {"group_id", "name", "created_at", "updated_at", "members"}
    assert re.fullmatch(r"[0-9a-f]{32}", doc["group_id"])
    assert doc["name"] == "Ski trip"
    assert isinstance(doc["created_at"], int) and doc["updated_at"] >= doc["created_at"]
    # Creator first and admin; duplicates and the creator in the list count once.
    assert member_names(doc) == ["g_alice", "g_bob", "g_carol"]
    assert admins(doc) == ["g_alice"]
    for m in doc["members"]:
        assert set(m) == {"user_id", "username", "admin", "joined_at"}
    assert doc["members"][0]["user_id"] == alice["user_id"]
    gid = doc["group_id"]
    status, got, _ = get_group(bob["token"], gid)
    assert status == 200 and got == doc, got
    # Non-members, unknown and malformed ids: all 404 not_found, never 403.
    expect_error(get_group(dave["token"], gid), 404, "not_found")
    expect_error(get_group(dave["token"], "f" * 32), 404, "not_found")
    expect_error(get_group(dave["token"], "not-an-id"), 404, "not_found")
    status, lst, _ = S.request("GET", "/v1/groups", token=carol["token"])
    assert status == 200 and gid in [g["group_id"] for g in lst["groups"]], lst
    assert set(lst) == {"groups"}
    status, lst, _ = S.request("GET", "/v1/groups", token=dave["token"])
    assert status == 200 and gid not in [g["group_id"] for g in lst["groups"]], lst
    # A group of one (no members field).
    status, solo, _ = create_group(dave["token"], "Notes to self")
    assert status == 201 and member_names(solo) == ["g_dave"] and admins(solo) == ["g_dave"]
    status, lst, _ = S.request("GET", "/v1/groups", token=dave["token"])
    assert [g["group_id"] for g in lst["groups"]] == [solo["group_id"]]


def test_groups_create_validation():
    tok = user("g_alice")["token"]
    user("g_bob")
    status, before, _ = S.request("GET", "/v1/groups", token=tok)
    expect_error(create_group(tok, ""), 400, "invalid_name")
    expect_error(create_group(tok, "x" * 65), 400, "invalid_name")
    expect_error(create_group(tok, "bad\nname"), 400, "invalid_name")
    expect_error(create_group(tok, "bad\u0085name"), 400, "invalid_name")
    status, doc, _ = create_group(tok, "\U0001F3D4" * 64)  # 64 code points, 256 bytes
    assert status == 201 and doc["name"] == "\U0001F3D4" * 64, doc
    expect_error(create_group(tok, "x", ["g_bob", "g_nobody"]), 404, "user_not_found")
    expect_error(create_group(tok, "x", ["Bad-Name"]), 400, "invalid_username")
    expect_error(create_group(tok, "x", [1]), 400, "invalid_type")
    expect_error(create_group(tok, "x", "g_bob"), 400, "invalid_type")
    expect_error(create_group(tok, 5), 400, "invalid_type")
    expect_error(S.request("POST", "/v1/groups", {"members": []}, token=tok), 400,
                 "missing_field")
    expect_error(S.request("POST", "/v1/groups", {"name": "x", "photo": "y"}, token=tok), 400,
                 "unknown_field")
    expect_error(create_group(tok, "x", [f"u{i:04d}" for i in range(257)]), 400,
                 "too_many_members")
    status, after, _ = S.request("GET", "/v1/groups", token=tok)
    assert len(after["groups"]) == len(before["groups"]) + 1  # only the valid one


def test_groups_member_limit():
    with Server("--rl-register-ip-per-hour", "100000") as s:
        owner = s.new_user("lim_owner")
        names = [f"lim_{i:03d}" for i in range(256)]
        for n in names:
            assert s.register(n)[0] == 201
        status, doc, _ = s.request("POST", "/v1/groups", {"name": "big",
                                                           "members": names}, token=owner["token"])
        expect_error((status, doc, None), 400, "too_many_members")
        status, doc, _ = s.request("POST", "/v1/groups", {"name": "big",
                                                           "members": names[:255]},
                                   token=owner["token"])
        assert status == 201 and len(doc["members"]) == 256, (status, doc)
        gid = doc["group_id"]
        expect_error(s.request("POST", f"/v1/groups/{gid}/members", {"username": names[255]},
                               token=owner["token"]), 409, "group_full")
        # Changing the admin flag of a member of a full group is fine.
        status, doc, _ = s.request("POST", f"/v1/groups/{gid}/members",
                                   {"username": names[0], "admin": True}, token=owner["token"])
        assert status == 200 and names[0] in admins(doc), doc


def test_groups_rename_admin_only():
    alice, bob, dave = user("g_alice"), user("g_bob"), user("g_dave")
    status, doc, _ = create_group(alice["token"], "Old", ["g_bob"])
    gid = doc["group_id"]
    expect_error(S.request("PATCH", f"/v1/groups/{gid}", {"name": "New"}, token=bob["token"]),
                 403, "not_admin")
    expect_error(S.request("PATCH", f"/v1/groups/{gid}", {"name": "New"}, token=dave["token"]),
                 404, "not_found")
    expect_error(S.request("PATCH", f"/v1/groups/{gid}", {"name": ""}, token=alice["token"]),
                 400, "invalid_name")
    expect_error(S.request("PATCH", f"/v1/groups/{gid}", {"name": "N", "members": []},
                           token=alice["token"]), 400, "unknown_field")
    expect_error(S.request("PATCH", f"/v1/groups/{gid}", {}, token=alice["token"]), 400,
                 "missing_field")
    status, new, _ = S.request("PATCH", f"/v1/groups/{gid}", {"name": "New"},
                               token=alice["token"])
    assert status == 200 and new["name"] == "New" and new["updated_at"] >= doc["updated_at"]
    assert get_group(bob["token"], gid)[1]["name"] == "New"


def test_groups_add_members_and_admin_flag():
    alice, bob, dave = user("g_alice"), user("g_bob"), user("g_dave")
    user("g_eve")
    status, doc, _ = create_group(alice["token"], "Adds", ["g_bob"])
    gid = doc["group_id"]
    path = f"/v1/groups/{gid}/members"
    expect_error(S.request("POST", path, {"username": "g_dave"}, token=bob["token"]), 403,
                 "not_admin")
    expect_error(S.request("POST", path, {"username": "g_eve"}, token=dave["token"]), 404,
                 "not_found")
    status, doc, _ = S.request("POST", path, {"username": "g_dave"}, token=alice["token"])
    assert status == 200 and member_names(doc) == ["g_alice", "g_bob", "g_dave"], doc
    assert admins(doc) == ["g_alice"]
    assert get_group(dave["token"], gid)[0] == 200
    expect_error(S.request("POST", path, {"username": "g_nobody"}, token=alice["token"]), 404,
                 "user_not_found")
    expect_error(S.request("POST", path, {"username": "BAD"}, token=alice["token"]), 400,
                 "invalid_username")
    expect_error(S.request("POST", path, {"username": "g_eve", "admin": "yes"},
                           token=alice["token"]), 400, "invalid_type")
    expect_error(S.request("POST", path, {"username": "g_eve", "role": "x"},
                           token=alice["token"]), 400, "unknown_field")
    # Promote bob; bob can now add eve as admin straight away.
    status, doc, _ = S.request("POST", path, {"username": "g_bob", "admin": True},
                               token=alice["token"])
    assert status == 200 and admins(doc) == ["g_alice", "g_bob"], doc
    status, doc, _ = S.request("POST", path, {"username": "g_eve", "admin": True},
                               token=bob["token"])
    assert status == 200 and admins(doc) == ["g_alice", "g_bob", "g_eve"], doc
    # Re-adding without "admin" keeps the flag; the member is not duplicated.
    status, doc, _ = S.request("POST", path, {"username": "g_bob"}, token=alice["token"])
    assert status == 200 and admins(doc) == ["g_alice", "g_bob", "g_eve"], doc
    assert member_names(doc).count("g_bob") == 1
    # Demotions, down to the last admin, which is refused.
    for who in ["g_bob", "g_eve"]:
        status, doc, _ = S.request("POST", path, {"username": who, "admin": False},
                                   token=alice["token"])
        assert status == 200, doc
    assert admins(doc) == ["g_alice"]
    expect_error(S.request("POST", path, {"username": "g_alice", "admin": False},
                           token=alice["token"]), 409, "last_admin")


def test_groups_remove_and_leave():
    alice, bob, carol, dave = (user(n) for n in ["g_alice", "g_bob", "g_carol", "g_dave"])
    status, doc, _ = create_group(alice["token"], "Removals", ["g_bob", "g_carol", "g_dave"])
    gid = doc["group_id"]
    path = f"/v1/groups/{gid}/members/"
    expect_error(S.request("DELETE", path + "g_bob", token=carol["token"]), 403, "not_admin")
    # carol leaves: 204, then the group is invisible to her.
    status, _, _ = S.request("DELETE", path + "g_carol", token=carol["token"])
    assert status == 204
    expect_error(get_group(carol["token"], gid), 404, "not_found")
    expect_error(S.request("DELETE", path + "g_bob", token=carol["token"]), 404, "not_found")
    # The admin removes dave: 200 with the group.
    status, doc, _ = S.request("DELETE", path + "g_dave", token=alice["token"])
    assert status == 200 and member_names(doc) == ["g_alice", "g_bob"], doc
    expect_error(get_group(dave["token"], gid), 404, "not_found")
    expect_error(S.request("DELETE", path + "g_dave", token=alice["token"]), 404, "not_member")
    expect_error(S.request("DELETE", path + "g_nobody", token=alice["token"]), 404,
                 "not_member")
    expect_error(S.request("DELETE", path + "BAD!", token=alice["token"]), 404, "not_member")
    status, lst, _ = S.request("GET", "/v1/groups", token=dave["token"])
    assert gid not in [g["group_id"] for g in lst["groups"]]


def test_groups_last_admin_leaves_longest_standing_member_promoted():
    alice, bob, carol = user("g_alice"), user("g_bob"), user("g_carol")
    status, doc, _ = create_group(alice["token"], "Succession", ["g_bob", "g_carol"])
    gid = doc["group_id"]
    path = f"/v1/groups/{gid}/members/"
    assert S.request("DELETE", path + "g_alice", token=alice["token"])[0] == 204
    status, doc, _ = get_group(carol["token"], gid)
    assert status == 200 and member_names(doc) == ["g_bob", "g_carol"], doc
    assert admins(doc) == ["g_bob"]
    # Another admin present: nobody is promoted when one admin leaves.
    assert S.request("POST", f"/v1/groups/{gid}/members", {"username": "g_alice"},
                     token=bob["token"])[0] == 200
    assert S.request("POST", f"/v1/groups/{gid}/members", {"username": "g_carol",
                     "admin": True}, token=bob["token"])[0] == 200
    assert S.request("DELETE", path + "g_bob", token=bob["token"])[0] == 204
    doc = get_group(carol["token"], gid)[1]
    assert admins(doc) == ["g_carol"], doc
    # The last members leave: the group is gone.
    assert S.request("DELETE", path + "g_alice", token=alice["token"])[0] == 204
    assert S.request("DELETE", path + "g_carol", token=carol["token"])[0] == 204
    expect_error(get_group(carol["token"], gid), 404, "not_found")
    with S.db() as db:
        for table in group_tables(db):
            cols = [r[1] for r in db.execute(f"pragma table_info({table})")]
            key = "id" if "group_id" not in cols else "group_id"
            n = db.execute(f"select count(*) from {table} where {key} = ?", (gid,)).fetchone()[0]
            assert n == 0, (table, n)


def group_tables(db):
    return [r[0] for r in db.execute("select name from sqlite_master where type = 'table'")
            if "group" in r[0].lower()]


def test_P20_server_stores_only_group_name_members_admins():
    alice, bob, carol = user("g_alice"), user("g_bob"), user("g_carol")
    status, doc, _ = create_group(alice["token"], "P20 secret plans", ["g_bob", "g_carol"])
    assert status == 201
    gid = doc["group_id"]
    S.request("POST", f"/v1/groups/{gid}/members", {"username": "g_bob", "admin": True},
              token=alice["token"])
    allowed = {"id", "group_id", "name", "created_at", "updated_at", "user_id", "admin",
               "joined_at"}
    with S.db() as db:
        tables = group_tables(db)
        assert tables, "no group tables found"
        for table in tables:
            cols = {r[1] for r in db.execute(f"pragma table_info({table})")}
            assert cols <= allowed, (table, cols - allowed)
        # The rows: the name once, the three members with their admin flags, nothing else.
        rows = {}
        for table in tables:
            cols = [r[1] for r in db.execute(f"pragma table_info({table})")]
            key = "id" if "group_id" not in cols else "group_id"
            rows[table] = [dict(zip(cols, r)) for r in
                           db.execute(f"select * from {table} where {key} = ?", (gid,))]
        names = [r["name"] for rs in rows.values() for r in rs if "name" in r]
        assert names == ["P20 secret plans"], rows
        members = {r["user_id"]: r["admin"] for rs in rows.values() for r in rs
                   if "user_id" in r}
        assert members == {alice["user_id"]: 1, bob["user_id"]: 1, carol["user_id"]: 0}, rows
        # The name is nowhere else in the database.
        for (table,) in db.execute("select name from sqlite_master where type = 'table'"):
            if table in tables:
                continue
            cols = [r[1] for r in db.execute(f"pragma table_info({table})")]
            for c in cols:
                n = db.execute(f"select count(*) from {table} where cast({c} as blob) like ?",
                               ("%secret plans%",)).fetchone()[0]
                assert n == 0, (table, c)
    # And it is not in the logs either.
    assert "P20 secret plans" not in S.logs()


if __name__ == "__main__":
    # Many accounts and logins from one IP: lift those limits (tested in test_accounts).
    with Server("--rl-register-ip-per-hour", "100000", "--rl-login-ip-per-min", "100000",
                "--rl-login-account-per-min", "100000") as S:
        status = run([
            test_keys_auth_required, test_keys_upload_stock_and_top_up,
            test_keys_first_upload_needs_signed_prekey,
            test_keys_bad_signature_refused_nothing_stored, test_keys_invalid_keys_and_shapes,
            test_keys_identity_change_refused, test_keys_limits,
            test_keys_fetch_consumes_one_prekey_per_device_until_exhausted,
            test_keys_device_filter, test_keys_unknown_user_and_unkeyed_user_answer_alike,
            test_keys_revoked_device_keys_gone, test_keys_fetch_rate_limited_per_device,
            test_groups_auth_required, test_groups_create_get_list,
            test_groups_create_validation, test_groups_member_limit,
            test_groups_rename_admin_only, test_groups_add_members_and_admin_flag,
            test_groups_remove_and_leave,
            test_groups_last_admin_leaves_longest_standing_member_promoted,
            test_P20_server_stores_only_group_name_members_admins])
    sys.exit(status)
