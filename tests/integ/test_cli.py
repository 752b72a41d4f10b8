"""The parley CLI against a real parleyd: register, log in, edit, devices, log out."""
import json
import os
import stat
import sys
import tempfile

from harness import Server, cli, run

S = None
PW = "a long cli password\n"


def home():
    return tempfile.mkdtemp(prefix="parley-cli-")


def test_register_login_whoami_edit_logout():
    h = home()
    p = cli(S, h, "--json", "register", "--username", "clara", "--name", "Clara",
            "--dob", "1992-03-04", "--region", "NL", "--password-stdin", stdin=PW)
    assert json.loads(p.stdout)["username"] == "clara"
    p = cli(S, h, "--json", "login", "--username", "clara", "--password-stdin",
            "--device-name", "cli-test", stdin=PW)
    login = json.loads(p.stdout)
    creds = os.path.join(h, "credentials.json")
    assert stat.S_IMODE(os.stat(creds).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(h).st_mode) == 0o700
    assert "a long cli password" not in open(creds).read()
    me = json.loads(cli(S, h, "--json", "whoami").stdout)
    assert me["username"] == "clara" and me["region"] == "NL" and me["device_id"] == login["device_id"]
    cli(S, h, "profile", "set", "--name", "Clara B.", "--gender", "female")
    me = json.loads(cli(S, h, "--json", "whoami").stdout)
    assert me["name"] == "Clara B." and me["gender"] == "female"
    devices = json.loads(cli(S, h, "--json", "devices").stdout)
    assert len(devices["devices"]) == 1
    text = cli(S, h, "whoami").stdout.decode()
    assert "clara" in text
    cli(S, h, "logout")
    assert not os.path.exists(creds)
    p = cli(S, h, "whoami", check=False)
    assert p.returncode != 0


def test_second_device_revoked_from_first():
    h1, h2 = home(), home()
    cli(S, h1, "register", "--username", "dmitri", "--name", "Dmitri", "--dob", "1980-01-01",
        "--password-stdin", stdin=PW)
    cli(S, h1, "login", "--username", "dmitri", "--password-stdin", stdin=PW)
    second = json.loads(cli(S, h2, "--json", "login", "--username", "dmitri",
                            "--password-stdin", stdin=PW).stdout)["device_id"]
    cli(S, h1, "devices", "revoke", second)
    p = cli(S, h2, "whoami", check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)


def test_errors_are_clear_with_exit_codes():
    h = home()
    p = cli(S, h, "register", "--username", "kid", "--name", "Kid", "--dob", "2020-01-01",
            "--password-stdin", stdin=PW, check=False)
    assert p.returncode == 1 and b"age_restricted" in p.stderr, p.stderr
    p = cli(S, h, "login", "--username", "clara", "--password-stdin", stdin="wrong password\n",
            check=False)
    assert p.returncode == 1 and b"invalid_credentials" in p.stderr
    p = cli(S, h, "frobnicate", check=False)
    assert p.returncode == 2
    dead = Server()  # never started: nothing listens on its port
    p = cli(dead, h, "whoami", check=False)
    assert p.returncode in (1, 3)


if __name__ == "__main__":
    with Server() as S:
        status = run([test_register_login_whoami_edit_logout, test_second_device_revoked_from_first,
                      test_errors_are_clear_with_exit_codes])
    sys.exit(status)
