#!/usr/bin/env bash
# Instructions per request, the regression guard of docs/benchmarks.md: counts, not seconds, so
# they repeat for the same binary and inputs whatever else the machine is doing.
#
#   bench/callgrind.sh          prints a markdown table of instructions per request
#
# wxlogin (release build) runs under valgrind's callgrind against the WeChat simulator (not
# measured). For each scenario the script warms up, zeroes the counters, replays a fixed number
# of requests one after another on one connection, and dumps: the instructions of that dump over
# the number of requests. What the process did besides the requests in that window (its timers)
# is counted too, and is small beside them.
#
# The signed-in scenarios (/v1/me, /v1/auth/verify, decrypt) replay one user's token: the server
# trusts what it read of a session for tokens.session_cache_ms (1 s), so with tokens in turn the
# share of requests that read the database would depend on how fast the replay goes under
# valgrind (with 64 in turn it varied by 15% between runs). With one token they read it about once
# a second of the run, as under real load (bench/run.sh: each of 256 tokens every ~10 ms).
# CALLGRIND_SESSION_CACHE_MS=0 counts the other extreme, a database read on every request.
#
# Settings (environment): CALLGRIND_REQUESTS (1000, per scenario; logins use a fifth of it),
# CALLGRIND_KEEP=1 keeps the work directory (the callgrind files, for callgrind_annotate),
# CALLGRIND_LOG=FILTER runs the server with WXLOGIN_LOG=FILTER (e.g. `warn`: without the request
# lines, to count what logging costs), CALLGRIND_TOP=N also prints the N functions with the most
# instructions per scenario, callees included, CALLGRIND_SESSION_CACHE_MS=MS sets
# tokens.session_cache_ms, CALLGRIND_BIN=PATH counts that wxlogin binary instead of building one
# (e.g. a copy of an earlier build, to compare).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

