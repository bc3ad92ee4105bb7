#!/usr/bin/env bash
# End-to-end check of deploy/nginx/: renders wxgate.conf with loopback ports
# and a throwaway self-signed certificate, writes its callback locations
# with `wxgate nginx-config` from a config of three accounts (the example
# Official Account at /weixin, a WeCom app at /weixin/corp, a 微信客服
# account at /kf), runs a private nginx (own prefix, pid and logs; the system
# nginx is not touched), starts wxgate with that config behind it, and drives
# each account through nginx over HTTPS and HTTP.
#
#   scripts/nginx-check.sh [PATH_TO_WXGATE]     (default: target/debug/wxgate)
#
# Builds nothing. Installs nginx, openssl and curl from Debian packages when
# they are missing (needs root or sudo). Needs python3 (free ports, and a
# header-capturing stand-in for wxgate). One line per check; the last line is
# "N passed, M failed"; exits non-zero if any check failed.
set -uo pipefail

script_dir="$(cd "$(dirname "$0")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
bin="${1:-$repo_root/target/debug/wxgate}"
config="$repo_root/config/wxgate.toml"
conf_src="$repo_root/deploy/nginx/wxgate.conf"
snippet_src="$repo_root/deploy/nginx/wxgate-proxy.conf"
token=wxgatedev # account.token in config/wxgate.toml

passed=0
failed=0
skipped=0
ok() { echo "ok      $*"; passed=$((passed + 1)); }
bad() { echo "FAIL    $*"; failed=$((failed + 1)); }
skip() { echo "SKIPPED: $*"; skipped=$((skipped + 1)); }
# check NAME EXPECTED ACTUAL
check() {
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (expected ${2:0:120}, got ${3:0:120})"; fi
}
finish() {
  if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
  else
    echo "$passed passed, $failed failed"
  fi
  [ "$failed" -eq 0 ]
  exit
}
die() {
  bad "$*"
  finish
}

# ---------------------------------------------------------------- tools
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "error: need root or sudo to install packages" >&2
    return 1
  fi
}
find_nginx() { command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }; }
missing=()
[ -n "$(find_nginx)" ] || missing+=(nginx)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} (Debian packages)"
  # Package installs must not start the system nginx on port 80: a
  # policy-rc.d that forbids service starts, only if there is none already.
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d' &&
      added_policy=1
  fi
  as_root apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  rc=$?
  [ -n "$added_policy" ] && as_root rm -f /usr/sbin/policy-rc.d
  [ "$rc" -eq 0 ] || die "install ${missing[*]}"
fi
nginx_bin="$(find_nginx)"
[ -x "$bin" ] || die "wxgate binary not found at $bin (build it first; this script builds nothing)"
if [ ! -f "$conf_src" ] || [ ! -f "$snippet_src" ]; then die "deploy/nginx/ files missing"; fi

