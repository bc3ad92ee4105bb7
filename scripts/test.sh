#!/usr/bin/env bash
# The whole test suite, as CI runs it, on a clone of the repository alone:
# installs what the tests need when it is missing (redis-server, Chromium),
# builds, checks that the recorded fixtures and vectors are what their generators write, runs every
# Rust test, then the independent wechatpy interoperability check against
# the built binary and the deploy kit.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

# The store, token and conversation tests run real redis-servers (one server,
# TLS, a Cluster, Sentinel).
scripts/ensure-redis.sh
# The console's browser tests drive a real headless Chromium.
scripts/ensure-chromium.sh
# The fixtures and vectors under tests/fixtures/ are generated (wechatpy in a
# venv under target/pyenv): a hand edit or a stale file fails here.
py="$(scripts/ensure_pyenv.sh)"
"$py" scripts/gen_fixtures.py --check
"$py" scripts/gen_vectors.py --check
"$py" scripts/gen_feishu_vectors.py --check
"$py" scripts/gen_dingtalk_vectors.py --check
"$py" scripts/gen_wecom_bot_vectors.py --check
# Cargo.toml's rust-version is at least what every locked dependency needs.
python3 scripts/check-msrv.py
cargo build --locked --bins
cargo test --locked --all-targets
scripts/interop.sh "$target/debug/wxgate"
# The deploy kit, verified rather than trusted: a real nginx in front of the
# built binary, and the systemd unit / container files as far as this machine
# can check them.
scripts/nginx-check.sh "$target/debug/wxgate"
scripts/check-deploy.sh "$target/debug/wxgate"
