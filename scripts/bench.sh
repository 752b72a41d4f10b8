#!/usr/bin/env bash
# make bench / make bench-quick (issue #5): parleyd against Mosquitto (QoS 1) and a bare
# libuv + wslay relay, with one load generator for all three (build-bench/bench/loadgen),
# plus the crypto core (bench/crypto_bench). Installs what it needs (scripts/deps.sh
# --bench), builds with -O2 into build-bench/, starts every server itself on loopback and
# stops it after; server pinned to CPU 0, generator to CPU 1.
#
#   scripts/bench.sh quick   # < 60 s: relay P=100 + ping-pong, drain 5,000 (+10x500),
#                            #   500 idle connections (250 with TLS)
#   scripts/bench.sh full    # < 15 min: relay P=1,100,1000 + ping-pong, drain 100,000
#                            #   (+100x1,000), 10,000 idle connections (plain and TLS)
#
# Writes bench/results/latest.json (flat "name": value pairs plus "meta"), appends a
# Markdown section to bench/RESULTS.md and prints the ratio lines last as name=value.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
case "$mode" in
  quick|full) ;;
  *) echo "usage: scripts/bench.sh quick|full" >&2; exit 2 ;;
esac
target=bench
if [ "$mode" = quick ]; then target=bench-quick; fi
command_line="scripts/bench.sh $mode (make $target)"
started=$(date -u +%s)

scripts/deps.sh --bench
B=build-bench
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$B" --target parleyd loadgen bench_relay crypto_bench -j "$(nproc)" >/dev/null

# 10,000 idle connections on each side, plus set-up connections.
if [ "$(ulimit -n)" -lt 20000 ]; then
  if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt 20000 ]; then
    ulimit -Hn 20000 2>/dev/null || true
  fi
  ulimit -n 20000 2>/dev/null || {
    echo "bench: cannot raise the open-file limit to 20000 (ulimit -n is $(ulimit -n))" >&2
    exit 1
  }
fi

if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  PIN_SERVER=(taskset -c 0)
  PIN_GEN=(taskset -c 1)
else
  echo "bench: fewer than 2 CPUs or no taskset: not pinning" >&2
  PIN_SERVER=()
  PIN_GEN=()
fi

