#!/usr/bin/env bash
# The whole test suite, as the README shows it: `scripts/test.sh`.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p wechat-mock`).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked "$@"
