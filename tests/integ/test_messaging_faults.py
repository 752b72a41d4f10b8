"""Client-level fault test: Alice's client sends 2,000 messages to Bob through the real
CLI (`parley send --stdin`, one message per line, one process) while parleyd is killed
with SIGKILL and restarted several times on the same data directory and port.

What must hold: a send whose frame may have reached the server before the connection
died is resent by the library with the SAME message id (the server answers DUPLICATE if
it had stored it); a line whose send failed before anything left is reported and sent
again by the test. At the end Bob drains his queue with `parley recv --json` and his
history (`parley history alice`) holds every acknowledged message exactly once, under
the id Alice's client was given, and nothing else."""
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from harness import PARLEY, Server, cli, run

S = None
PW = "a long messaging password\n"
N_MESSAGES = int(os.environ.get("PARLEY_FAULT_MESSAGES", "2000"))
KILLS = 5


def user(name):
    h = tempfile.mkdtemp(prefix="parley-fault-")
    cli(S, h, "register", "--username", name, "--name", name.title(), "--dob", "1990-01-01",
        "--password-stdin", stdin=PW)
    cli(S, h, "login", "--username", name, "--password-stdin", stdin=PW)
    return h


def send_lines(h, to, lines, killer=None):
    """Run `parley --json send --stdin to` over lines; returns ({line index: id}, [failed
    line indexes]) and the process's stderr."""
    cmd = [PARLEY, "--server", f"http://127.0.0.1:{S.port}", "--home", h, "--json", "send",
           "--stdin", to]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    if killer:
        killer.start()
    out, err = p.communicate(("\n".join(lines) + "\n").encode(), timeout=120)
    sent, failed = {}, []
    for raw in out.decode().splitlines():
        doc = json.loads(raw)
        if doc.get("type") == "sent":
            sent[doc["line"] - 1] = doc["id"]
        elif doc.get("type") == "failed":
            failed.append(doc["line"] - 1)
    assert len(sent) + len(failed) == len(lines), (len(sent), len(failed), err[-2000:])
    return sent, failed, err


class Killer(threading.Thread):
    """SIGKILL parleyd every `every` seconds and restart it on the same data dir and port,
    `times` times or until told to stop."""

    def __init__(self, times, every):
        super().__init__(daemon=True)
        self.times, self.every = times, every
        self.done = threading.Event()
        self.kills = 0
        self.error = None

    def run(self):
        try:
            while self.kills < self.times and not self.done.wait(self.every):
                S.kill()
                self.kills += 1
                time.sleep(0.1)
                S.start()
        except Exception as e:  # reported by the test
            self.error = e


def test_sigkill_restarts_during_2000_sends_exactly_once():
    start = time.time()
    ha, hb = user("alice"), user("bob")
    texts = [f"fault message {i:04d}" for i in range(N_MESSAGES)]

    killer = Killer(KILLS, 0.8)
    sent, failed, err = send_lines(ha, "bob", texts, killer)
    t_sent = time.time()
    first_failed = len(failed)
    killer.done.set()
    killer.join(timeout=60)
    assert killer.error is None, killer.error
    assert killer.kills >= 3, f"only {killer.kills} restarts happened while sending"
    # A connection lost mid-send is the library's to handle: it resends the same frame
    # once the server is back. Only a send that could not even connect fails here.
    assert first_failed <= 20, f"{first_failed} sends failed instead of being resent"
    # The sender retries what was not acknowledged (nothing of it reached the server).
    for _ in range(3):
        if not failed:
            break
        again, failed_again, _ = send_lines(ha, "bob", [texts[i] for i in failed])
        sent.update({failed[k]: v for k, v in again.items()})
        failed = [failed[k] for k in failed_again]
    assert not failed, f"{len(failed)} lines never sent"
    assert len(sent) == N_MESSAGES

    # Bob drains his queue (one process may take long on a loaded machine: each message
    # is a local transaction plus a delivery receipt back to Alice).
    got = []
    for _ in range(20):
        p = subprocess.run([PARLEY, "--server", f"http://127.0.0.1:{S.port}", "--home", hb,
                            "--json", "recv", "--timeout", "300"], capture_output=True,
                           timeout=400)
        assert p.returncode == 0, p.stderr
        batch = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
        batch = [m for m in batch if m.get("type") == "message"]
        if not batch:
            break
        got.extend(batch)
    assert b"could not be decrypted" not in p.stderr, p.stderr
    hist = json.loads(cli(S, hb, "--json", "history", "alice").stdout)["messages"]
    counts = collections.Counter(x["text"] for x in hist)
    dup = [t for t, c in counts.items() if c != 1]
    assert not dup, f"{len(dup)} messages more than once, e.g. {dup[:3]}"
    missing = [t for t in texts if t not in counts]
    assert not missing, f"{len(missing)} acknowledged messages missing, e.g. {missing[:3]}"
    assert len(hist) == N_MESSAGES, len(hist)
    # Same message ids as Alice's client was given: a resent message kept its id.
    assert {x["id"] for x in hist} == set(sent.values())
    assert len(got) == N_MESSAGES, len(got)  # delivered once each as events too
    print(f"    {killer.kills} SIGKILL restarts, {first_failed} lines resent by the test, "
          f"sending {t_sent - start:.1f}s, receiving {time.time() - t_sent:.1f}s", flush=True)


if __name__ == "__main__":
    with Server("--rl-register-ip-per-hour", "100000", "--rl-login-ip-per-min", "100000",
                "--rl-login-account-per-min", "100000", "--send-rate-per-min", "1000000",
                threads=2) as S:
        status = run([test_sigkill_restarts_during_2000_sends_exactly_once])
    sys.exit(status)
