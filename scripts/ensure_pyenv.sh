#!/usr/bin/env bash
# Create (if missing) the Python venv used by the fixture generator and the
# wechatpy interop check, then print the path of its python interpreter.
#
#   scripts/ensure_pyenv.sh            -> prints <repo>/target/pyenv/bin/python
#
# The venv lives in target/pyenv (target/ is git-ignored). The script is
# idempotent and prints nothing but the python path when the venv is already
# complete. Override the base interpreter with PYTHON=/path/to/python3.
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$repo_root/target/pyenv"
py="$venv/bin/python"
# Pinned: wechatpy 1.8.18 is the reference implementation the fixtures and the
# interop check were written against.
wechatpy_spec="wechatpy==1.8.18"

venv_ok() {
    [ -x "$py" ] && "$py" - <<'EOF' >/dev/null 2>&1
import importlib.metadata as md, sys
import cryptography, wechatpy.crypto  # noqa: F401
sys.exit(0 if md.version("wechatpy") == "1.8.18" else 1)
EOF
}

if ! venv_ok; then
    base_python="${PYTHON:-$(command -v python3 || true)}"
    if [ -z "$base_python" ]; then
        echo "ensure_pyenv: python3 not found (set PYTHON=...)" >&2
        exit 1
    fi
    mkdir -p "$repo_root/target"
    if [ ! -x "$py" ]; then
        "$base_python" -m venv "$venv" >&2
    fi
    "$py" -m pip install --quiet --disable-pip-version-check \
        "$wechatpy_spec" cryptography >&2
    if ! venv_ok; then
        echo "ensure_pyenv: venv at target/pyenv is still incomplete after pip install" >&2
        exit 1
    fi
fi

echo "$py"
