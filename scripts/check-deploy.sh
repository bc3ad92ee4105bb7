#!/usr/bin/env bash
# Static and behavioural checks of deploy/systemd/, deploy/container/,
# deploy/prometheus/ and deploy/grafana/ (deploy/nginx/ has its own
# end-to-end check: scripts/nginx-check.sh).
#
#   scripts/check-deploy.sh [PATH_TO_WXGATE]    (default: target/debug/wxgate)
#
# Builds nothing; installs only promtool (Debian's prometheus package) when
# it is missing. What cannot run here is reported as a
# "SKIPPED: reason" line, never dropped silently: no Docker engine means the
# image is not built; Compose is validated by `docker compose config` when the
# plugin exists, else by a YAML structure check. The last line is
# "N passed, M failed[, K skipped]"; exits non-zero if any check failed.
set -uo pipefail

script_dir="$(cd "$(dirname "$0")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
bin="${1:-$repo_root/target/debug/wxgate}"
unit="$repo_root/deploy/systemd/wxgate.service"
env_example="$repo_root/deploy/systemd/wxgate.env.example"
dockerfile="$repo_root/deploy/container/Dockerfile"
compose="$repo_root/deploy/container/docker-compose.yml"
config="$repo_root/config/wxgate.toml"

passed=0
failed=0
skipped=0
ok() { echo "ok      $*"; passed=$((passed + 1)); }
bad() { echo "FAIL    $*"; failed=$((failed + 1)); }
skip() { echo "SKIPPED: $*"; skipped=$((skipped + 1)); }
check() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (expected $2, got ${3:0:200})"; fi; }

work="$(mktemp -d "${TMPDIR:-/tmp}/wxgate-check-deploy.XXXXXX")" || exit 1
wxgate_pid=""
# shellcheck disable=SC2317  # runs from the EXIT trap
cleanup() {
  if [ -n "$wxgate_pid" ] && kill -0 "$wxgate_pid" 2>/dev/null; then
    kill -9 "$wxgate_pid" 2>/dev/null
    wait "$wxgate_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

have_bin=""
[ -x "$bin" ] && have_bin=1

# ================================================================ systemd
unit_value() { sed -n "s/^$1=//p" "$unit" | tail -n1; }

if command -v systemd-analyze >/dev/null; then
  # verify insists that ExecStart binaries exist: point them at the built
  # binary (or /bin/true without one). It prints warnings for unknown keys
  # and bad values but still exits 0, so any output is a failure.
  exe="${have_bin:+$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")}"
  sed "s|/usr/local/bin/wxgate|${exe:-/bin/true}|g" "$unit" >"$work/wxgate.service"
  out="$(systemd-analyze verify --man=no "$work/wxgate.service" 2>&1)"
  rc=$?
  if [ "$rc" -eq 0 ] && [ -z "$out" ]; then
    ok "systemd-analyze verify deploy/systemd/wxgate.service ($(systemd-analyze --version | head -n1))"
  else
    bad "systemd-analyze verify (rc $rc): $(echo "$out" | head -n5 | sed "s|$work/||g")"
  fi
  if score="$(systemd-analyze security --offline=true "$work/wxgate.service" 2>/dev/null | sed -n 's/.*Overall exposure level for wxgate.service: \([0-9.]*\).*/\1/p')" && [ -n "$score" ]; then
    if awk "BEGIN{exit !($score <= 2.0)}"; then ok "systemd-analyze security: exposure $score (<= 2.0)"; else bad "systemd-analyze security: exposure $score > 2.0"; fi
  else
    skip "systemd-analyze security --offline needs systemd >= 250"
  fi
else
  skip "systemd-analyze verify: systemd-analyze is not installed (package systemd), unit not verified"
fi

check "unit: RestartPreventExitStatus is 78" "78" "$(unit_value RestartPreventExitStatus)"
check "unit: Restart=on-failure" "on-failure" "$(unit_value Restart)"
grace="$(sed -n 's/^[[:space:]]*shutdown_grace_secs[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p' "$config" | head -n1)"
grace="${grace:-10}" # wxgate's default delivery.shutdown_grace_secs
stop="$(unit_value TimeoutStopSec | sed 's/s$//')"
if [ -n "$stop" ] && [ "$stop" -gt "$grace" ]; then
  ok "unit: TimeoutStopSec ${stop}s > shutdown grace ${grace}s"
