"""Bad input: a corpus of well over 200 malformed requests thrown at a running parleyd.
Each must be answered with a 4xx carrying parley's JSON error shape, and the server must
keep serving (/healthz) throughout and afterwards."""
import json
import sys

from harness import Server, run

S = None
TOKEN = None


def status_of(raw):
    """Status code of the first response in raw bytes, or None."""
    if not raw.startswith(b"HTTP/1.1 "):
        return None
    try:
        return int(raw[9:12])
    except ValueError:
        return None


def transport_cases():
    """(name, raw bytes) — broken at the HTTP layer."""
    ok_head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    c = [
        ("garbage", b"\x00\x01\x02\x03garbage\r\n\r\n"),
        ("lowercase-method", b"get / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("bad-version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n"),
        ("no-version", b"GET /\r\n\r\n"),
        ("http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("space-in-path", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("request-line-too-long", b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("header-too-long", ok_head + b"X-Big: " + b"b" * 40000 + b"\r\n\r\n"),
        ("too-many-headers", ok_head + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n"),
        ("header-no-colon", ok_head + b"NoColonHere\r\n\r\n"),
        ("header-space-before-colon", ok_head + b"X-Bad : v\r\n\r\n"),
        ("header-ctl-char", ok_head + b"X-Bad: a\x01b\r\n\r\n"),
        ("nul-in-path", b"GET /v1/\x00me HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("bad-percent", b"GET /v1/%zz HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("percent-nul", b"GET /v1/%00me HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("percent-truncated", b"GET /v1/me% HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("cl-not-number", b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
        ("cl-negative", b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
        ("cl-huge", b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"),
        ("cl-over-limit", b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n"),
        ("cl-twice-different", b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
        ("cl-and-te", b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("chunk-size-garbage", b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
        ("chunk-over-limit", b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"100000\r\n" + b"a" * 0x100000 + b"\r\n") * 2 + b"0\r\n\r\n"),
        ("unknown-te", b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
        ("short-body-timeout", b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"a\""),
        ("headers-never-end", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"),
        ("line-never-ends", b"GET /healthz HTT"),
        ("http-1.2", b"GET /healthz HTTP/1.2\r\nHost: x\r\n\r\n"),
        ("http-2.0", b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n"),
        ("header-name-slash", ok_head + b"X/Bad: v\r\n\r\n"),
        ("header-name-utf8", ok_head + b"X-\xc3\xa9: v\r\n\r\n"),
        ("header-name-empty", ok_head + b": v\r\n\r\n"),
        ("not-found", b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("not-found-deep", b"GET /v1/accounts/x/y/z HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("method-not-allowed", b"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("method-not-allowed-put", b"PUT /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
        ("traversal", b"GET /static/..%2F..%2Fetc%2Fpasswd HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("traversal-dots", b"GET /static/.. HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("hidden-file", b"GET /static/.git HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("ws-upgrade-no-key", b"GET /v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
        ("auth-empty-bearer", b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \r\n\r\n"),
        ("auth-basic", b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\r\n\r\n"),
        ("auth-long", b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"A" * 4000 + b"\r\n\r\n"),
        ("auth-binary", b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xfd\r\n\r\n"),
        ("devices-no-auth", b"GET /v1/devices HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("delete-device-no-auth", b"DELETE /v1/devices/abc HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("logout-no-auth", b"DELETE /v1/sessions/current HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]
    return c


def json_bodies():
    """(name, raw body bytes) that no JSON decoder may accept as a valid request."""
    bodies = [
        ("empty", b""), ("open-brace", b"{"), ("array", b"[]"), ("null", b"null"),
        ("number", b"1"), ("string", b"\"s\""), ("true", b"true"),
        ("missing-value", b"{\"a\":}"), ("trailing-garbage", b"{}garbage"),
        ("trailing-comma", b"{\"username\":\"x\",}"), ("single-quotes", b"{'username':'x'}"),
        ("unquoted-key", b"{username:\"x\"}"), ("deep-nesting", b"[" * 5000 + b"]" * 5000),
        ("deep-object", b"{\"a\":" * 3000 + b"1" + b"}" * 3000),
        ("invalid-utf8", b"{\"username\":\"\xff\xfe\"}"),
        ("overlong-utf8", b"{\"username\":\"\xc0\xaf\"}"),
        ("lone-surrogate", b"{\"username\":\"\\ud800\"}"),
        ("nul-escape", b"{\"username\":\"a\\u0000b\",\"password\":\"x\"}"),
        ("bad-escape", b"{\"username\":\"\\q\"}"), ("control-char", b"{\"username\":\"a\x01\"}"),
        ("nan", b"{\"username\":NaN}"), ("huge-number", b"{\"username\":1e999999}"),
        ("binary", bytes(range(256))), ("bom", b"\xef\xbb\xbf{}"),
        ("unknown-only", b"{\"evil\":1}"),
    ]
    return bodies


def field_cases(endpoint_fields, all_optional=False):
    """Wrong types, missing fields and oversize values for a dict of valid fields.
    all_optional: every field may be left out (PATCH), so no missing-field cases."""
    out = []
    for field in endpoint_fields:
        for tname, bad in [("number", 12), ("bool", True), ("null", None), ("array", ["x"]),
                           ("object", {"x": 1})]:
            body = dict(endpoint_fields)
            body[field] = bad
            out.append((f"{field}-{tname}", json.dumps(body).encode()))
        if not all_optional:
            body = dict(endpoint_fields)
            del body[field]
            out.append((f"{field}-missing", json.dumps(body).encode()))
        body = dict(endpoint_fields)
        body[field] = "x" * 100000
        out.append((f"{field}-oversize", json.dumps(body).encode()))
    body = dict(endpoint_fields)
    body["extra"] = "x"
    out.append(("unknown-field", json.dumps(body).encode()))
    return out


REGISTER = {"username": "newuser", "name": "New User", "dob": "1990-01-01",
            "password": "long enough password"}
LOGIN = {"username": "victim", "password": "correct horse battery"}
PATCH = {"name": "Renamed"}

BAD_DATES = ["1990-02-30", "1990-00-10", "1990-01-32", "1990-1-1", "90-01-01", "1899-12-31",
             "2999-01-01", "1990/01/01", "19900101", "1990-01-01T00:00:00Z", "", " 1990-01-01",
             "1990-02-29", "abcd-ef-gh", "1990-01-01\u0000"]
BAD_USERNAMES = ["ab", "a" * 33, "UPPER", "with space", "dash-name", "ünïcode", "a/b", "a\u0000b",
                 "", "emoji\U0001F600"]


def request_bytes(method, path, body, token=None):
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


def corpus():
    cases = [(f"transport/{n}", raw) for n, raw in transport_cases()]
    for method, path, valid, auth in [("POST", "/v1/accounts", REGISTER, False),
                                      ("POST", "/v1/sessions", LOGIN, False),
                                      ("PATCH", "/v1/me", PATCH, True)]:
        tok = TOKEN if auth else None
        for n, body in json_bodies() + field_cases(valid, all_optional=method == "PATCH"):
            cases.append((f"{path}/{n}", request_bytes(method, path, body, tok)))
    for d in BAD_DATES:
        body = dict(REGISTER, dob=d)
        cases.append((f"dob/{d!r}", request_bytes("POST", "/v1/accounts", json.dumps(body).encode())))
    for u in BAD_USERNAMES:
        body = dict(REGISTER, username=u)
        cases.append((f"username/{u!r}", request_bytes("POST", "/v1/accounts", json.dumps(body).encode())))
    for r in ["pl", "XX", "POL", "", "P1"]:
        body = dict(REGISTER, region=r)
        cases.append((f"region/{r!r}", request_bytes("POST", "/v1/accounts", json.dumps(body).encode())))
    return cases


def test_malformed_corpus_gets_4xx_and_server_survives():
    cases = corpus()
    assert len(cases) >= 200, len(cases)
    failures = []

    def check(case):
        name, raw = case
        out = S.raw(raw, timeout=5)
        st = status_of(out)
        if st is None or not 400 <= st < 500:
            return (name, out[:200])
        if b"\"error\"" not in out:
            return (name, b"no JSON error body: " + out[:200])
        return None

    # Several at once, as a real attacker would; /healthz is checked between batches.
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=16) as pool:
        for start in range(0, len(cases), 32):
            failures += [f for f in pool.map(check, cases[start:start + 32]) if f]
            assert S.request("GET", "/healthz")[0] == 200, f"unhealthy after batch {start}"
    assert S.request("GET", "/healthz")[0] == 200
    assert not failures, "\n".join(f"{n}: {o!r}" for n, o in failures)
    print(f"  {len(cases)} malformed requests answered with 4xx")


def test_nothing_stored_from_malformed_registrations():
    with S.db() as db:
        names = [r[0] for r in db.execute("select username from users")]
    assert names == ["victim"], names


def test_slow_client_is_cut_off():
    # Slowloris: one header byte at a time, slower than the request timeout allows.
    import socket
    import time
    s = socket.create_connection(("127.0.0.1", S.port), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\n")
    start = time.time()
    try:
        while time.time() - start < 5:
            s.sendall(b"X")
            time.sleep(0.2)
        raise AssertionError("slow client was not disconnected")
    except OSError:
        pass
    finally:
        s.close()
    assert S.request("GET", "/healthz")[0] == 200


if __name__ == "__main__":
    with Server("--request-timeout-ms", "1000") as S:
        assert S.register("victim")[0] == 201
        TOKEN = S.login("victim")[1]["token"]
        status = run([test_malformed_corpus_gets_4xx_and_server_survives,
                      test_nothing_stored_from_malformed_registrations,
                      test_slow_client_is_cut_off])
    sys.exit(status)
