#!/usr/bin/env python3
"""Instructions and heap allocations per request of the real server, under callgrind.

    scripts/bench_instructions.py BINARY [--config config/bench.toml] [--requests 2000]
        [--warmup 300] [--connections 4] [--env RUST_LOG=warn] [--label NAME]

Starts `BINARY serve` under `valgrind --tool=callgrind`, sends --warmup requests,
zeroes the counters (`callgrind_control -z`), sends --requests more over
--connections keep-alive connections, stops the server with SIGTERM and reads the
totals: instructions (Ir) per request, and calls to malloc/calloc/realloc per
request. Instruction counts do not depend on what else runs on the machine, so
they are the figure for before/after comparisons on a busy 2-core VM; they
include the kernel-facing user-space work (hyper, tokio, tracing) but not the
kernel itself.

The requests are the shared harness's workload: safe-mode text messages with
distinct MsgIds and senders, half of them "微博" (news reply), the rest other
texts (the welcome text). Every reply is decrypted and checked. Needs Python's
`cryptography` package and valgrind.
"""
import argparse
import base64
import hashlib
import http.client
import os
import random
import re
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TOKEN = "bench_token"
ENCODING_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wx0123456789abcdef"
KEYWORD = "微博"
OTHER_TEXTS = ["你好", "今天天气怎么样？", "帮我查一下快递到哪里了", "请问营业时间是几点到几点",
               "我想订阅你们的新闻推送", "微信支付怎么退款"]
ALLOC_FNS = {"malloc", "calloc", "realloc"}

KEY = base64.b64decode(ENCODING_AES_KEY + "=")


def sign(*parts):
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def encrypt(xml):
    body = os.urandom(16) + len(xml).to_bytes(4, "big") + xml + APP_ID.encode()
    pad = 32 - len(body) % 32
    body += bytes([pad]) * pad
    enc = Cipher(algorithms.AES(KEY), modes.CBC(KEY[:16])).encryptor()
    return base64.b64encode(enc.update(body) + enc.finalize()).decode()


def decrypt(b64):
    dec = Cipher(algorithms.AES(KEY), modes.CBC(KEY[:16])).decryptor()
    plain = dec.update(base64.b64decode(b64)) + dec.finalize()
    plain = plain[: -plain[-1]]
    n = int.from_bytes(plain[16:20], "big")
    assert plain[20 + n:].decode() == APP_ID, "wrong app id in the reply"
    return plain[20:20 + n].decode()


def prepare(n):
    now = int(time.time())
    base = 24_000_000_000_000_000 + random.randrange(10**12)
    out = []
    for i in range(n):
        openid = "o" + "".join(random.choices(string.ascii_letters + string.digits, k=27))
        ts = str(now + i % 5)
        nonce = str(random.randrange(10**8, 10**10))
        news = random.random() < 0.5
        content = KEYWORD if news else random.choice(OTHER_TEXTS)
        inner = (f"<xml><ToUserName><![CDATA[gh_x]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
                 f"</FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                 f"<Content><![CDATA[{content}]]></Content><MsgId>{base + i}</MsgId></xml>")
        enc = encrypt(inner.encode())
        query = (f"signature={sign(TOKEN, ts, nonce)}&timestamp={ts}&nonce={nonce}&openid={openid}"
                 f"&encrypt_type=aes&msg_signature={sign(TOKEN, ts, nonce, enc)}")
        body = f"<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
        out.append((f"/weixin?{query}", body.encode(), news))
    return out


def check(reply, news):
    enc = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", reply)
    assert enc, f"not an encrypted envelope: {reply[:200]}"
    inner = decrypt(enc.group(1))
    want = "<MsgType><![CDATA[news]]></MsgType>" if news else "<MsgType><![CDATA[text]]></MsgType>"
    assert want in inner, f"wrong reply: {inner[:300]}"


def send_all(port, requests, connections, check_replies=True):
    errors = []

    def worker(part):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for path, body, news in part:
                try:
                    conn.request("POST", path, body, {"Content-Type": "text/xml"})
                    res = conn.getresponse()
                except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                    # A server that answers without reading the body may close
                    # the connection (ceiling-null); reconnect, as loadgen does.
                    conn.close()
                    conn.request("POST", path, body, {"Content-Type": "text/xml"})
                    res = conn.getresponse()
                text = res.read().decode()
                if res.status != 200:
                    raise AssertionError(f"HTTP {res.status}: {text[:200]}")
                if check_replies:
                    check(text, news)
        except Exception as e:  # reported after the threads join
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(requests[i::connections],))
               for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("server did not open its port")


def totals(path):
    """(Ir, allocation calls) from a callgrind output file."""
    names, ir, allocs = {}, None, 0
    callee = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(("fn=", "cfn=")):
                m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    name = names.get(m.group(1), "")
                else:
                    name = line.split("=", 1)[1].strip()
                callee = name if line.startswith("cfn=") else None
            elif line.startswith("calls=") and callee is not None:
                if callee in ALLOC_FNS:
                    allocs += int(line.split("=", 1)[1].split()[0])
                callee = None
            elif line.startswith(("summary:", "totals:")):
                ir = int(line.split()[1])
    return ir, allocs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--args", default="serve --listen 127.0.0.1:{port} --config {config}",
                    help="server arguments ({port}, {config}); e.g. '{port}' for the harness's ceilings")
    ap.add_argument("--no-check", action="store_true", help="accept any 200 reply (ceiling-null)")
    ap.add_argument("--config", default="config/bench.toml")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    ap.add_argument("--label", default="")
    ap.add_argument("--keep", help="copy the callgrind output file here (for callgrind_annotate)")
    args = ap.parse_args()

    reqs = prepare(args.warmup + args.requests)
    port = free_port()
    env = dict(os.environ)
    env.update(kv.split("=", 1) for kv in args.env)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        log = open(os.path.join(tmp, "server.log"), "w")
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             args.binary, *args.args.format(port=port, config=args.config).split()],
            stdout=log, stderr=log, env=env)
        try:
            wait_port(port, proc)
            send_all(port, reqs[:args.warmup], args.connections, not args.no_check)
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
            log.flush()
            log_start = os.path.getsize(log.name)
            send_all(port, reqs[args.warmup:], args.connections, not args.no_check)
            log_bytes = os.path.getsize(log.name) - log_start
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        ir, allocs = totals(out)
        if args.keep:
            with open(out, "rb") as src, open(args.keep, "wb") as dst:
                dst.write(src.read())
    n = args.requests
    label = f"{args.label}: " if args.label else ""
    print(f"{label}{ir / n:,.0f} instructions/request, {allocs / n:.1f} allocations/request "
          f"({n} requests, {args.connections} connections; server log {log_bytes / n:.0f} B/request)")


if __name__ == "__main__":
    main()
