#!/usr/bin/env bash
# The three-instance topology (docs/operations.md, "Topology"; tests/api/instances.rs) under load:
# three wxlogin processes sharing one PostgreSQL database and one Redis, each with its own load
# generator at the same time, their throughput summed. Beside them, bench-hello as the ceiling of
# the same run. Scenarios: S0 (hello), S1 (GET /v1/me), S2 (logins of new users, WeChat at 0 ms),
# S3 (refresh, each token used once). Prints a markdown table (or writes it to BENCH_REPORT).
#
# Usage: bench/instances.sh [--smoke]
# Settings (environment): BENCH_POSTGRES (postgres://postgres@127.0.0.1:5432/test: a new database
# is made there for the run and dropped after it), BENCH_REDIS (redis://127.0.0.1:6379/14: the
# run's keys live under a prefix of their own), BENCH_REPS (3), BENCH_DURATION seconds per run (5),
# BENCH_CONNECTIONS in all, split between the three (66), BENCH_SERVER_CPU (0: every wxlogin, the
# simulator and hello), BENCH_LOAD_CPU (1: the three wrk). Loopback only; bounded in time and count.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

smoke=0
for arg in "$@"; do
  case $arg in
    --smoke) smoke=1 ;;
    *) echo "usage: bench/instances.sh [--smoke]" >&2; exit 2 ;;
  esac
done
for tool in wrk psql redis-cli; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then echo "bench/instances.sh: $tool is not installed" >&2; exit 1; fi
    echo "skipped: $tool is not installed"
    exit 0
  fi