work=$(mktemp -d /tmp/parley-bench.XXXXXX)
raw="$work/raw.txt"
: >"$raw"
spid=""
all_pids=()
cleanup() {
  for p in "${all_pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server NAME PORT CMD...: runs CMD pinned to CPU 0, waits for PORT to accept.
start_server() {
  local name=$1 port=$2
  shift 2
  "${PIN_SERVER[@]}" "$@" >"$work/$name.log" 2>&1 &
  spid=$!
  all_pids+=("$spid")
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$spid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "bench: $name did not start; its log:" >&2
  tail -20 "$work/$name.log" >&2
  return 1
}

stop_server() {
  if [ -n "$spid" ]; then
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    spid=""
  fi
}

failed=0
# run_gen NAME PORT ARGS...: the load generator pinned to CPU 1, output appended to raw
# (or to $GEN_OUT), measuring the server $spid.
run_gen() {
  local name=$1 port=$2 out=${GEN_OUT:-$raw}
  shift 2
  echo "# $name (t=${SECONDS}s)" >&2
  if ! "${PIN_GEN[@]}" "$B/bench/loadgen" --port "$port" --server-pid "$spid" --mode "$mode" \
      "$@" >>"$out" 2>"$work/gen-$name.log"; then
    echo "bench: load generator failed for $name:" >&2
    tail -5 "$work/gen-$name.log" >&2
    failed=1
  fi
}

# ---- servers
parleyd_flags=(--threads 1 --log-level warn --argon2-opslimit 1 --argon2-memlimit-kib 8
  --send-rate-per-min 10000000 --max-queue-per-device 1000000 --max-devices 16
  --rl-register-ip-per-hour 1000000 --rl-login-ip-per-min 100000
  --rl-login-account-per-min 100000)

start_parleyd() { # start_parleyd NAME PORT [tls]
  local name=$1 port=$2 extra=()
  rm -rf "$work/data-$name"
  if [ "${3:-}" = tls ]; then extra=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem"); fi
  start_server "$name" "$port" "$B/parleyd" --listen "127.0.0.1:$port" \
    --data "$work/data-$name" "${parleyd_flags[@]}" "${extra[@]}"
}

start_mosquitto() { # start_mosquitto NAME PORT
  local name=$1 port=$2
  # QoS 1 peer: in-memory (persistence false: Mosquitto does not fsync per message, it
  # autosaves), window and queue sized like parleyd's (256 in flight, queue > 100,000).
  cat >"$work/$name.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 256
max_queued_messages 1000000
max_connections -1
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
EOF
  start_server "$name" "$port" mosquitto -c "$work/$name.conf"
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# Each target: relay + drain on one server process, idle on a fresh one (so memory freed
# by earlier runs does not hide the per-connection cost).
p=$(free_port)
start_server bare "$p" "$B/bench/bench_relay" --port "$p"
run_gen bare "$p" --target bare --only pingpong,relay
stop_server
start_server bare-idle "$p" "$B/bench/bench_relay" --port "$p"
run_gen bare-idle "$p" --target bare --only idle
stop_server

p=$(free_port)
start_mosquitto mosquitto "$p"
run_gen mosquitto "$p" --target mosquitto --only pingpong,relay,drain
stop_server
start_mosquitto mosquitto-idle "$p"
run_gen mosquitto-idle "$p" --target mosquitto --only idle
stop_server

p=$(free_port)
start_parleyd parley "$p"
run_gen parley "$p" --target parley --only pingpong,relay,drain
stop_server
start_parleyd parley-idle "$p"
run_gen parley-idle "$p" --target parley --only idle
stop_server
start_parleyd parley-tls "$p" tls
run_gen parley-tls "$p" --target parley --only idle --tls
stop_server

# Relay P=100 and the drains again, in interleaved rounds. This machine's speed drifts
# by up to 2x over minutes (a shared VM), and the runs above measure each target
# minutes apart, so a single ratio can be off by a third or more. Each round runs the
# targets back to back on servers started together; the P=100 and drain figures reported
# are medians over the rounds and the run above, and each ratio the median of the
# rounds' own ratios. Six rounds (about a minute each) keep the full run under 15 minutes.
# `quick` has no rounds: it must stay under a minute.
rounds=6
[ "$mode" = quick ] && rounds=0
if [ "$rounds" -gt 0 ]; then
pb=$(free_port); start_server round-bare "$pb" "$B/bench/bench_relay" --port "$pb"; pid_b=$spid
pm=$(free_port); start_mosquitto round-mosquitto "$pm"; pid_m=$spid
pp=$(free_port); start_parleyd round-parley "$pp"; pid_p=$spid
for r in $(seq 1 "$rounds"); do
  for t in bare mosquitto parley; do
    case $t in
      bare) port=$pb spid=$pid_b ;;
      mosquitto) port=$pm spid=$pid_m ;;
      parley) port=$pp spid=$pid_p ;;
    esac
    GEN_OUT="$work/round.txt" run_gen "round$r-$t" "$port" --target "$t" --only relay,drain \
      --pairs 100
    sed -n -E "s/^(relay\.p100|drain)\./round.$r.\1./p" "$work/round.txt" >>"$raw"
    : >"$work/round.txt"
  done
done
for spid in $pid_b $pid_m $pid_p; do stop_server; done
fi

echo "# crypto (t=${SECONDS}s)" >&2
seconds=1
[ "$mode" = full ] && seconds=5
"${PIN_SERVER[@]}" "$B/bench/crypto_bench" "$seconds" | sed 's/^/crypto./' >>"$raw" || failed=1

# ---- results
mkdir -p bench/results
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=""
if [ -n "$(git status --porcelain 2>/dev/null | head -1)" ]; then dirty="+dirty"; fi
RAW="$raw" MODE="$mode" COMMIT="$commit$dirty" COMMAND="$command_line" \
  LOAD_BEFORE="$load_before" ELAPSED=$(( $(date -u +%s) - started )) \
  python3 - <<'PY'
import json, os, datetime, platform

vals = {}
for line in open(os.environ["RAW"]):
    line = line.strip()
    if "=" not in line or line.startswith("#"):
        continue
    k, v = line.split("=", 1)
    try:
        vals[k] = float(v) if "." in v else int(v)
    except ValueError:
        vals[k] = v

# Relay P=100 and drain: the first run (round 0) and the interleaved rounds. Each figure
# is the median over the rounds, each ratio the median of the rounds' own ratios.
import statistics
def samples(key):
    out = [vals[key]] if key in vals else []
    r = 1
    while f"round.{r}.{key}" in vals:
        out.append(vals[f"round.{r}.{key}"])
        r += 1
    return out
