"""test_policy_cli.py — the privacy policy in the parley CLI (POLICY P30), against a real
parleyd and real `parleyd admin policy publish` processes on the same data directory.

Covers: after a material version is published, CLI commands are refused (exit 1, code
policy_consent_required, with how to accept), `parley policy show` shows it,
`parley policy accept --yes` accepts it and the commands work again; `accept` without
--yes off a terminal is a usage error; `parley login` reports a pending version and exits
1 with the session saved; on a terminal (a pty) a refused command shows the policy and
accepting at the prompt lifts the gate.
"""
import json
import os
import pty
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PARLEY, Server, cli, run  # noqa: E402
from test_rights_consent import publish  # noqa: E402

PW = "a long cli password\n"


def home():
    return tempfile.mkdtemp(prefix="parley-policy-cli-")


def account(s, name):
    h = home()
    cli(s, h, "register", "--username", name, "--name", name.title(), "--dob", "1990-01-01",
        "--password-stdin", stdin=PW)
    cli(s, h, "login", "--username", name, "--password-stdin", stdin=PW)
    return h


def refused_until_gated(s, h, seconds=5):
    """The server sees a version published by the admin process within 2 s."""
    deadline = time.time() + seconds
    while True:
        p = cli(s, h, "whoami", stdin="", check=False)
        if p.returncode != 0:
            return p
        assert time.time() < deadline, "the material policy did not gate the CLI"
        time.sleep(0.2)


def test_P30_cli_shows_and_accepts_new_policy():
    with Server() as s:
        h = account(s, "pia")
        cli(s, h, "whoami")
        p = cli(s, h, "--json", "policy", "show", check=False)
        assert p.returncode == 1 and json.loads(p.stdout)["error"]["code"] == "no_policy", p

        time.sleep(1.1)  # accounts registered after a version are not gated by it
        publish(s, "2025-07", "material", "Policy 2025-07.\nMARKER-SEVEN: we keep logs 7 days.\n")
        p = refused_until_gated(s, h)
        err = p.stderr.decode()
        assert p.returncode == 1, p
        assert "policy_consent_required" in err and "parley policy accept" in err, err
        p = cli(s, h, "--json", "devices", stdin="", check=False)
        assert p.returncode == 1
        assert json.loads(p.stdout)["error"]["code"] == "policy_consent_required", p.stdout

        # shows it (no session needed to read it)
        out = cli(s, h, "policy", "show").stdout.decode()
        assert "MARKER-SEVEN" in out and "2025-07" in out and "material" in out, out
        doc = json.loads(cli(s, home(), "--json", "policy", "show").stdout)
        assert doc["version"] == "2025-07" and doc["material"] is True
        assert "MARKER-SEVEN" in doc["text"] and doc["published_at"] > 0

        # no silent acceptance from a script
        p = cli(s, h, "policy", "accept", stdin="", check=False)
        assert p.returncode == 2 and b"--yes" in p.stderr, p
        assert cli(s, h, "whoami", stdin="", check=False).returncode == 1
        p = cli(s, h, "--json", "policy", "accept", "--yes", "--version", "1999-01", check=False)
        assert p.returncode == 1
        assert json.loads(p.stdout)["error"]["code"] == "unknown_version", p.stdout

        doc = json.loads(cli(s, h, "--json", "policy", "accept", "--yes").stdout)
        assert doc["version"] == "2025-07" and doc["accepted_at"] > 0, doc
        me = json.loads(cli(s, h, "--json", "whoami").stdout)
        assert me["username"] == "pia"
        db = s.db()
        try:
            n = db.execute("SELECT COUNT(*) FROM policy_acceptances a JOIN policies p "
                           "ON p.seq = a.policy_seq WHERE p.version = '2025-07'").fetchone()[0]
        finally:
            db.close()
        assert n == 1

        # a login while a newer material version waits: the session is saved, exit 1
        publish(s, "2025-08", "material")
        h2 = home()
        deadline = time.time() + 5
        while True:
            p = cli(s, h2, "--json", "login", "--username", "pia", "--password-stdin",
                    stdin=PW, check=False)
            doc = json.loads(p.stdout)
            if doc.get("policy_pending"):
                break
            assert p.returncode == 0 and time.time() < deadline, p
            cli(s, h2, "logout")
            time.sleep(0.2)
        assert p.returncode == 1 and doc["policy_pending"] == "2025-08", (p, doc)
        assert b"parley policy accept" in p.stderr, p.stderr
        assert os.path.exists(os.path.join(h2, "credentials.json"))
        cli(s, h2, "policy", "accept", "--yes", "--version", "2025-08")
        assert json.loads(cli(s, h2, "--json", "whoami").stdout)["username"] == "pia"
        assert json.loads(cli(s, h, "--json", "whoami").stdout)["username"] == "pia"


def on_terminal(s, h, answer, *args):
    """Run the CLI with stdin on a pty (a terminal), typing answer; returns
    (exit code, stderr)."""
    master, slave = pty.openpty()
    cmd = [PARLEY, "--server", f"http://127.0.0.1:{s.port}", "--home", h, *args]
    proc = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        os.write(master, answer.encode())
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
    return proc.returncode, out.decode(), err.decode()


def test_P30_cli_offers_policy_on_terminal():
    with Server() as s:
        h = account(s, "tom")
        time.sleep(1.1)
        publish(s, "v-term", "material", "Terminal policy.\nMARKER-TTY\n")
        refused_until_gated(s, h)
        code, out, err = on_terminal(s, h, "n\n", "whoami")
        assert code == 1 and "MARKER-TTY" in err and "[y/N]" in err, (code, err)
        assert "parley policy accept" in err, err
        assert cli(s, h, "whoami", stdin="", check=False).returncode == 1
        code, out, err = on_terminal(s, h, "y\n", "whoami")
        assert code == 1 and "Accepted privacy policy version v-term" in err, (code, err)
        assert "Run the command again" in err, err
        assert json.loads(cli(s, h, "--json", "whoami").stdout)["username"] == "tom"


if __name__ == "__main__":
    tests = [test_P30_cli_shows_and_accepts_new_policy, test_P30_cli_offers_policy_on_terminal]
    only = [t for t in tests if any(a in t.__name__ for a in sys.argv[1:])]
    sys.exit(run(only or tests))