command -v valgrind >/dev/null 2>&1 || { echo "bench/callgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

requests=${CALLGRIND_REQUESTS:-1000}
logins=$((requests / 5))
tool() { python3 "$root/bench/tool.py" "$@"; }
log() { printf '==> %s\n' "$*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/wxlogin-callgrind.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${CALLGRIND_KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

log "cargo build --release -p wxlogin -p bench-hello"
cargo build --release --locked -p wxlogin -p bench-hello
bin=${CALLGRIND_BIN:-$root/target/release/wxlogin}
hello_bin=$root/target/release/bench-hello

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
sim_port=$(free_port) server_port=$(free_port) hello_port=$(free_port)
sim=http://127.0.0.1:$sim_port server=http://127.0.0.1:$server_port hello=http://127.0.0.1:$hello_port

mkdir -p "$work/data"
# A fixed sealing key: the same inputs every run.
cat >"$work/wxlogin.toml" <<TOML
[server]
listen = "127.0.0.1:$server_port"
data_dir = "$work/data"
allow_insecure_public_url = true

[security]
sealing_key = "q5Mx0cTLDKIZ1xg3cMr3f0sUZVQ5nV1cK8yq9x3Y2aE="

[wechat]
base_url = "$sim"

[[apps]]
appid = "wx0000000000000001"
secret = "0123456789abcdef0123456789abcdef"

[rate_limits.login]
per_ip = "off"
per_user = "off"
TOML
if [ -n "${CALLGRIND_SESSION_CACHE_MS:-}" ]; then
  printf '\n[tokens]\nsession_cache_ms = %s\n' "$CALLGRIND_SESSION_CACHE_MS" >>"$work/wxlogin.toml"
fi

"$bin" mock-wechat --listen "127.0.0.1:$sim_port" >"$work/simulator.log" 2>&1 &
pids+=($!)
tool wait "$sim/__mock/stats" "$!"
log_env=()
if [ -n "${CALLGRIND_LOG:-}" ]; then log_env=(WXLOGIN_LOG="$CALLGRIND_LOG"); fi
env -u WXLOGIN_CONFIG WXLOGIN_METRICS__LISTEN= "${log_env[@]}" valgrind --tool=callgrind --quiet \
  --callgrind-out-file="$work/server.out" \
  "$bin" serve --allow-mock --config "$work/wxlogin.toml" >"$work/wxlogin.log" 2>&1 &
pids+=($!)
server_pid=$!
tool wait "$server/healthz" "$server_pid" --timeout 120 || { tail -n 20 "$work/wxlogin.log" >&2; exit 1; }

log "logging in 64 users"
tool sessions "$server" "$sim" "$work/s" --count 64 --prefix cg-
tool codes "$sim" "$work/new.txt" --count $((logins * 2)) --prefix new-
tool codes "$sim" "$work/ret.txt" --count $((logins * 2)) --prefix cg- --pool 64
# The first half of each file warms up, the second half is counted.
head -n "$logins" "$work/new.txt" >"$work/new-warm.txt"; tail -n "$logins" "$work/new.txt" >"$work/new-run.txt"
head -n "$logins" "$work/ret.txt" >"$work/ret-warm.txt"; tail -n "$logins" "$work/ret.txt" >"$work/ret-run.txt"
head -n 1 "$work/s/access.txt" >"$work/one-access.txt"; head -n 1 "$work/s/decrypt.txt" >"$work/one-decrypt.txt"

# measure NAME COUNT REPLAY-ARGS...: zero, replay, dump; appends "NAME COUNT INSTRUCTIONS"
measure() {
  local name=$1 count=$2
  shift 2
  callgrind_control -z "$target_pid" >/dev/null
  tool replay "$@"
  callgrind_control -d "$name" "$target_pid" >/dev/null
  local file
  file=$(ls -t "$target_out".* 2>/dev/null | head -n 1)
  [ -n "$file" ] || { echo "bench/callgrind.sh: no dump written" >&2; exit 1; }
  mv "$file" "$work/$name.callgrind"
  local total
  total=$(sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$work/$name.callgrind" | head -n 1)
  echo "$name $count $total" >>"$work/results.txt"
  if [ -n "${CALLGRIND_TOP:-}" ]; then
    echo "--- $name: top ${CALLGRIND_TOP} (inclusive)" >&2
    callgrind_annotate --inclusive=yes "$work/$name.callgrind" 2>/dev/null \
      | grep -E '^ *[0-9,]+ ' | head -n "$((CALLGRIND_TOP + 1))" | tail -n "$CALLGRIND_TOP" >&2 || true
  fi
}

log "replaying (warm-up, then counted)"
# The ceiling first: bench/hello (S0) under callgrind on its own.
valgrind --tool=callgrind --quiet --callgrind-out-file="$work/hello.out" \
  "$hello_bin" "127.0.0.1:$hello_port" >"$work/hello.log" 2>&1 &
pids+=($!)
target_pid=$! target_out=$work/hello.out
tool wait "$hello/" "$target_pid" --timeout 120
tool replay "$hello/" 200 --lines "$work/s/access.txt" --count 100
measure hello "$requests" "$hello/" 200 --lines "$work/s/access.txt" --count "$requests"
kill "$target_pid"
target_pid=$server_pid target_out=$work/server.out
tool replay "$server/.well-known/jwks.json" 200 --lines "$work/s/access.txt" --count 100
measure jwks "$requests" "$server/.well-known/jwks.json" 200 --lines "$work/s/access.txt" --count "$requests"
tool replay "$server/v1/me" 200 --lines "$work/one-access.txt" --count 100
measure me "$requests" "$server/v1/me" 200 --lines "$work/one-access.txt" --count "$requests"
tool replay "$server/v1/auth/verify" 200 --lines "$work/one-access.txt" --count 100
measure verify "$requests" "$server/v1/auth/verify" 200 --lines "$work/one-access.txt" --count "$requests"
tool replay "$server/v1/wechat/decrypt" 200 --mode bearer-post --lines "$work/one-decrypt.txt" --count 100
measure decrypt "$requests" "$server/v1/wechat/decrypt" 200 --mode bearer-post --lines "$work/one-decrypt.txt" --count "$requests"
tool replay "$server/v1/auth/wechat/login" 200 --mode post --lines "$work/new-warm.txt"
measure login_new "$logins" "$server/v1/auth/wechat/login" 200 --mode post --lines "$work/new-run.txt"
tool replay "$server/v1/auth/wechat/login" 200 --mode post --lines "$work/ret-warm.txt"
measure login_returning "$logins" "$server/v1/auth/wechat/login" 200 --mode post --lines "$work/ret-run.txt"

commit=$(git rev-parse --short=12 HEAD)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit (with uncommitted changes)"; fi
hello_per=$(awk '$1 == "hello" { print int($3 / $2) }' "$work/results.txt")
echo "| request | replayed | instructions per request | over S0 |"
echo "|---|---:|---:|---:|"
while read -r name count total; do
  case $name in
    hello) label='`GET /` of bench/hello (S0, the ceiling)' ;;
    jwks) label='`GET /.well-known/jwks.json` (S4)' ;;
    me) label='`GET /v1/me` (S1)' ;;
    verify) label='`GET /v1/auth/verify` (S1b)' ;;
    decrypt) label='`POST /v1/wechat/decrypt` (S5)' ;;
    login_new) label='login, new user (S2)' ;;
    login_returning) label='login, returning user (S2)' ;;
  esac
  per=$((total / count))
  printf '| %s | %d | %s | %s× |\n' "$label" "$count" "$(python3 -c "print(f'{$per:,}')")" \
    "$(python3 -c "print(f'{$per / $hello_per:.1f}')")"
done <"$work/results.txt"
echo
echo "wxlogin $commit${CALLGRIND_BIN:+ (binary $CALLGRIND_BIN)}, log filter ${CALLGRIND_LOG:-default (info)}, session_cache_ms ${CALLGRIND_SESSION_CACHE_MS:-default (1000)}, $(rustc -V), $(valgrind --version), $(date -u +%Y-%m-%d)"