else
  bad "unit: TimeoutStopSec (${stop:-unset}) must exceed the shutdown grace (${grace}s)"
fi

# The exact command lines of the unit, run against the built binary.
if [ -n "$have_bin" ]; then
  cmd_args() { sed -n "s|^$1=/usr/local/bin/wxgate ||p" "$unit" | head -n1 | sed "s|/etc/wxgate/wxgate.toml|$config|"; }
  read -r -a pre <<<"$(cmd_args ExecStartPre)"
  out="$("$bin" "${pre[@]}" 2>&1)"
  check "unit: ExecStartPre (${pre[*]/$config/CONFIG}) accepts the example config" "0" "$?"
  printf '[server]\nlisten = "nonsense"\n' >"$work/bad.toml"
  "$bin" check-config --config "$work/bad.toml" >/dev/null 2>&1
  check "wxgate check-config exits 78 on an invalid config (RestartPreventExitStatus)" "78" "$?"
  "$bin" serve --config "$work/bad.toml" >/dev/null 2>&1
  check "wxgate serve exits 78 on an invalid config" "78" "$?"

  # wxgate.env.example: the same KEY=value lines systemd and compose read.
  # Its token placeholder is deliberately invalid, so a forgotten edit stops
  # the service (78) instead of running with a guessable token.
  env_args=()
  while IFS= read -r line; do
    case "$line" in '' | '#'*) continue ;; *=*) env_args+=("$line") ;; *) bad "env example: not KEY=value: $line" ;; esac
  done <"$env_example"
  out="$(env "${env_args[@]}" "$bin" check-config --config "$config" 2>&1)"
  rc=$?
  check "env example as is: placeholder token refused with 78" "78 token" \
    "$rc $(echo "$out" | grep -q 'account.token' && echo token)"
  out="$(env "${env_args[@]}" WXGATE_TOKEN=Example123 "$bin" check-config --config "$config" 2>&1)"
  check "env example with a real token: check-config passes" "0" "$?"

  # ExecReload sends SIGHUP: the service must survive it.
  read -r port < <(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  read -r -a srv <<<"$(cmd_args ExecStart)"
  "$bin" "${srv[@]}" --listen "127.0.0.1:$port" >"$work/wxgate.log" 2>&1 &
  wxgate_pid=$!
  up=""
  for _ in $(seq 100); do
    curl -fsS --max-time 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && { up=1; break; }
    sleep 0.1
  done
  if [ -z "$up" ]; then
    bad "unit: ExecStart command line did not serve /healthz: $(tail -n3 "$work/wxgate.log")"
  else
    ok "unit: ExecStart command line serves /healthz"
    # What the binary exports, for the dashboard and alert checks below.
    curl -fsS --max-time 2 "http://127.0.0.1:$port/metrics" >"$work/metrics.txt" 2>/dev/null
    # (stderr of this block hidden: bash's own "Hangup" job notice)
    {
      kill -HUP "$wxgate_pid"
      sleep 1
      alive=""
      kill -0 "$wxgate_pid" && curl -fsS --max-time 2 "http://127.0.0.1:$port/healthz" >/dev/null && alive=1
    } 2>/dev/null
    if [ -n "$alive" ]; then
      ok "wxgate survives SIGHUP (ExecReload)"
    else
      bad "wxgate dies on SIGHUP: 'systemctl reload wxgate' would stop the service (no hot-reload handler yet)"
    fi
    kill -TERM "$wxgate_pid" 2>/dev/null
    rc=timeout
    for _ in $(seq 150); do
      if ! kill -0 "$wxgate_pid" 2>/dev/null; then wait "$wxgate_pid" 2>/dev/null; rc=$?; break; fi
      sleep 0.1
    done
    # 129 = already killed by the SIGHUP above; not this check's failure.
    if [ "$rc" = 129 ]; then
      skip "SIGTERM exit code: the process was already gone"
    else
      check "wxgate exits 0 on SIGTERM within ${stop:-15}s" "0" "$rc"
    fi
  fi
  wxgate_pid=""
else
  skip "binary checks (exit codes, env example, SIGHUP): no wxgate binary at $bin"
fi

# ================================================================ container
if docker buildx version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  if docker buildx build --check -f "$dockerfile" "$repo_root" >"$work/build-check.out" 2>&1; then
    ok "docker buildx build --check"
  else
    bad "docker buildx build --check: $(tail -n5 "$work/build-check.out")"
  fi
else
  # Podman or buildah (Debian packages) could build it without an engine,
  # but only from the base images (rust:1-bookworm, debian:bookworm-slim),
  # which come from a container registry; say exactly what was verified.
  skip "container image NOT built and NOT run: no Docker engine/buildx here$(command -v podman >/dev/null || command -v buildah >/dev/null || echo ', no podman/buildah'); verified instead: the Dockerfile statically (below), the binary it ships (the checks above), the Compose file's structure (below)"
fi

# Static Dockerfile checks: instructions, stages, COPY sources in the context
# and let through by Dockerfile.dockerignore, exec-form JSON, the runtime contract.
if python3 - "$dockerfile" "$repo_root" >"$work/df.out" 2>&1 <<'EOF'; then
import json, os, re, sys, fnmatch
path, root = sys.argv[1], sys.argv[2]
known = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
         "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
lines, cur = [], ""
for raw in open(path, encoding="utf-8"):
    s = raw.rstrip("\n")
    if not cur and (not s.strip() or s.lstrip().startswith("#")):
        continue
    if cur and s.lstrip().startswith("#"):
        continue
    if s.endswith("\\"):
        cur += s[:-1] + " "
        continue
    lines.append((cur + s).strip())
    cur = ""
errors = []
if cur:
    errors.append("dangling line continuation at end of file")
ignore = [l.strip() for l in open(path + ".dockerignore") if l.strip() and not l.startswith("#")]
def sent(rel):  # is rel in the build context after the ignore file?
    keep = True
    for pat in ignore:
        neg = pat.startswith("!")
        p = pat[1:].rstrip("/") if neg else pat.rstrip("/")
        if fnmatch.fnmatch(rel, p) or rel.startswith(p + "/"):
            keep = neg
    return keep
stages, final, info = set(), None, {}
for l in lines:
    ins, _, rest = l.partition(" ")
    ins = ins.upper()
    if ins not in known:
        errors.append(f"unknown instruction {ins}")
        continue
    if ins == "FROM":
        m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
        if not m:
            errors.append(f"bad FROM: {rest}")
            continue
        final = m.group(1)
        if m.group(2):
            stages.add(m.group(2).lower())
        info = {}
    elif ins in ("COPY", "ADD"):
        args = rest.split()
        opts = [a for a in args if a.startswith("--")]
        srcs = [a for a in args if not a.startswith("--")][:-1]
        frm = [o.split("=", 1)[1] for o in opts if o.startswith("--from=")]
        if frm:
            if frm[0].lower() not in stages:
                errors.append(f"COPY --from={frm[0]}: no such stage")
        else:
            for s in srcs:
                rel = s.strip("./").rstrip("/") or "."
                if not os.path.exists(os.path.join(root, rel)):
                    errors.append(f"COPY source {s} missing in the build context")
                elif not sent(rel):
                    errors.append(f"COPY source {s} excluded by Dockerfile.dockerignore")
    elif ins in ("CMD", "ENTRYPOINT"):
        try:
            info[ins] = json.loads(rest)
        except ValueError:
            errors.append(f"{ins} is not exec form (JSON array): {rest}")
    elif ins == "HEALTHCHECK":
        m = re.search(r"\bCMD\s+(\[.*\])\s*$", rest)
        try:
            info[ins] = json.loads(m.group(1)) if m else None
        except ValueError:
            info[ins] = None
        if not info[ins]:
            errors.append("HEALTHCHECK CMD is not a JSON array")
    else:
        info.setdefault(ins, []).append(rest)
cmd = info.get("CMD", [])
if "0.0.0.0:8080" not in " ".join(cmd) or "--listen" not in cmd:
    errors.append(f"final CMD must listen on 0.0.0.0:8080: {cmd}")
if "8080" not in " ".join(info.get("EXPOSE", [])):
    errors.append("final stage does not EXPOSE 8080")
users = info.get("USER", [])
if not users or users[-1].split(":")[0] in ("root", "0"):
    errors.append("final stage must run as a non-root USER")
hc = info.get("HEALTHCHECK") or []
if not any("/healthz" in a for a in hc):
    errors.append("HEALTHCHECK does not probe /healthz")
for e in errors:
    print(e)
print(f"{len(lines)} instructions, stages {sorted(stages)}, final {final}, USER {users[-1] if users else '-'}")
sys.exit(1 if errors else 0)
EOF
  ok "Dockerfile static check: $(tail -n1 "$work/df.out")"
else
  bad "Dockerfile static check: $(head -n5 "$work/df.out" | tr '\n' ';')"
fi

# Compose: a real parser when there is one (client-side, no engine needed),
# run on a copy beside a wxgate.env made from the example (compose refuses a
# missing env_file). Then the structure checks below, in any case.
mirror="$work/mirror/deploy/container"
mkdir -p "$mirror"
cp "$compose" "$dockerfile" "$dockerfile.dockerignore" "$mirror/"
cp "$env_example" "$mirror/wxgate.env"
if docker compose version >/dev/null 2>&1; then
  if (cd "$mirror" && docker compose -f docker-compose.yml config -q) >"$work/compose.out" 2>&1; then
    ok "docker compose config ($(docker compose version --short 2>/dev/null))"
  else
    bad "docker compose config: $(head -n5 "$work/compose.out")"
  fi
elif command -v docker-compose >/dev/null; then
  # Compose v1 (Debian's docker-compose) predates the top-level "name:" key.
  sed -i '/^name:/d' "$mirror/docker-compose.yml"
  if (cd "$mirror" && docker-compose -f docker-compose.yml config -q) >"$work/compose.out" 2>&1; then
    ok "docker-compose config ($(docker-compose version --short 2>/dev/null), schema-checked without the v2-only name: key)"
  else
    bad "docker-compose config: $(head -n5 "$work/compose.out")"
  fi
else
  skip "docker compose config: neither the compose plugin nor docker-compose is installed; structure checked with PyYAML only"
fi
if python3 -c 'import yaml' 2>/dev/null; then
  if python3 - "$compose" >"$work/compose-py.out" 2>&1 <<'EOF'; then
import os, sys, yaml
path = sys.argv[1]
doc = yaml.safe_load(open(path, encoding="utf-8"))
base = os.path.dirname(path)
e = []
known_top = {"name", "services", "networks", "volumes", "secrets", "configs", "version"}
e += [f"unknown top-level key {k}" for k in doc if k not in known_top and not k.startswith("x-")]
svc = doc.get("services") or {}
nets = doc.get("networks") or {}
for name in ("wxgate", "redis"):
    if name not in svc:
        e.append(f"service {name} missing")
for name, s in svc.items():
    for k in ("restart", "healthcheck"):
        if k not in s:
            e.append(f"{name}: no {k}")
    hc = s.get("healthcheck", {}).get("test")
    if not (isinstance(hc, list) and hc and hc[0] in ("CMD", "CMD-SHELL")):
        e.append(f"{name}: healthcheck.test must be a CMD list")
    for n in s.get("networks", []):
        if n not in nets:
            e.append(f"{name}: undefined network {n}")
    for d in (s.get("depends_on") or {}):
        if d not in svc:
            e.append(f"{name}: depends_on unknown service {d}")
w, r = svc.get("wxgate", {}), svc.get("redis", {})
b = w.get("build", {})
ctx = os.path.normpath(os.path.join(base, b.get("context", ".")))
if not os.path.isfile(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))):
    e.append("wxgate: build.dockerfile not found relative to build.context")
