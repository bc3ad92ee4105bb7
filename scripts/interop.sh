#!/usr/bin/env bash
# Interop check: drive a built wxgate binary with wechatpy (the independent
# reference implementation) in safe and compatible mode.
#
#   scripts/interop.sh [PATH_TO_WXGATE]     (default: target/debug/wxgate)
#
# Builds nothing: run `cargo build` first. Creates/reuses the Python venv in
# target/pyenv via scripts/ensure_pyenv.sh. Exits non-zero if any check fails;
# the last line of output is "N passed, M failed".
set -euo pipefail

script_dir="$(cd "$(dirname "$0")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"

# default: the debug build of this checkout; an explicit path is used as given
bin="${1:-$repo_root/target/debug/wxgate}"
[ "$#" -gt 0 ] && shift

py="$("$script_dir/ensure_pyenv.sh")"
exec "$py" "$script_dir/interop_wechatpy.py" --bin "$bin" "$@"