# ---------------------------------------------------------------- temp dir, cleanup
work="$(mktemp -d "${TMPDIR:-/tmp}/wxgate-nginx-check.XXXXXX")" || die "mktemp"
chmod 755 "$work" # nginx workers (an unprivileged user) use temp dirs below it
nginx_pid=""
wxgate_pid=""
echo_pid=""
# shellcheck disable=SC2317  # stop and cleanup run from the EXIT trap
stop() { # stop PID: TERM, wait up to 5 s, then KILL
  local pid="$1"
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then return 0; fi
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
# shellcheck disable=SC2317  # runs from the EXIT trap
cleanup() {
  stop "$echo_pid"
  stop "$wxgate_pid"
  stop "$nginx_pid"
  if [ "$failed" -gt 0 ] || [ -n "${NGINX_CHECK_VERBOSE:-}" ]; then
    for f in error.log wxgate.log access.log; do
      [ -s "$work/$f" ] && { echo "--- $f (last 15 lines)"; tail -n 15 "$work/$f"; }
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS COMMAND...: retry every 0.1 s until it succeeds or time is up
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# ---------------------------------------------------------------- certificate, ports
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj "/CN=wx.example.com" -addext "subjectAltName=DNS:wx.example.com,IP:127.0.0.1" \
  -keyout "$work/privkey.pem" -out "$work/fullchain.pem" >/dev/null 2>&1 ||
  die "generate a self-signed certificate"
chmod 600 "$work/privkey.pem"

read -r https_port http_port wx_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks: s.close()')
[ -n "${wx_port:-}" ] || die "pick free ports"

# ---------------------------------------------------------------- render
# The production values below are the tokens: each must be present (else the
# config and this script have drifted apart) and none may survive rendering.
render_ok=1
expect_token() { # FILE LITERAL MIN_COUNT
  local n
  n="$(grep -cF -- "$2" "$1")"
  [ "$n" -ge "$3" ] || { bad "render: expected \"$2\" at least $3 time(s) in ${1#"$repo_root"/}, found $n"; render_ok=0; }
}
expect_token "$conf_src" "listen 443 ssl http2;" 1
expect_token "$conf_src" "listen 80;" 1
expect_token "$conf_src" "server 127.0.0.1:8080" 1
expect_token "$conf_src" "/etc/ssl/wxgate/fullchain.pem" 1
expect_token "$conf_src" "/etc/ssl/wxgate/privkey.pem" 1
expect_token "$conf_src" "/var/log/nginx/wxgate.access.log" 1
expect_token "$conf_src" "/etc/nginx/snippets/wxgate-proxy.conf" 1
expect_token "$conf_src" "/etc/nginx/snippets/wxgate-locations.conf" 2
expect_token "$snippet_src" "client_max_body_size 64k;" 1
mkdir -p "$work/conf.d"
cp "$snippet_src" "$work/wxgate-proxy.conf"
# The example config plus a WeCom app and a 微信客服 account (their values are
# this check's own; no WeCom API is reached: only the callbacks are driven).
config_src="$config"
config="$work/wxgate.toml"
cat "$config_src" - >"$config" <<'EOF'

[[accounts]]
name = "corp"
kind = "wecom"
corp_id = "ww0123456789abcdef"
agent_id = 1000002
token = "corpchecktoken"
encoding_aes_key = "Qm8tZ2Vu4lW3cK9pR7sY1vX5bN0aD6fH2jL8eT4uI3o"

[[accounts]]
name = "service"
kind = "kf"
path = "/kf"
corp_id = "ww0123456789abcdef"
token = "kfchecktoken"
encoding_aes_key = "Kf8tZ2Vu4lW3cK9pR7sY1vX5bN0aD6fH2jL8eT4uI3o"
corp_secret = "kf-check-secret"
EOF
if "$bin" nginx-config --config "$config" --proxy-snippet "$work/wxgate-proxy.conf" \
  >"$work/wxgate-locations.conf" 2>"$work/nginx-config.err"; then
  locations="$(grep -c '^location = ' "$work/wxgate-locations.conf")"
  check "wxgate nginx-config: one exact location per account" \
    "3 /weixin /weixin/corp /kf" \
    "$locations $(sed -n 's/^location = \([^ ]*\) {$/\1/p' "$work/wxgate-locations.conf" | tr '\n' ' ' | sed 's/ $//')"
else
  die "wxgate nginx-config: $(head -c 300 "$work/nginx-config.err")"
fi
sed -e "s|listen 443 ssl http2;|listen 127.0.0.1:$https_port ssl http2;|" \
  -e "s|listen 80;|listen 127.0.0.1:$http_port;|" \
  -e '/listen \[::\]:/d' \
  -e "s|server 127.0.0.1:8080|server 127.0.0.1:$wx_port|" \
  -e "s|/etc/ssl/wxgate/|$work/|g" \
  -e "s|/var/log/nginx/wxgate.access.log|$work/access.log|g" \
  -e "s|/etc/nginx/snippets/wxgate-proxy.conf|$work/wxgate-proxy.conf|g" \
  -e "s|/etc/nginx/snippets/wxgate-locations.conf|$work/wxgate-locations.conf|g" \
  "$conf_src" >"$work/conf.d/wxgate.conf"
leftover="$(grep -nE '/etc/|/var/|:8080|listen (443|80)[ ;]|listen \[' "$work/conf.d/wxgate.conf" | grep -v '^[0-9]*:[[:space:]]*#')"
[ -z "$leftover" ] || { bad "render: production values left: $leftover"; render_ok=0; }
[ "$render_ok" -eq 1 ] && ok "render deploy/nginx/wxgate.conf (https 127.0.0.1:$https_port, http 127.0.0.1:$http_port, wxgate 127.0.0.1:$wx_port)"

cat >"$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log notice;
events { worker_connections 64; }
http {
    access_log $work/access.log;
    client_body_temp_path $work/client_body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;
    include $work/conf.d/wxgate.conf;
}
EOF
nginx_args=(-p "$work/" -c "$work/nginx.conf" -e "$work/error.log")
if "$nginx_bin" -t "${nginx_args[@]}" >"$work/nginx-t.out" 2>&1; then
  ok "nginx -t ($("$nginx_bin" -v 2>&1 | sed 's|.*/||'))"
else
  sed 's/^/        /' "$work/nginx-t.out"
  die "nginx -t"
fi

# ---------------------------------------------------------------- start both
"$nginx_bin" "${nginx_args[@]}" -g 'daemon off;' >>"$work/error.log" 2>&1 &
nginx_pid=$!
"$bin" serve --config "$config" --listen "127.0.0.1:$wx_port" >"$work/wxgate.log" 2>&1 &
wxgate_pid=$!

https="https://127.0.0.1:$https_port"
http="http://127.0.0.1:$http_port"
# curl through nginx; prints the status code, body in $work/body, headers in $work/headers
req() {
  curl -k -sS --max-time 10 -o "$work/body" -D "$work/headers" -w '%{http_code}' "$@" 2>"$work/curl.err" ||
    echo " curl: $(head -c 200 "$work/curl.err")"
}
header() { tr -d '\r' <"$work/headers" | grep -i "^$1:" | head -n1 | cut -d' ' -f2-; }
sign() { printf '%s\n' "$token" "$1" "$2" | LC_ALL=C sort | tr -d '\n' | sha1sum | cut -d' ' -f1; }

wait_for 10 curl -fsS --max-time 1 "http://127.0.0.1:$wx_port/healthz" ||
  die "wxgate did not come up on 127.0.0.1:$wx_port"
wait_for 10 curl -kfsS --max-time 1 "$https/healthz" ||
  die "nginx did not answer on $https"
check "GET /healthz over HTTPS -> 200 ok" "200 ok" "$(req "$https/healthz") $(cat "$work/body")"
check "response has Strict-Transport-Security" "max-age=31536000" "$(header Strict-Transport-Security)"
check "Server header has no version (server_tokens off)" "nginx" "$(header Server)"

# ---------------------------------------------------------------- the callback
ts="$(date +%s)"
nonce="$RANDOM$RANDOM"
sig="$(sign "$ts" "$nonce")"
q="signature=$sig&timestamp=$ts&nonce=$nonce"
echostr="wxgate-check-$RANDOM"
check "signed verification GET over HTTPS echoes echostr" "200 $echostr" \
  "$(req "$https/weixin?$q&echostr=$echostr") $(cat "$work/body")"
check "GET with a wrong signature -> 403 from wxgate" "403" \
  "$(req "$https/weixin?signature=0000000000000000000000000000000000000000&timestamp=$ts&nonce=$nonce&echostr=x")"

msg="<xml><ToUserName><![CDATA[gh_check]]></ToUserName><FromUserName><![CDATA[o_check]]></FromUserName><CreateTime>$ts</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[微博]]></Content><MsgId>1</MsgId></xml>"
code="$(req -H 'Content-Type: text/xml' --data-binary "$msg" "$https/weixin?$q&openid=o_check")"
body="$(cat "$work/body")"
if [ "$code" = 200 ] && [[ "$body" == *"<MsgType><![CDATA[news]]></MsgType>"* ]] &&
  [[ "$body" == *"<ToUserName><![CDATA[o_check]]></ToUserName>"* ]] && [[ "$body" == *"最新文章"* ]]; then
  ok "signed text POST \"微博\" -> 200 news reply ($(header Content-Type))"
else
  bad "signed text POST \"微博\" (got $code: ${body:0:160})"
fi

# Bodies: 64 KiB passes nginx (wxgate allows 65536 too); one byte more is
# refused by nginx itself, before wxgate sees it.
python3 - "$msg" "$work" <<'EOF'
import sys
msg, work = sys.argv[1].encode(), sys.argv[2]
for name, size in (("body-64k", 65536), ("body-64k+1", 65537), ("body-70k", 70 * 1024)):
    pad = size - len(msg) - len("<Pad></Pad>")
    data = msg.replace(b"</xml>", b"<Pad>" + b"x" * pad + b"</Pad></xml>")
    assert len(data) == size
    open(f"{work}/{name}", "wb").write(data)
EOF
code="$(req -H 'Content-Type: text/xml' --data-binary "@$work/body-64k" "$https/weixin?$q")"
check "POST of exactly 64 KiB passes nginx and gets the news reply" "200 news" \
  "$code $(grep -o 'CDATA\[news\]' "$work/body" | sed 's/CDATA\[//; s/\]//')"
refused_by() { grep -q 'Request Entity Too Large' "$work/body" && echo nginx || echo wxgate; }
code="$(req -H 'Content-Type: text/xml' --data-binary "@$work/body-64k+1" "$https/weixin?$q")"
check "POST of 64 KiB + 1 byte -> 413 from nginx (not forwarded)" "413 nginx" "$code $(refused_by)"
code="$(req -H 'Content-Type: text/xml' --data-binary "@$work/body-70k" "$https/weixin?$q")"
check "POST of 70 KiB -> 413 from nginx (not forwarded)" "413 nginx" "$code $(refused_by)"
code="$(req -H 'Content-Type: text/xml' -H 'Transfer-Encoding: chunked' --data-binary "@$work/body-70k" "$https/weixin?$q")"
check "chunked POST of 70 KiB (no Content-Length) -> 413" "413" "$code"

# ---------------------------------------------------------------- refused paths
for path in /metrics /metrics/x /internal/access_token /admin/ /admin; do
  check "GET $path over HTTPS -> 403" "403" "$(req "$https$path")"
done
check "GET /weixin/../internal/access_token (path as is) -> 403" "403" \
  "$(req --path-as-is "$https/weixin/../internal/access_token")"
check "GET /%69nternal/access_token (percent-encoded) -> 403" "403" "$(req "$https/%69nternal/access_token")"
check "GET /readyz over HTTPS -> 404 (not public)" "404" "$(req "$https/readyz")"
check "GET /weixin/extra over HTTPS -> 404" "404" "$(req "$https/weixin/extra")"
check "GET /kf/extra over HTTPS -> 404 (exact match only)" "404" "$(req "$https/kf/extra")"
check "GET /weixin/corp/ over HTTPS -> 404 (exact match only)" "404" "$(req "$https/weixin/corp/")"

# ---------------------------------------------------------------- every account kind
# wxgate's own client speaks as WeChat / WeCom would, through nginx's port
# 80 (its TLS client would refuse the throwaway certificate; port 80
# serves the same callback locations).
as_wechat() { # NAME EXPECTED-IN-OUTPUT COMMAND...
  local name="$1" want="$2"
  shift 2
  if out="$("$bin" --config "$config" "$@" 2>&1)" && [[ "$out" == *"$want"* ]]; then
    ok "$name"
  else
    bad "$name: $(echo "$out" | tail -n3 | tr '\n' ' ' | head -c 300)"
  fi
}
as_wechat "Official Account /weixin: URL verification through nginx" "would pass" \
  verify-url --url "$http/weixin"
as_wechat "WeCom app /weixin/corp: URL verification (encrypted echostr) through nginx" "would pass" \
  verify-url --account corp --url "$http/weixin/corp"
as_wechat "WeCom app /weixin/corp: encrypted text, reply signed and decrypted" "signature verified, decrypted" \
  simulate --account corp --url "$http/weixin/corp" text 你好
as_wechat "微信客服 /kf: URL verification (encrypted echostr) through nginx" "would pass" \
  verify-url --account service --url "$http/kf"
if "$bin" --config "$config" verify-url --account corp --url "$http/kf" >/dev/null 2>&1; then
  bad "/kf answered with the WeCom app's secrets: nginx or wxgate mixed the accounts up"
else
  ok "/kf refuses the WeCom app's signature (each path reaches its own account)"
fi

# ---------------------------------------------------------------- port 80
check "signed verification GET over plain HTTP still served" "200 $echostr" \
  "$(req "$http/weixin?$q&echostr=$echostr") $(cat "$work/body")"
code="$(req "$http/healthz?a=1")"
check "other paths over HTTP -> 301 to https (query kept)" "301 https://127.0.0.1/healthz?a=1" \
  "$code $(header Location)"
check "GET /internal/access_token over HTTP -> 403" "403" "$(req "$http/internal/access_token")"
check "GET /metrics over HTTP -> 403" "403" "$(req "$http/metrics")"

if curl -V | grep -qw HTTP2; then
  check "HTTP/2 negotiated over TLS" "2" \
    "$(curl -k -sS --http2 --max-time 10 -o /dev/null -w '%{http_version}' "$https/healthz")"
else
  skip "HTTP/2 check: this curl has no HTTP/2 support"
fi

# ---------------------------------------------------------------- shutdown
kill -TERM "$wxgate_pid"
rc=timeout
for _ in $(seq 100); do
  if ! kill -0 "$wxgate_pid" 2>/dev/null; then wait "$wxgate_pid"; rc=$?; break; fi
  sleep 0.1
done
wxgate_pid=""
check "wxgate exits 0 on SIGTERM" "0" "$rc"
start=$SECONDS
code="$(req "$https/weixin?$q&echostr=x")"
check "wxgate down: nginx answers 502 at once" "502 fast" \
  "$code $([ $((SECONDS - start)) -le 2 ] && echo fast || echo slow)"

# ---------------------------------------------------------------- what wxgate receives
# A stand-in on wxgate's port records what nginx forwards.
cat >"$work/echo.py" <<'EOF'
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"request_line": self.requestline, "peer_port": self.client_address[1],
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
python3 "$work/echo.py" "$wx_port" >"$work/echo.log" 2>&1 &
echo_pid=$!
wait_for 10 curl -fsS --max-time 1 "http://127.0.0.1:$wx_port/healthz" || die "header stand-in did not start"
raw_query='signature=ab%2Bcd%3D&timestamp=1&nonce=2&echostr=x%20y'
req -H 'X-Forwarded-For: 203.0.113.9' -H 'X-Real-IP: 198.51.100.7' "$https/weixin?$raw_query" >/dev/null
cp "$work/body" "$work/seen1"
req "$https/weixin?$raw_query" >/dev/null
cp "$work/body" "$work/seen2"
seen() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@" 2>/dev/null; }
check "query string forwarded byte for byte, HTTP/1.1" "GET /weixin?$raw_query HTTP/1.1" \
  "$(seen "$work/seen1" 'd["request_line"]')"
check "X-Real-IP is the peer address, not the client's header" "127.0.0.1" \
  "$(seen "$work/seen1" 'd["headers"].get("x-real-ip")')"
check "X-Forwarded-For appends the peer address" "203.0.113.9, 127.0.0.1" \
  "$(seen "$work/seen1" 'd["headers"].get("x-forwarded-for")')"
check "X-Forwarded-Proto https, Host from the request" "https 127.0.0.1" \
  "$(seen "$work/seen1" 'd["headers"].get("x-forwarded-proto"), d["headers"].get("host")' | tr -d "(),'")"
check "no Connection: close to the upstream" "None" "$(seen "$work/seen1" 'd["headers"].get("connection")')"
p1="$(seen "$work/seen1" 'd["peer_port"]')"
p2="$(seen "$work/seen2" 'd["peer_port"]')"
check "upstream keepalive: second request reuses the connection" "${p1:-none}" "${p2:-none (first: ${p1:-none})}"
finish