def round_ratios(num, den):
    a, b = samples(num), samples(den)
    return [round(x / y, 3) for x, y in zip(a, b) if y]
relay_ratios = {
    "ratio.relay_vs_mosquitto": ("relay.p100.parley_msgs_per_s",
                                 "relay.p100.mosquitto_qos1_msgs_per_s"),
    "ratio.relay_vs_bare": ("relay.p100.parley_msgs_per_s", "relay.p100.bare_msgs_per_s"),
    "ratio.p99_vs_mosquitto": ("relay.p100.parley_p99_us", "relay.p100.mosquitto_p99_us"),
    # Drain is a time: how many times faster parleyd empties the backlog than Mosquitto.
    "ratio.drain_vs_mosquitto": ("drain.single.mosquitto_s", "drain.single.parley_s"),
}
per_round = {}
for name, (num, den) in relay_ratios.items():
    rs = round_ratios(num, den)
    if rs:
        per_round[name] = rs
        vals[name] = round(statistics.median(rs), 3)
for key in [k for k in list(vals) if k.startswith(("relay.p100.", "drain."))]:
    s = samples(key)
    if len(s) > 1 and all(isinstance(x, (int, float)) for x in s):
        m = statistics.median(s)
        vals[key] = round(m, 3) if isinstance(s[0], float) else int(m)
if any(len(v) > 1 for v in per_round.values()):
    vals["relay.p100.rounds"] = len(next(iter(per_round.values())))

now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
               if l.startswith("model name"))
except StopIteration:
    cpu = platform.machine()
meta = {"date": now, "commit": os.environ["COMMIT"], "command": os.environ["COMMAND"],
        "mode": os.environ["MODE"], "cpus": os.cpu_count(), "cpu": cpu,
        "loadavg_at_start": os.environ["LOAD_BEFORE"],
        "elapsed_s": int(os.environ["ELAPSED"])}
out = {"meta": meta}
out.update(dict(sorted(vals.items())))
with open("bench/results/latest.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")

goals = {
    "ratio.relay_vs_mosquitto": "≥ 2", "ratio.relay_vs_bare": "≥ 0.3",
    "ratio.p99_vs_mosquitto": "≤ 1", "ratio.drain_vs_mosquitto": "≥ 2",
    "idle.parley_bytes_per_conn": "≤ 1024", "idle.parley_tls_bytes_per_conn": "≤ 8192",
}
def fmt(v, k=""):
    if isinstance(v, float) and k.endswith("_pct"):
        return f"{v:.1f}"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)
def met(k):
    if k not in goals or k not in vals:
        return ""
    g = goals[k]
    lim = float(g.split()[1])
    ok = vals[k] >= lim if g.startswith("≥") else vals[k] <= lim
    return "yes" if ok else "**no**"

lines = [f"\n## Run {now} — `{meta['mode']}`\n",
         f"Commit `{meta['commit']}`. Command: `{meta['command']}`. Machine: {meta['cpus']} CPU "
         f"({cpu}); load average at start {meta['loadavg_at_start']}; took "
         f"{meta['elapsed_s']} s. Server on CPU 0, load generator on CPU 1.\n",
         "| name | value | goal | met |", "|---|---|---|---|"]
for k in [k for k in goals if k in vals] + [k for k in sorted(vals)
                                            if k not in goals and not k.startswith("round.")]:
    lines.append(f"| `{k}` | {fmt(vals[k], k)} | {goals.get(k, '')} | {met(k)} |")
for name, rs in ((k, v) for k, v in per_round.items() if len(v) > 1):
    lines.append(f"\n`{name}` per round (first run, then interleaved): "
                 + ", ".join(f"{x:.3f}" for x in rs) + "; median reported above.")
with open("bench/RESULTS.md", "a") as f:
    f.write("\n".join(lines) + "\n")
PY

echo "# wrote bench/results/latest.json and appended to bench/RESULTS.md (t=${SECONDS}s)" >&2
python3 - <<'PY'
import json
d = json.load(open("bench/results/latest.json"))
for k in sorted(k for k in d if not k.startswith(("ratio.", "meta", "round."))):
    print(f"{k}={d[k]}")
for k in sorted(k for k in d if k.startswith("ratio.")):
    print(f"{k}={d[k]}")
PY
exit "$failed"
