#!/usr/bin/env bash
# The benchmarks of wxlogin: see docs/benchmarks.md for what each scenario does.
#
#   bench/run.sh            5 interleaved repetitions after a warm-up; writes docs/benchmarks.md
#   bench/run.sh --smoke    one short repetition to show that the harness works; writes its report
#                           to a temporary file (or BENCH_REPORT) and leaves docs/ alone
#
# Settings (environment): BENCH_REPS (5), BENCH_DURATION seconds per run (5), BENCH_WARMUP seconds
# per scenario (2), BENCH_CONNECTIONS (64), BENCH_SERVER_CPU (0), BENCH_LOAD_CPU (1), BENCH_REPORT
# (the report's path), BENCH_NOTE (a sentence for the report, e.g. what else ran on the machine),
# BENCH_SMOKE=1 (as --smoke), BENCH_POSTGRES (a PostgreSQL URL, e.g.
# postgres://postgres@127.0.0.1:5432/test: the server then runs on a new database made there for
# the run and dropped after it, instead of SQLite). Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

smoke=${BENCH_SMOKE:-0}
for arg in "$@"; do
  case $arg in
    --smoke) smoke=1 ;;
    *) echo "usage: bench/run.sh [--smoke]" >&2; exit 2 ;;
  esac
done

if ! command -v wrk >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then
    echo "bench/run.sh: wrk is not installed (.ci/run installs it)" >&2
    exit 1
  fi
  echo "skipped: wrk is not installed (apt-get install wrk)"
  exit 0
fi

if [ "$smoke" = 1 ]; then
  reps=${BENCH_REPS:-1} duration=${BENCH_DURATION:-1} warmup=${BENCH_WARMUP:-0}
else
  reps=${BENCH_REPS:-5} duration=${BENCH_DURATION:-5} warmup=${BENCH_WARMUP:-2}
fi
connections=${BENCH_CONNECTIONS:-64}
server_cpu=${BENCH_SERVER_CPU:-0}
load_cpu=${BENCH_LOAD_CPU:-1}
if [ "$(nproc --all)" -lt 2 ]; then load_cpu=$server_cpu; fi

# Count bounds. Logins use pre-minted codes: at most this many per second of a run (the
# simulator's 50 ms latency caps 64 connections at 1,280 logins/s); a run that uses them all up
# stops early and is marked "count-bound" in the report, its throughput taken over the time it ran.
codes_per_s_0ms=6000
codes_per_s_50ms=1500
cap_per_s=200000        # requests per second of a run at most, every other scenario
sessions=256            # logged-in users per repetition (S1, S1b, S3's first tokens, S5)
returning=3000          # users registered before the runs, for the returning-user logins
if [ "$smoke" = 1 ]; then sessions=128 returning=200; fi
# S3 needs a refresh token for every connection and one more: wrk calls the script's request()
# once before the run to check it.
if [ "$sessions" -le "$connections" ]; then sessions=$((connections + 16)); fi

tool() { python3 "$root/bench/tool.py" "$@"; }
log() { printf '==> %s\n' "$*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/wxlogin-bench.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${bench_db:-}" ]; then
    psql -q "$BENCH_POSTGRES" -c "DROP DATABASE IF EXISTS $bench_db" >/dev/null 2>&1 || true
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

if [ -n "${BENCH_REPORT:-}" ]; then
  report=$BENCH_REPORT
elif [ "$smoke" = 1 ]; then
  report=$(mktemp "${TMPDIR:-/tmp}/wxlogin-bench-smoke.XXXXXX.md")
else
  report=$root/docs/benchmarks.md
fi

log "cargo build --release -p wxlogin -p bench-hello"
cargo build --release --locked -p wxlogin -p bench-hello
bin=$root/target/release

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
hello_port=$(free_port) sim_port=$(free_port) server_port=$(free_port)
hello=http://127.0.0.1:$hello_port sim=http://127.0.0.1:$sim_port server=http://127.0.0.1:$server_port

