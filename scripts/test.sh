#!/usr/bin/env bash
# The whole test suite, as the README shows it: `scripts/test.sh`.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p wechat-mock`).
#
# The store tests run on SQLite always, and on PostgreSQL when WXLOGIN_TEST_POSTGRES_URL is set or a
# server answers on 127.0.0.1:5432 (database `test`, user `postgres`); otherwise they say what they
# skipped. In CI (CI=true) a missing PostgreSQL fails the run.
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

cargo test --workspace --locked "$@"