if not w.get("env_file"):
    e.append("wxgate: secrets must come from env_file")
if any(not str(p).startswith("127.0.0.1:") for p in w.get("ports", [])):
    e.append("wxgate: publish on 127.0.0.1 only")
if r.get("ports") or r.get("expose"):
    e.append("redis: must not publish ports")
if any(not (nets.get(n) or {}).get("internal") for n in r.get("networks", [])):
    e.append("redis: every network it joins must be internal")
cmd = " ".join(map(str, r.get("command", [])))
if "--appendonly no" not in cmd or "--save" not in cmd or r.get("volumes"):
    e.append("redis: persistence must be off (--save '' --appendonly no, no volumes)")
for x in e:
    print(x)
print(f"services {sorted(svc)}, networks {sorted(nets)}")
sys.exit(1 if e else 0)
EOF
    ok "docker-compose.yml structure: $(tail -n1 "$work/compose-py.out")"
  else
    bad "docker-compose.yml structure: $(head -n5 "$work/compose-py.out" | tr '\n' ';')"
  fi
else
  skip "docker-compose.yml structure: python3 has no PyYAML (apt-get install python3-yaml)"
fi

# ================================================================ observability
# deploy/prometheus/: the alert rules pass `promtool check rules` and their
# unit tests; deploy/grafana/: the dashboard is well-formed JSON. Both may
# name only metrics the built binary exports (its /metrics, read above).
rules="$repo_root/deploy/prometheus/wxgate-alerts.yml"
rules_test="$repo_root/deploy/prometheus/wxgate-alerts.test.yml"
dashboard="$repo_root/deploy/grafana/wxgate-dashboard.json"
if ! command -v promtool >/dev/null && command -v apt-get >/dev/null; then
  echo "installing promtool (Debian package prometheus)"
  as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  # The package would start a Prometheus server: forbid service starts
  # during the install, only if no policy is there already.
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d' && added_policy=1
  fi
  as_root apt-get update -qq >/dev/null 2>&1
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1
  [ -n "$added_policy" ] && as_root rm -f /usr/sbin/policy-rc.d
