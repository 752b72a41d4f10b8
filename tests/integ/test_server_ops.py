"""parleyd as an operator sees it: configuration, health, metrics, shutdown, data dir."""
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

from harness import PARLEYD, SOURCE_DIR, Server, free_port, run


def parleyd(*args, env=None):
    return subprocess.run([PARLEYD, *args], capture_output=True, timeout=30,
                          env=dict(os.environ, **(env or {})))


def test_help_lists_every_option():
    p = parleyd("--help")
    assert p.returncode == 0
    out = p.stdout.decode()
    for flag in ["--listen", "--data", "--config", "--threads", "--tls-cert", "--queue-ttl",
                 "--insecure-behind-proxy", "--session-ttl"]:
        assert flag in out, flag


def test_bad_flags_and_values_are_refused_clearly():
    cases = [(["--no-such-flag"], "unknown option"), (["--threads", "abc"], "expected an integer"),
             (["--threads", "100000"], "out of range"), (["--queue-ttl", "16d"], "out of range"),
             (["--listen", "nohostport"], "HOST:PORT"), (["--log-level", "loud"], "log_level"),
             (["--tls-cert", "/x.pem"], "together"), (["stray"], "unexpected argument"),
             (["--config", "/nonexistent/parleyd.conf"], "cannot open")]
    for args, words in cases:
        p = parleyd(*args)
        assert p.returncode == 2, (args, p.returncode)
        assert words in p.stderr.decode(), (args, p.stderr)


def test_config_file_env_and_flag_precedence():
    tmp = tempfile.mkdtemp()
    conf = os.path.join(tmp, "parleyd.conf")
    with open(conf, "w") as f:
        f.write("# comment\nthreads = 3\nqueue_ttl = 1h\nlog_level = \"warn\"\nbogus_key = 1\n")
    p = parleyd("--config", conf)
    assert p.returncode == 2 and "bogus_key" in p.stderr.decode() and ":5" in p.stderr.decode()
    example = parleyd("--print-example-config").stdout.decode()
    assert "queue_ttl = 15d" in example and "listen = 127.0.0.1:8080" in example
    with open(conf, "w") as f:
        f.write(example)
    port = free_port()
    # The generated example parses; env overrides the file; the flag overrides env.
    s = Server("--config", conf, "--listen", f"127.0.0.1:{port}",
               env={"PARLEYD_LISTEN": "127.0.0.1:1"})
    s.port = port
    with s:
        assert s.request("GET", "/healthz")[0] == 200


def test_committed_example_config_is_current():
    generated = parleyd("--print-example-config").stdout.decode()
    with open(os.path.join(SOURCE_DIR, "parleyd.conf.example")) as f:
        assert f.read() == generated, "regenerate: build/parleyd --print-example-config > parleyd.conf.example"


def test_plain_http_refused_off_loopback():
    p = parleyd("--listen", "0.0.0.0:0")
    assert p.returncode == 2 and "insecure-behind-proxy" in p.stderr.decode()


def test_healthz_metrics_and_web():
    with Server() as s:
        status, doc, _ = s.request("GET", "/healthz")
        assert status == 200 and doc["status"] == "ok"
        s.request("GET", "/nope")
        status, text, hdrs = s.request("GET", "/metrics")
        text = text.decode() if isinstance(text, bytes) else str(text)
        assert status == 200 and hdrs["content-type"].startswith("text/plain")
        assert 'parley_http_requests_total{route="/healthz",status="200"}' in text, text
        assert "parley_http_request_duration_seconds_bucket" in text
        assert "parley_connections_open" in text
        status, page, hdrs = s.request("GET", "/")
        assert status == 200 and hdrs["content-type"].startswith("text/html")


def test_data_dir_created_private_with_master_key():
    data = os.path.join(tempfile.mkdtemp(), "nested", "data")
    with Server(data_dir=data) as s:
        st = os.stat(s.data)
        assert stat.S_IMODE(st.st_mode) == 0o700
        key = os.path.join(s.data, "master.key")
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and os.path.getsize(key) == 32
        first = open(key, "rb").read()
    # Restart on the same data keeps the key.
    with Server(data_dir=s.data) as s2:
        assert open(os.path.join(s2.data, "master.key"), "rb").read() == first


def test_graceful_shutdown_finishes_in_flight_request():
    with Server() as s:
        # A registration (Argon2 off the loop) in flight when SIGTERM arrives still completes.
        result = {}

        def register():
            result["r"] = s.register("inflight")

        t = threading.Thread(target=register)
        t.start()
        time.sleep(0.05)
        s.proc.send_signal(signal.SIGTERM)
        t.join(30)
        assert s.proc.wait(30) == 0
        assert "r" in result and result["r"][0] in (201, 503), result
        assert '"event":"stopped"' in s.logs()
        s.log.close()
        # New connections are refused once stopped.
        try:
            socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
            refused = False
        except OSError:
            refused = True
        assert refused


def test_logs_are_json_lines_without_secrets():
    import json
    with Server() as s:
        s.new_user("logcheck")
        s.login("logcheck", password="wrong password")
        s.stop()
        logs = s.logs()
    lines = [line for line in logs.splitlines() if line.startswith("{")]
    assert len(lines) >= 3, logs
    for line in lines:
        doc = json.loads(line)
        assert "ts" in doc and "level" in doc and "event" in doc
    assert "correct horse battery" not in logs and "wrong password" not in logs
    assert "logcheck" not in logs


if __name__ == "__main__":
    sys.exit(run([test_help_lists_every_option, test_bad_flags_and_values_are_refused_clearly,
                  test_config_file_env_and_flag_precedence, test_committed_example_config_is_current,
                  test_plain_http_refused_off_loopback,
                  test_healthz_metrics_and_web, test_data_dir_created_private_with_master_key,
                  test_graceful_shutdown_finishes_in_flight_request,
                  test_logs_are_json_lines_without_secrets]))