database="SQLite (<data_dir>/wxlogin.db)"
database_toml=""
if [ -n "${BENCH_POSTGRES:-}" ]; then
  bench_db=wxlogin_bench_$$
  psql -q "$BENCH_POSTGRES" -c "CREATE DATABASE $bench_db" >/dev/null
  database_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$BENCH_POSTGRES" "$bench_db")
  database="PostgreSQL $(psql -tAq "$BENCH_POSTGRES" -c 'SHOW server_version' | cut -d' ' -f1) (local, a new database)"
  database_toml="[database]
url = \"$database_url\""
fi

mkdir -p "$work/data"
cat >"$work/wxlogin.toml" <<TOML
$database_toml

[server]
listen = "127.0.0.1:$server_port"
data_dir = "$work/data"
# Loopback on purpose: only this script talks to it.
allow_insecure_public_url = true

[security]
sealing_key = "$(openssl rand -base64 32)"

[wechat]
base_url = "$sim"

[[apps]]
appid = "wx0000000000000001"
secret = "0123456789abcdef0123456789abcdef"

# All the load comes from one address and a few thousand users: the limits would refuse it.
[rate_limits.login]
per_ip = "off"
per_user = "off"

[rate_limits.refresh]
per_ip = "off"
per_user = "off"
TOML

log "starting the simulator, bench-hello and wxlogin on CPU $server_cpu"
taskset -c "$server_cpu" "$bin/wxlogin" mock-wechat --listen "127.0.0.1:$sim_port" >"$work/simulator.log" 2>&1 &
pids+=($!)
sim_pid=$!
taskset -c "$server_cpu" "$bin/bench-hello" "127.0.0.1:$hello_port" >"$work/hello.log" 2>&1 &
pids+=($!)
hello_pid=$!
tool wait "$sim/__mock/stats" "$sim_pid"
tool wait "$hello/" "$hello_pid"
# The server's log lines (one per request and more, at the default level) go to a file, as a
# service manager would take them. The metrics listener stays off: its default port may be taken.
env -u WXLOGIN_CONFIG WXLOGIN_METRICS__LISTEN= taskset -c "$server_cpu" "$bin/wxlogin" serve --allow-mock --config "$work/wxlogin.toml" \
  >"$work/wxlogin.log" 2>&1 &
pids+=($!)
server_pid=$!
tool wait "$server/healthz" "$server_pid" || { tail -n 20 "$work/wxlogin.log" >&2; exit 1; }

rss_before=$(tool rss "$server_pid")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

log "registering $returning returning users"
tool sessions "$server" "$sim" "$work/returning" --count "$returning" --prefix ret-

: >"$work/runs.jsonl"

# run SCENARIO REP SECONDS URL MODE [FILE] [CAP]
run() {
  local scenario=$1 rep=$2 seconds=$3 url=$4 mode=$5 file=${6:-} cap=${7:-$((cap_per_s * $3))}
  local out=$work/result.json
  rm -f "$out"
  BENCH_MODE=$mode BENCH_FILE=$file BENCH_CAP=$cap BENCH_OUT=$out BENCH_THREADS=1 \
    taskset -c "$load_cpu" wrk -t1 -c"$connections" -d"${seconds}s" --timeout 5s \
    -s "$root/bench/wrk/bench.lua" "$url" >"$work/wrk.log" 2>&1 || {
    cat "$work/wrk.log" >&2
    echo "bench/run.sh: wrk failed in $scenario" >&2
    return 1
  }
  if [ ! -s "$out" ] || grep -qE 'PANIC|\.lua:[0-9]+:' "$work/wrk.log"; then
    cat "$work/wrk.log" >&2
    echo "bench/run.sh: the wrk script failed in $scenario" >&2
    return 1
  fi
  tool record "$out" "$scenario" "$rep" "$work/runs.jsonl"
}