fi
if command -v promtool >/dev/null; then
  if out="$(promtool check rules "$rules" 2>&1)"; then
    ok "promtool check rules deploy/prometheus/wxgate-alerts.yml: $(echo "$out" | grep -o '[0-9]* rules found')"
  else
    bad "promtool check rules: $(echo "$out" | tail -n5 | tr '\n' ';')"
  fi
  if out="$(cd "$(dirname "$rules_test")" && promtool test rules "$(basename "$rules_test")" 2>&1)"; then
    ok "promtool test rules: each alert fires on its cause and not on healthy traffic"
  else
    bad "promtool test rules: $(echo "$out" | head -n12 | tr '\n' ';')"
  fi
else
  bad "promtool is missing and could not be installed (Debian package prometheus): alert rules not checked"
fi
cat >"$work/names.py" <<'EOF'
import json, re, sys
dashboard, rules, exposition = sys.argv[1:]
exported = set()
for line in open(exposition, encoding="utf-8"):
    m = re.match(r"# TYPE (\S+) (\S+)", line)
    if m:
        name, kind = m.groups()
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(kind, [""])
        exported |= {name + s for s in suffixes}
doc = json.load(open(dashboard, encoding="utf-8"))
errors = []
panels = doc.get("panels") or []
if not doc.get("uid") or not panels:
    errors.append("dashboard: no uid or no panels")
for p in panels:
    if not p.get("targets"):
        errors.append(f"panel {p.get('title')!r} has no query")
exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
used = set()
for text in exprs + [open(rules, encoding="utf-8").read()]:
    used |= set(re.findall(r"\bwxgate_[a-z0-9_]+", text))
for name in sorted(used - exported):
    errors.append(f"{name} is not exported by wxgate")
print("; ".join(errors) if errors else f"{len(panels)} panels, {len(used)} metric names, all exported")
sys.exit(1 if errors else 0)
EOF
if [ -s "$work/metrics.txt" ]; then
  if out="$(python3 "$work/names.py" "$dashboard" "$rules" "$work/metrics.txt" 2>&1)"; then
    ok "dashboard and alerts name only exported metrics: $out"
  else
    bad "dashboard/alerts: $out"
  fi
else
  skip "dashboard and alert metric names: no /metrics from a running binary to compare with"
fi

if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