done
postgres=${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
redis=${BENCH_REDIS:-redis://127.0.0.1:6379/14}
if ! psql -q "$postgres" -c 'SELECT 1' >/dev/null 2>&1 || ! redis-cli -u "$redis" ping >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then echo "bench/instances.sh: PostgreSQL or Redis does not answer" >&2; exit 1; fi
  echo "skipped: PostgreSQL ($postgres) or Redis ($redis) does not answer"
  exit 0
fi
if [ "$smoke" = 1 ]; then
  reps=${BENCH_REPS:-1} duration=${BENCH_DURATION:-1}
else
  reps=${BENCH_REPS:-3} duration=${BENCH_DURATION:-5}
fi
connections=${BENCH_CONNECTIONS:-66}
per=$((connections / 3))
server_cpu=${BENCH_SERVER_CPU:-0}
load_cpu=${BENCH_LOAD_CPU:-1}
if [ "$(nproc --all)" -lt 2 ]; then load_cpu=$server_cpu; fi
codes_per_s=3000        # login codes minted per instance and second of a run, at most
sessions=$((per + 64))  # logged-in users per instance and repetition (S1, S3)

tool() { python3 "$root/bench/tool.py" "$@"; }
log() { printf '==> %s\n' "$*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/wxlogin-instances.XXXXXX")
pids=()
bench_db=wxlogin_instances_$$
prefix="wxlogin-bench-$$:"
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql -q "$postgres" -c "DROP DATABASE IF EXISTS $bench_db" >/dev/null 2>&1 || true
  redis-cli -u "$redis" --scan --pattern "$prefix*" 2>/dev/null | xargs -r redis-cli -u "$redis" del >/dev/null 2>&1 || true
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

log "cargo build --release -p wxlogin -p bench-hello"
cargo build --release --locked -p wxlogin -p bench-hello
bin=$root/target/release

psql -q "$postgres" -c "CREATE DATABASE $bench_db" >/dev/null
database_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$postgres" "$bench_db")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
hello_port=$(free_port) sim_port=$(free_port)
hello=http://127.0.0.1:$hello_port sim=http://127.0.0.1:$sim_port

cat >"$work/wxlogin.toml" <<TOML
[database]
url = "$database_url"
max_connections = 10

[redis]
url = "$redis"
key_prefix = "$prefix"

[server]
data_dir = "$work/data"
# One address for the three, as behind a load balancer: it is the tokens' issuer, so a token of
# one instance is valid on the others. Loopback on purpose: only this script talks to them.
public_url = "http://127.0.0.1"
allow_insecure_public_url = true

[security]
sealing_key = "$(openssl rand -base64 32)"

[wechat]
base_url = "$sim"

[[apps]]
appid = "wx0000000000000001"
secret = "0123456789abcdef0123456789abcdef"

# All the load comes from one address: the limits would refuse it.
[rate_limits.login]
per_ip = "off"
per_user = "off"

[rate_limits.refresh]
per_ip = "off"
per_user = "off"
TOML
mkdir -p "$work/data"

log "starting the simulator, bench-hello and three wxlogin instances on CPU $server_cpu"
taskset -c "$server_cpu" "$bin/wxlogin" mock-wechat --listen "127.0.0.1:$sim_port" >"$work/simulator.log" 2>&1 &
pids+=($!)
tool wait "$sim/__mock/stats" "$!"
taskset -c "$server_cpu" "$bin/bench-hello" "127.0.0.1:$hello_port" >"$work/hello.log" 2>&1 &
pids+=($!)
tool wait "$hello/" "$!"
"$bin/wxlogin" migrate --config "$work/wxlogin.toml" >"$work/migrate.log" 2>&1
servers=()
for n in 1 2 3; do
  port=$(free_port)
  env -u WXLOGIN_CONFIG WXLOGIN_METRICS__LISTEN= WXLOGIN_SERVER__LISTEN="127.0.0.1:$port" \
    taskset -c "$server_cpu" "$bin/wxlogin" serve --allow-mock --config "$work/wxlogin.toml" \
    >"$work/wxlogin-$n.log" 2>&1 &
  pids+=($!)
  tool wait "http://127.0.0.1:$port/readyz" "$!" --timeout 30 || { tail -n 20 "$work/wxlogin-$n.log" >&2; exit 1; }
  servers+=("http://127.0.0.1:$port")
done

: >"$work/runs.jsonl"

# together SCENARIO REP PATH MODE FILE...: one wrk per instance (FILE the lines of each), at once.
together() {
  local scenario=$1 rep=$2 path=$3 mode=$4
  shift 4
  local n wrk_pids=()
  for n in 0 1 2; do
    rm -f "$work/result-$n.json"
    BENCH_MODE=$mode BENCH_FILE=${1:-} BENCH_CAP=$((200000 * duration)) BENCH_OUT=$work/result-$n.json BENCH_THREADS=1 \
      taskset -c "$load_cpu" wrk -t1 -c"$per" -d"${duration}s" --timeout 5s \
      -s "$root/bench/wrk/bench.lua" "${servers[$n]}$path" >"$work/wrk-$n.log" 2>&1 &
    wrk_pids+=($!)
    shift || true
  done
  for n in 0 1 2; do
    wait "${wrk_pids[$n]}" || { cat "$work/wrk-$n.log" >&2; echo "bench/instances.sh: wrk failed in $scenario" >&2; return 1; }
    [ -s "$work/result-$n.json" ] || { cat "$work/wrk-$n.log" >&2; return 1; }
  done
  python3 - "$scenario" "$rep" "$work" >>"$work/runs.jsonl" <<'PY'
import json, sys
scenario, rep, work = sys.argv[1], sys.argv[2], sys.argv[3]
parts = [json.load(open(f"{work}/result-{n}.json")) for n in range(3)]
print(json.dumps({
    "scenario": scenario, "rep": int(rep),
    "rps": sum(p["rps"] for p in parts),
    "requests": sum(p["requests"] for p in parts),
    "non2xx": sum(p["non2xx"] for p in parts),
    "p50_ms": max(p["p50_ms"] for p in parts),
    "p99_ms": max(p["p99_ms"] for p in parts),
    "per_instance": [round(p["rps"]) for p in parts],
}))
PY
  tail -n 1 "$work/runs.jsonl" >&2
}

hello_run() {
  local rep=$1
  rm -f "$work/result-0.json"
  BENCH_MODE=get BENCH_CAP=$((200000 * duration)) BENCH_OUT=$work/result-0.json BENCH_THREADS=1 \
    taskset -c "$load_cpu" wrk -t1 -c"$connections" -d"${duration}s" --timeout 5s \
    -s "$root/bench/wrk/bench.lua" "$hello/" >"$work/wrk-hello.log" 2>&1
  python3 - "$rep" "$work/result-0.json" >>"$work/runs.jsonl" <<'PY'
import json, sys
p = json.load(open(sys.argv[2]))
print(json.dumps({"scenario": "S0", "rep": int(sys.argv[1]), "rps": p["rps"], "requests": p["requests"],
                  "non2xx": p["non2xx"], "p50_ms": p["p50_ms"], "p99_ms": p["p99_ms"]}))
PY
}

for rep in $(seq 1 "$reps"); do
  log "repetition $rep of $reps"
  for n in 0 1 2; do
    tool sessions "${servers[$n]}" "$sim" "$work/s-$rep-$n" --count "$sessions" --prefix "i$rep-$n-"
    tool codes "$sim" "$work/new-$rep-$n.txt" --count $((codes_per_s * duration)) --prefix "c$rep-$n-"
  done
  # A token of one instance works on every other: one database, one keyring.
  tool check "${servers[2]}/v1/me" 200 --bearer "$(head -n 1 "$work/s-$rep-0/access.txt")"
  hello_run "$rep"
  together S1 "$rep" /v1/me get "$work/s-$rep-0/access.txt" "$work/s-$rep-1/access.txt" "$work/s-$rep-2/access.txt"
  together S2 "$rep" /v1/auth/wechat/login post "$work/new-$rep-0.txt" "$work/new-$rep-1.txt" "$work/new-$rep-2.txt"
  together S3 "$rep" /v1/auth/refresh refresh "$work/s-$rep-0/refresh.txt" "$work/s-$rep-1/refresh.txt" "$work/s-$rep-2/refresh.txt"
done

rss=$(for pid in "${pids[@]:2}"; do tool rss "$pid"; done | paste -sd/ -)
python3 - "$work/runs.jsonl" "$reps" "$duration" "$connections" "$rss" >"$work/report.md" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
reps, duration, connections, rss = sys.argv[2:6]
by = {}
for r in runs:
    by.setdefault(r["scenario"], []).append(r)
ceiling = statistics.median(r["rps"] for r in by["S0"])
names = {"S0": "S0 hello (ceiling, one process)", "S1": "S1 `GET /v1/me`",
         "S2": "S2 logins, new users, WeChat 0 ms", "S3": "S3 refresh"}
print(f"{reps} repetitions of {duration} s, {connections} connections in all "
      f"({int(connections) // 3} per instance); RSS after (kB, each instance): {rss}.\n")
print("| scenario | aggregate req/s, median (min–max) | of S0 | per instance, last run | p50 / p99 ms (worst instance), median | non-2xx |")
print("|---|---|---|---|---|---|")
for key in ["S0", "S1", "S2", "S3"]:
    rs = by.get(key, [])
    if not rs:
        continue
    rps = [r["rps"] for r in rs]
    med = statistics.median(rps)
    per = " / ".join(f"{n:,}" for n in rs[-1].get("per_instance", [])) or "—"
    share = "" if key == "S0" else f"{med / ceiling:.1%}"
    print(f"| {names[key]} | {med:,.0f} ({min(rps):,.0f}–{max(rps):,.0f}) | {share} | {per} | "
          f"{statistics.median(r['p50_ms'] for r in rs):.1f} / {statistics.median(r['p99_ms'] for r in rs):.1f} | "
          f"{sum(r['non2xx'] for r in rs)} |")
failed = [k for k in ["S1", "S2", "S3"] if any(r["non2xx"] or r["requests"] == 0 for r in by.get(k, [{"non2xx": 0, "requests": 0}]))]
if failed:
    print(f"\nscenarios with errors or no request: {', '.join(failed)}", file=sys.stderr)
    sys.exit(1)
PY
if [ -n "${BENCH_REPORT:-}" ]; then cp "$work/report.md" "$BENCH_REPORT"; else cat "$work/report.md"; fi
