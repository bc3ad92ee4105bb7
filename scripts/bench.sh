#!/usr/bin/env bash
# Side-by-side benchmark of wxgate against the shared harness's peers and ceilings.
#
#   scripts/bench.sh                  # full run, both placements, ~6-8 minutes
#   scripts/bench.sh --quick          # smoke run
#   scripts/bench.sh --only ceiling-null,ceiling-crypto,wxgate
#   scripts/bench.sh --criterion      # also run the criterion and allocation benches first
#   scripts/bench.sh --no-10k         # skip the 10,000-rule variant
#   scripts/bench.sh --no-redis       # skip the Redis-store variant
#   scripts/bench.sh --no-accounts    # skip the 1,000-account variant
#   scripts/bench.sh --no-save        # leave docs/bench-results/ alone (results stay in target/bench/)
#   scripts/bench.sh --rev HEAD       # benchmark a commit (built from a `git archive`
#                                     # snapshot, unaffected by uncommitted edits)
#
# Any other option is passed to the harness (see `../shared/bench/run_all.sh --help`),
# e.g. `--placements pinned`. The harness lives in `../shared/bench` beside the
# checkout (override with WXGATE_BENCH_DIR).
#
# Steps: build wxgate in release mode and copy the binary to target/bench/ (so
# a rebuild during the run cannot swap it); write the 10,000-rule config
# target/bench/bench-10k.toml and the Redis-store config
# target/bench/bench-redis.toml from config/bench.toml; start a redis-server on
# loopback for the latter (the production multi-node setup: dedup and tokens
# in Redis); check the configs; run the harness once with wxgate, wxgate-10k
# and wxgate-redis as extra servers, so every ratio comes from the same run; copy latest.json/latest.md into docs/bench-results/;
# then draw docs/bench-results/chart.svg and write summary.md from the JSON.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${WXGATE_BENCH_DIR:-$ROOT/../shared/bench}"
OUT_DIR="$ROOT/target/bench"
# Where cargo puts this crate's builds (CARGO_TARGET_DIR may move them).
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
RESULTS="$ROOT/docs/bench-results"
PORT="${WXGATE_BENCH_PORT:-18480}"
PORT_10K=$((PORT + 1))
PORT_REDIS=$((PORT + 2))
PORT_ACCOUNTS=$((PORT + 3))
REDIS_PORT="${WXGATE_BENCH_REDIS_PORT:-18490}"

with_10k=1
with_redis=1
with_accounts=1
criterion=0
rev=""
save=1
only=""
pass=()
while (($#)); do
  case "$1" in
    --no-10k) with_10k=0 ;;
    --no-redis) with_redis=0 ;;
    --no-accounts) with_accounts=0 ;;
    --criterion) criterion=1 ;;
    --no-save) save=0 ;;
    --rev) rev="${2:?--rev needs a commit}"; shift ;;
    --rev=*) rev="${1#--rev=}" ;;
    --only) only="${2:?--only needs a list}"; pass+=("$1" "$2"); shift ;;
    --only=*) only="${1#--only=}"; pass+=("$1") ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) pass+=("$1") ;;
  esac
  shift
done

[[ -x "$BENCH_DIR/run_all.sh" ]] || {
  echo "error: the shared harness is missing: $BENCH_DIR/run_all.sh (set WXGATE_BENCH_DIR)" >&2
  exit 1
}
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
mkdir -p "$OUT_DIR/logs" "$RESULTS"
cd "$ROOT"

# Saved results name the commit they measured: a tree with uncommitted
# changes would make that a lie.
if ((save)) && [[ -z "$rev" ]] && { ! git diff --quiet HEAD -- || [[ -n "$(git ls-files --others --exclude-standard -- src benches config Cargo.toml Cargo.lock)" ]]; }; then
  echo "error: the working tree has uncommitted changes; commit them, or use --rev COMMIT or --no-save" >&2
  exit 1
fi

if [[ -n "$rev" ]]; then
  commit="$(git rev-parse --verify "$rev^{commit}")"
  echo "== building wxgate $commit (release, from a snapshot in target/bench/src)" >&2
  rm -rf "$OUT_DIR/src" && mkdir -p "$OUT_DIR/src"
  git archive "$commit" | tar -x -C "$OUT_DIR/src"
  cargo build --release --locked --bin wxgate --manifest-path "$OUT_DIR/src/Cargo.toml" \
    --target-dir "$OUT_DIR/build"
  cp "$OUT_DIR/build/release/wxgate" "$OUT_DIR/wxgate"
  built="wxgate $(git rev-parse --short "$commit") (snapshot of the commit)"
