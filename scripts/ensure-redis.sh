#!/usr/bin/env bash
# Installs redis-server and redis-cli (needed by the integration tests: one
# server, TLS, a Cluster made with `redis-cli --cluster create`, and Sentinel,
# which is `redis-server --sentinel`) when they are missing.
# Idempotent and quiet when they are already there.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-redis: redis-server or redis-cli is missing and apt-get is not available; install Redis by hand" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "ensure-redis: installing redis-server and redis-tools" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
for tool in redis-server redis-cli; do
    command -v "$tool" >/dev/null 2>&1 || { echo "ensure-redis: install failed ($tool)" >&2; exit 1; }
done
