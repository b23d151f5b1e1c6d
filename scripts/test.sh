#!/usr/bin/env bash
# The whole test suite, as the README shows it: `scripts/test.sh`.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p wechat-mock`).
#
# Then the mini program client (clients/miniprogram), when Node.js 20+ and npm are installed: `npm ci`
# if its node_modules is missing, its build (which checks the size budget), its unit tests, and its
# integration tests against the wxlogin binary and the WeChat simulator. Without Node.js they are
# skipped with a note; in CI (CI=true) that fails the run.
#
# The store tests run on SQLite always, and on PostgreSQL when WXLOGIN_TEST_POSTGRES_URL is set or a
# server answers on 127.0.0.1:5432 (database `test`, user `postgres`); otherwise they say what they
# skipped. In CI (CI=true) a missing PostgreSQL fails the run.
#
# Likewise the Redis shared-state tests: on WXLOGIN_TEST_REDIS_URL, or on database 15 of a server
# answering on 127.0.0.1:6379 (each test uses a key prefix of its own); skipped otherwise, and in CI
# a missing Redis fails the run. The three-instance test (tests/api/instances.rs) starts its own
# redis-server (from PATH) and three `wxlogin serve` processes on a fresh PostgreSQL database; it is
# skipped without either, and fails in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${WXLOGIN_TEST_POSTGRES_URL:-}" ] && command -v pg_isready >/dev/null 2>&1 \
    && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  export WXLOGIN_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/test"
fi
if [ -n "${WXLOGIN_TEST_POSTGRES_URL:-}" ]; then
  echo "PostgreSQL store tests: ${WXLOGIN_TEST_POSTGRES_URL}"
else
  echo "PostgreSQL store tests: skipped (no server on 127.0.0.1:5432; set WXLOGIN_TEST_POSTGRES_URL)"
fi
if [ -z "${WXLOGIN_TEST_REDIS_URL:-}" ] && command -v redis-cli >/dev/null 2>&1 \
    && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  export WXLOGIN_TEST_REDIS_URL="redis://127.0.0.1:6379/15"
fi
if [ -n "${WXLOGIN_TEST_REDIS_URL:-}" ]; then
  # Shown without a password it may carry.
  echo "Redis shared-state tests: $(printf '%s' "${WXLOGIN_TEST_REDIS_URL}" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:<redacted>@#')"
else
  echo "Redis shared-state tests: skipped (no server on 127.0.0.1:6379; set WXLOGIN_TEST_REDIS_URL)"
fi

# The token verification examples of docs/integrations.md run inside `cargo test` (wxlogin-verify's
# snippets test): install their dependencies when missing. Without Node.js or Python that test says
# what it skipped (and fails in CI).
examples=examples/verify
if [ ! -d "${examples}/node/node_modules" ] && command -v npm >/dev/null 2>&1; then
  (cd "${examples}/node" && npm ci --no-audit --no-fund)
fi
if [ ! -x "${examples}/python/.venv/bin/python" ]; then
  if command -v python3 >/dev/null 2>&1 && python3 -m venv "${examples}/python/.venv"; then
    "${examples}/python/.venv/bin/pip" install -q -r "${examples}/python/requirements.txt" || {
      rm -rf "${examples}/python/.venv"
      echo "Python token verification example: its packages did not install; the test will skip it"
    }
  else
    echo "Python token verification example: skipped (python3 with venv not found)"
  fi
fi

# The OpenAPI document is checked by third-party tools inside `cargo test` (tests/api/openapi.rs):
# openapi-spec-validator (PyPI) and openapi-typescript with tsc (npm). Install them when missing;
# without them that test says what it skipped (and fails in CI).
openapi_tools=crates/wxlogin/tests/openapi
if [ ! -d "${openapi_tools}/node_modules" ] && command -v npm >/dev/null 2>&1; then
  (cd "${openapi_tools}" && npm ci --no-audit --no-fund)
fi
if [ ! -x "${openapi_tools}/.venv/bin/openapi-spec-validator" ]; then
  if command -v python3 >/dev/null 2>&1 && python3 -m venv "${openapi_tools}/.venv"; then
    "${openapi_tools}/.venv/bin/pip" install -q -r "${openapi_tools}/requirements.txt" || {
      rm -rf "${openapi_tools}/.venv"
      echo "OpenAPI validator: its packages did not install; the test will say it skipped it"
    }
  else
    echo "OpenAPI validator: skipped (python3 with venv not found)"
  fi
fi

cargo test --workspace --locked "$@"

client=clients/miniprogram
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
    && node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "Mini program client tests (${client})"
  if [ ! -d "${client}/node_modules" ]; then
    (cd "${client}" && npm ci --no-audit --no-fund)
  fi
  (cd "${client}" && npm run build && npm run test:unit)
  # `cargo test` above built the binary for its own CLI tests; a separate `cargo build -p wxlogin`
  # would resolve other dependency features and rebuild about 50 crates.
  target_dir="${CARGO_TARGET_DIR:-target}"
  case "${target_dir}" in /*) ;; *) target_dir="${PWD}/${target_dir}" ;; esac
  [ -x "${target_dir}/debug/wxlogin" ] || cargo build -p wxlogin --locked
  (cd "${client}" && WXLOGIN_BIN="${target_dir}/debug/wxlogin" npm run test:integration)
elif [ "${CI:-}" = "true" ]; then
  echo "Mini program client tests: Node.js 20+ and npm are required in CI" >&2
  exit 1
else
  echo "Mini program client tests: skipped (Node.js 20+ and npm not found)"
fi