else
  echo "== building wxgate (release, working tree)" >&2
  cargo build --release --bin wxgate
  cp "$TARGET_DIR/release/wxgate" "$OUT_DIR/wxgate"
  built="wxgate $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' with uncommitted changes in src/')"
fi
cp config/bench.toml "$OUT_DIR/bench.toml"

if ((with_10k)); then
  echo "== writing target/bench/bench-10k.toml (10,000 rules, \"微博\" last)" >&2
  python3 - "$OUT_DIR/bench.toml" "$OUT_DIR/bench-10k.toml" <<'PY'
import sys
src, dst = sys.argv[1], sys.argv[2]
text = open(src, encoding="utf-8").read()
marker = '[[rules]]\nname = "weibo"'
at = text.index(marker)  # config/bench.toml keeps the weibo rule last
base_rules = text.count("[[rules]]")
generated = []
for i in range(10_000 - base_rules):
    # The same mix as benches/rules.rs: exact, contains and prefix keywords in
    # equal parts, none of which occurs in the harness's messages.
    kind, word = [("text", f"关键词{i}"), ("contains", f"优惠码{i}"), ("prefix", f"查询{i} ")][i % 3]
    generated.append(
        f'[[rules]]\nname = "kw-{i}"\nmatch = {{ {kind} = "{word}" }}\n'
        f'reply = {{ type = "text", content = "回复：{word.strip()}" }}\n'
    )
header = "# Generated by scripts/bench.sh from config/bench.toml: do not edit.\n"
with open(dst, "w", encoding="utf-8") as f:
    f.write(header + text[:at] + "\n".join(generated) + "\n" + text[at:])
PY
fi

if ((with_redis)); then
  echo "== writing target/bench/bench-redis.toml and starting redis-server on 127.0.0.1:$REDIS_PORT" >&2
  scripts/ensure-redis.sh
  # The harness replays 20,000 messages; a 1 s dedup window keeps nearly
  # every request a first delivery (claim + record in Redis), as the memory
  # variant's small capacity does.
  python3 - "$OUT_DIR/bench.toml" "$OUT_DIR/bench-redis.toml" "$REDIS_PORT" <<'PY'
import sys
src, dst, port = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(src, encoding="utf-8").read()
text = text.replace('[store]\nbackend = "memory"', f'[store]\nbackend = "redis"\nurl = "redis://127.0.0.1:{port}/0"', 1)
text = text.replace("dedup_capacity = 2000", "dedup_capacity = 2000\ndedup_window_secs = 1", 1)
assert 'backend = "redis"' in text and "dedup_window_secs = 1" in text
with open(dst, "w", encoding="utf-8") as f:
    f.write("# Generated by scripts/bench.sh from config/bench.toml: do not edit.\n" + text)
PY
  mkdir -p "$OUT_DIR/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$OUT_DIR/redis" --daemonize no > "$OUT_DIR/logs/redis.log" 2>&1 &
  redis_pid=$!
  trap 'kill "$redis_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -p "$REDIS_PORT" ping >/dev/null
fi

if ((with_accounts)); then
  echo "== writing target/bench/bench-1k-accounts.toml (the bench account and 999 others)" >&2
  python3 - "$OUT_DIR/bench.toml" "$OUT_DIR/bench-1k-accounts.toml" <<'PY'
import sys
src, dst = sys.argv[1], sys.argv[2]
text = open(src, encoding="utf-8").read()
others = "".join(
    f'\n[[accounts]]\nname = "a{i}"\ntoken = "token{i:04d}"\nmode = "plain"\n'
    for i in range(999)
)
with open(dst, "w", encoding="utf-8") as f:
    f.write("# Generated by scripts/bench.sh from config/bench.toml: do not edit.\n" + text + others)
PY
fi

"$OUT_DIR/wxgate" check-config --config "$OUT_DIR/bench.toml"
((with_accounts)) && "$OUT_DIR/wxgate" check-config --config "$OUT_DIR/bench-1k-accounts.toml"
((with_10k)) && "$OUT_DIR/wxgate" check-config --config "$OUT_DIR/bench-10k.toml"
((with_redis)) && "$OUT_DIR/wxgate" check-config --config "$OUT_DIR/bench-redis.toml"

