#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need when it
# is missing, builds, runs every Rust test, then the independent wechatpy
# interoperability check against the built binary.
set -euo pipefail
cd "$(dirname "$0")/.."

# Shared test vectors live beside the repository (../shared/vectors).
if [ -z "${WXGATE_VECTORS_DIR:-}" ] && [ ! -d ../shared/vectors ]; then
  echo "error: ../shared/vectors not found (set WXGATE_VECTORS_DIR)" >&2
  exit 1
fi

# The token tests run a real redis-server.
scripts/ensure-redis.sh
cargo build --locked --bins
cargo test --locked --all-targets
scripts/interop.sh target/debug/wxgate
# The deploy kit, verified rather than trusted: a real nginx in front of the
# built binary, and the systemd unit / container files as far as this machine
# can check them.
scripts/nginx-check.sh target/debug/wxgate
scripts/check-deploy.sh target/debug/wxgate
