"""harness.py — black-box test support: start a real parleyd on a free loopback port with
a fresh data directory, talk HTTP to it over real sockets, run the real CLI, and stop it
with SIGTERM (checking it exits cleanly). Standard library only.

Environment (set by CTest): PARLEYD, PARLEY (binaries), PARLEY_SOURCE_DIR.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback

PARLEYD = os.environ.get("PARLEYD", "build/parleyd")
PARLEY = os.environ.get("PARLEY", "build/parley")
SOURCE_DIR = os.environ.get("PARLEY_SOURCE_DIR", os.getcwd())

# Cheap password hashing for tests (libsodium's minimums); production defaults are in config.c.
FAST_ARGON2 = ["--argon2-opslimit", "1", "--argon2-memlimit-kib", "8"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """A running parleyd. Use as a context manager; stop() checks a clean exit."""

    def __init__(self, *extra, data_dir=None, env=None, threads=2):
        self.tmp = tempfile.mkdtemp(prefix="parley-integ-")
        self.data = data_dir or os.path.join(self.tmp, "data")
        self.port = free_port()
        self.log_path = os.path.join(self.tmp, "parleyd.log")
        self.args = [PARLEYD, "--listen", f"127.0.0.1:{self.port}", "--data", self.data,
                     "--threads", str(threads), "--log-level", "debug", *FAST_ARGON2, *extra]
        self.env = dict(os.environ, **(env or {}))
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log, env=self.env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"parleyd exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                status, _, _ = self.request("GET", "/healthz")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("parleyd did not become healthy:\n" + self.logs())

    def stop(self, sig=signal.SIGTERM, expect_code=0):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                code = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise AssertionError("parleyd did not stop within 30 s")
            if expect_code is not None and code != expect_code:
                raise AssertionError(f"parleyd exited with {code}:\n{self.logs()[-4000:]}")
        self.log.close()

    def sigkill_restart(self):
        """SIGKILL parleyd (no clean shutdown) and start it again on the same data dir."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()
        self.start()

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        else:
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            sys.stderr.write("---- parleyd log ----\n" + self.logs()[-6000:] + "\n")
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- HTTP ----
    def request(self, method, path, body=None, token=None, headers=None, raw_body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if token:
            h["Authorization"] = "Bearer " + token
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        payload = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        conn.close()
        try:
            doc = json.loads(payload) if payload else None
        except ValueError:
            doc = payload
        return resp.status, doc, hdrs

    def raw(self, data, timeout=10):
        """Send raw bytes on a fresh connection; return everything read until close or
        timeout."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            s.sendall(data)
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            s.close()

    def db(self):
        return sqlite3.connect(os.path.join(self.data, "parley.db"))

    # ---- accounts ----
    def register(self, username, password="correct horse battery", name="Test User",
                 dob="1990-05-17", **extra):
        body = {"username": username, "name": name, "dob": dob, "password": password}
        body.update(extra)
        return self.request("POST", "/v1/accounts", body)

    def login(self, username, password="correct horse battery", device_name=None):
        body = {"username": username, "password": password}
        if device_name:
            body["device_name"] = device_name
        return self.request("POST", "/v1/sessions", body)

    def new_user(self, username, **extra):
        status, doc, _ = self.register(username, **extra)
        assert status == 201, (status, doc)
        status, doc, _ = self.login(username)
        assert status == 201, (status, doc)
        return doc


def cli(server, home, *args, stdin=None, check=True):
    """Run the parley CLI against server with home dir; returns CompletedProcess."""
    cmd = [PARLEY, "--server", f"http://127.0.0.1:{server.port}", "--home", home, *args]
    p = subprocess.run(cmd, input=stdin.encode() if isinstance(stdin, str) else stdin,
                       capture_output=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} failed ({p.returncode}): {p.stderr.decode()}")
    return p


def run(tests):
    """Run test functions; print a summary line CTest and CI can read; return the exit
    status (0 when all passed) for sys.exit."""
    passed = failed = 0
    for t in tests:
        start = time.time()
        try:
            t()
            passed += 1
            print(f"ok   {t.__name__} ({time.time() - start:.2f}s)", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {t.__name__}", flush=True)
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def expect_error(result, status, code):
    got_status, doc, _ = result
    assert got_status == status, f"expected {status} {code}, got {got_status} {doc}"
    assert isinstance(doc, dict) and doc.get("error", {}).get("code") == code, \
        f"expected error code {code}, got {doc}"
    assert isinstance(doc["error"].get("message"), str) and doc["error"]["message"]