if ((criterion)); then
  echo "== criterion benches" >&2
  cargo bench --bench pipeline --bench rules --bench allocs
  if ((save)); then
    python3 scripts/bench_criterion.py --criterion-dir "$TARGET_DIR/criterion" --out "$RESULTS"
    cp "$OUT_DIR/allocs.md" "$RESULTS/allocs.md"
  else
    python3 scripts/bench_criterion.py --criterion-dir "$TARGET_DIR/criterion" --out "$OUT_DIR"
  fi
fi

# The harness runs START_CMD with `bash -c` (under `taskset -c 1` in the pinned
# placement) from its own directory; WXGATE_ROOT tells it where the repo is, so
# no machine path ends up in the committed results.
export WXGATE_ROOT="$ROOT"
# shellcheck disable=SC2016 # $WXGATE_ROOT is expanded by the harness's bash -c, not here
extras=(--extra wxgate 'cd "$WXGATE_ROOT" && exec target/bench/wxgate serve --listen 127.0.0.1:{port} --config target/bench/bench.toml' "$PORT")
if ((with_10k)); then
  # shellcheck disable=SC2016
  extras+=(--extra wxgate-10k 'cd "$WXGATE_ROOT" && exec target/bench/wxgate serve --listen 127.0.0.1:{port} --config target/bench/bench-10k.toml' "$PORT_10K")
fi
if ((with_redis)); then
  # shellcheck disable=SC2016
  extras+=(--extra wxgate-redis 'cd "$WXGATE_ROOT" && exec target/bench/wxgate serve --listen 127.0.0.1:{port} --config target/bench/bench-redis.toml' "$PORT_REDIS")
fi
if ((with_accounts)); then
  # shellcheck disable=SC2016
  extras+=(--extra wxgate-1k-accounts 'cd "$WXGATE_ROOT" && exec target/bench/wxgate serve --listen 127.0.0.1:{port} --config target/bench/bench-1k-accounts.toml' "$PORT_ACCOUNTS")
fi
if [[ -n "$only" && ",$only," != *",wxgate,"* && ",$only," != *",wxgate-10k,"* && ",$only," != *",wxgate-redis,"* ]]; then
  echo "note: --only $only names neither wxgate nor wxgate-10k" >&2
fi

echo "== side-by-side run (logs in target/bench/logs)" >&2
# The harness builds its loadgen and ceilings into its own directory, where it
# looks for them: not into this crate's CARGO_TARGET_DIR.
env -u CARGO_TARGET_DIR BENCH_LOG_DIR="$OUT_DIR/logs" "$BENCH_DIR/run_all.sh" --out "$OUT_DIR/latest.md" "${extras[@]}" "${pass[@]}" \
  > "$OUT_DIR/run_all.out"

if ((!save)); then
  python3 scripts/bench_chart.py "$OUT_DIR/latest.json" --svg "$OUT_DIR/chart.svg" --summary "$OUT_DIR/summary.md"
  cat "$OUT_DIR/summary.md"
  echo "wrote target/bench/{latest.json,latest.md,chart.svg,summary.md} (docs/bench-results/ untouched)" >&2
  exit 0
fi

# Keep the results with the repo: the doc and the chart are made from them.
python3 - "$OUT_DIR" "$RESULTS" "$ROOT" "$BENCH_DIR" <<'PY'
import os, sys
src, dst, root, bench = sys.argv[1:]
for name in ("latest.json", "latest.md"):
    text = open(os.path.join(src, name), encoding="utf-8").read()
    # Machine paths (the --out argument) become repo-relative ones.
    text = text.replace(bench, "../shared/bench").replace(root, ".")
    with open(os.path.join(dst, name), "w", encoding="utf-8") as f:
        f.write(text)
PY
{ echo "$built"; rustc --version; } > "$RESULTS/build.txt"
python3 scripts/bench_chart.py "$RESULTS/latest.json" --svg "$RESULTS/chart.svg" --summary "$RESULTS/summary.md"
cat "$RESULTS/summary.md"
echo "wrote docs/bench-results/{latest.json,latest.md,chart.svg,summary.md,build.txt}" >&2