# One pass over every scenario; the warm-up is a pass that is not recorded.
pass() {
  local rep=$1 seconds=$2 dir=$work/rep-$1
  mkdir -p "$dir"
  tool sessions "$server" "$sim" "$dir/s" --count "$sessions" --prefix "s$rep-"
  local token
  token=$(head -n 1 "$dir/s/access.txt")
  tool check "$server/v1/me" 200 --bearer "$token"
  tool check "$server/v1/auth/verify" 200 --bearer "$token"
  tool check "$server/.well-known/jwks.json" 200
  tool check "$server/v1/wechat/decrypt" 200 --bearer "$token" --body "$(head -n 1 "$dir/s/decrypt.txt" | cut -f2)"

  run S0 "$rep" "$seconds" "$hello/" get
  run S1 "$rep" "$seconds" "$server/v1/me" get "$dir/s/access.txt"
  run S1b "$rep" "$seconds" "$server/v1/auth/verify" get "$dir/s/access.txt"
  local ms per_s
  for ms in 0 50; do
    tool latency "$sim" "$ms"
    if [ "$ms" = 0 ]; then per_s=$codes_per_s_0ms; else per_s=$codes_per_s_50ms; fi
    tool codes "$sim" "$dir/new-$ms.txt" --count $((per_s * seconds)) --prefix "n$rep-$ms-"
    run "S2-$ms-new" "$rep" "$seconds" "$server/v1/auth/wechat/login" post "$dir/new-$ms.txt"
    tool codes "$sim" "$dir/ret-$ms.txt" --count $((per_s * seconds)) --prefix ret- --pool "$returning"
    run "S2-$ms-ret" "$rep" "$seconds" "$server/v1/auth/wechat/login" post "$dir/ret-$ms.txt"
  done
  tool latency "$sim" 0
  run S3 "$rep" "$seconds" "$server/v1/auth/refresh" refresh "$dir/s/refresh.txt"
  run S4 "$rep" "$seconds" "$server/.well-known/jwks.json" get
  run S5 "$rep" "$seconds" "$server/v1/wechat/decrypt" decrypt "$dir/s/decrypt.txt"
  rm -rf "$dir"
}

if [ "$warmup" -gt 0 ]; then
  log "warm-up: every scenario for ${warmup} s"
  pass warmup "$warmup"
fi
for rep in $(seq 1 "$reps"); do
  log "repetition $rep of $reps"
  pass "$rep" "$duration"
done

rss_after=$(tool rss "$server_pid")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
kill -0 "$server_pid" || { echo "bench/run.sh: wxlogin died" >&2; exit 1; }

command_line="bench/run.sh${*:+ $*}"
for v in BENCH_POSTGRES BENCH_SMOKE BENCH_REPS BENCH_DURATION BENCH_WARMUP BENCH_CONNECTIONS BENCH_SERVER_CPU BENCH_LOAD_CPU; do
  if [ -n "${!v:-}" ]; then command_line="$v=${!v} $command_line"; fi
done
if [ -n "${BENCH_NOTE:-}" ]; then command_line="BENCH_NOTE='<the note above>' $command_line"; fi
commit=$(git rev-parse --short=12 HEAD)
if [ -n "$(git status --porcelain --untracked-files=no -- . ':!docs/benchmarks.md' 2>/dev/null)" ]; then
  commit="$commit (with uncommitted changes)"
fi
tool meta "$work/meta.json" \
  "command=$command_line" "note=${BENCH_NOTE:-}" "smoke=$smoke" \
  "reps=$reps" "duration=$duration" "warmup=$warmup" "connections=$connections" \
  "sessions=$sessions" "returning=$returning" "cap_per_s=$cap_per_s" \
  "codes_per_s_0ms=$codes_per_s_0ms" "codes_per_s_50ms=$codes_per_s_50ms" \
  "rss_before_kb=$rss_before" "rss_after_kb=$rss_after" \
  "machine.CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
  "machine.cores=$(nproc --all) (server, simulator and hello on CPU $server_cpu; wrk on CPU $load_cpu)" \
  "machine.kernel=$(uname -srm)" \
  "machine.database=$database" \
  "machine.load average (1, 5, 15 min)=$load_before at the start, $load_after at the end" \
  "machine.rustc=$(rustc -V)" \
  "machine.wxlogin commit=$commit" \
  "machine.load generator=$(wrk -v 2>&1 | head -n 1 | sed 's/ Copyright.*//')" \
  "machine.Python (helpers)=$(python3 -V 2>&1)" \
  "machine.date=$(date -u +%Y-%m-%dT%H:%MZ)"

tool report "$work" "$report"
log "report: $report"
