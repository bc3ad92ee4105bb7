#!/usr/bin/env python3
"""Independent interop check: wxgate against wechatpy==1.8.18.

  interop_wechatpy.py --bin PATH_TO_WXGATE_BINARY [--verbose]

Starts the wxgate binary on a free loopback port with a temporary config, talks
to it as WeChat would (requests signed and encrypted by wechatpy), and decrypts
and parses every reply with wechatpy.  Phases:

  1. safe mode: GET URL verification (good and bad signature), then text "微博"
     (news reply, 1 article), text "hello" (default reply), a subscribe event
     (subscribe rule), and a text containing "]]>" echoed through the
     "echo: {content}" rule; plus two requests that must be refused.
  2. compatible mode (server restarted): an encrypt_type=aes request gets an
     encrypted reply, a plain signed request gets a plain XML reply.

Prints one line per check and finishes with "N passed, M failed"; exits 1 if
any check failed.  The server is always stopped, also on failure.
"""
import argparse
import hashlib
import os
import random
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import urllib.error
import urllib.request
from urllib.parse import quote

from wechatpy.crypto import WeChatCrypto
from wechatpy.parser import parse_message
from wechatpy.utils import check_signature

# The interop account (deliberately not the tests/fixtures account).  The key's
# last char 'B' (value 1) has non-zero surplus bits, as most real keys do.
TOKEN = "interopToken7f3d"  # 3-32 letters/digits, as the WeChat console requires
ENCODING_AES_KEY = "iNt3r0pK3yF0rWxg4teAndW3chatpyCr0ssCh3ck42B"
APP_ID = "wx8d3f6a1b2c4e5097"
ORIGINAL_ID = "gh_a1b2c3d4e5f6"
OPENID = "oInterop_8XkQ2mZ7vLp4sYt9wRb"
PATH = "/weixin"

DEFAULT_REPLY = "欢迎！"
NEWS = {"title": "T", "description": "D", "url": "https://example.com/a",
        "pic_url": "https://example.com/p.jpg"}
STARTUP_TIMEOUT = 15.0
HTTP_TIMEOUT = 10.0

# urllib without proxies: everything here is loopback
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------
def toml_str(s):
    """A TOML basic string (JSON escapes are valid TOML basic-string escapes)."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def config_toml(port, mode):
    q = toml_str
    return "\n".join([
        "[server]",
        "listen = %s" % q("127.0.0.1:%d" % port),
        "path = %s" % q(PATH),
        "max_body_bytes = 65536",
        "timestamp_window_secs = 300",
        "",
        "[account]",
        "app_id = %s" % q(APP_ID),
        "token = %s" % q(TOKEN),
        "encoding_aes_key = %s" % q(ENCODING_AES_KEY),
        "mode = %s" % q(mode),
        "",
        "[store]",
        'backend = "memory"',
        "",
        "[log]",
        'level = "info"',
        'format = "text"',
        "",
        "[default_reply]",
        'type = "text"',
        "content = %s" % q(DEFAULT_REPLY),
        "",
        "[[rules]]",
        'name = "weibo"',
        "match = { text = %s }" % q("微博"),
        "reply = { type = \"news\", articles = [ { title = %s, description = %s, url = %s, pic_url = %s } ] }"
        % (q(NEWS["title"]), q(NEWS["description"]), q(NEWS["url"]), q(NEWS["pic_url"])),
        "",
        "[[rules]]",
        'name = "echo"',
        'match = { prefix = "echo " }',
        'reply = { type = "text", content = "echo: {content}" }',
        "",
        "[[rules]]",
        'name = "welcome"',
        'match = { event = "subscribe" }',
        "reply = { type = \"text\", content = %s }" % q("感谢关注 {from_user}"),
        "",
    ])


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha1_sorted(*parts):
    """wechatpy's WeChatSigner: sha1 of the parts sorted as byte strings, no separator."""
    return hashlib.sha1(b"".join(sorted(p.encode("utf-8") for p in parts))).hexdigest()


def rand_nonce(rng):
    return str(rng.randrange(10 ** 8, 4 * 10 ** 9))


def cdata(s):
    """CDATA that survives "]]>" (split as ]]]]><![CDATA[>), like WeChat-compatible XML."""
    return "<![CDATA[" + s.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_xml(content, msg_id, create_time):
    return ("<xml><ToUserName>%s</ToUserName><FromUserName>%s</FromUserName>"
            "<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            "<Content>%s</Content><MsgId>%d</MsgId></xml>"
            % (cdata(ORIGINAL_ID), cdata(OPENID), create_time, cdata(content), msg_id))


def subscribe_xml(create_time):
    return ("<xml><ToUserName>%s</ToUserName><FromUserName>%s</FromUserName>"
            "<CreateTime>%d</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[]]></EventKey></xml>"
            % (cdata(ORIGINAL_ID), cdata(OPENID), create_time))


def qs(pairs):
    return "&".join("%s=%s" % (k, quote(v, safe="")) for k, v in pairs)


def http(method, url, body=None, headers=None):
    """(status, body bytes, headers); never raises for HTTP error statuses."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with OPENER.open(req, timeout=HTTP_TIMEOUT) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers or {})


def short(b, n=200):
    s = b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)
    return s if len(s) <= n else s[:n] + "...(%d bytes)" % len(s)


class Failed(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failed(what)


# --------------------------------------------------------------------------
# the server under test
# --------------------------------------------------------------------------
class Server:
    def __init__(self, binary, mode, workdir):
        self.binary = binary
        self.mode = mode
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.config = os.path.join(workdir, "wxgate-%s.toml" % mode)
        self.logpath = os.path.join(workdir, "wxgate-%s.log" % mode)
        self.proc = None
        self.log = None

    def start(self):
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(config_toml(self.port, self.mode))
        self.log = open(self.logpath, "wb")
        # own session/process group, so stop() also reaches anything it spawned
        self.proc = subprocess.Popen([self.binary, "serve", "--config", self.config],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failed("wxgate exited with %s before /healthz answered; log:\n%s"
                             % (self.proc.returncode, self.log_tail()))
            try:
                status, body, _ = http("GET", self.base + "/healthz")
                if status == 200:
                    return
                last = "status %d %s" % (status, short(body, 80))
            except (OSError, urllib.error.URLError) as e:
                last = str(e)
            time.sleep(0.1)
        raise Failed("/healthz did not answer 200 within %.0f s (%s); log:\n%s"
                     % (STARTUP_TIMEOUT, last, self.log_tail()))

    def _signal_group(self, sig):
        try:
            os.killpg(self.proc.pid, sig)  # the group this script created in start()
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self):
        if self.proc is not None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._signal_group(signal.SIGKILL)  # stragglers (or a server ignoring SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def log_tail(self, n=30):
        try:
            if self.log is not None:
                self.log.flush()
            with open(self.logpath, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join("    | " + line for line in lines[-n:])
        except OSError:
            return "    | (no log)"


# --------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------
class Interop:
    def __init__(self, binary, verbose):
        self.binary = binary
        self.verbose = verbose
        self.passed = 0
        self.failed = 0
        self.rng = random.Random()  # the nonces need not be reproducible
        self.crypto = WeChatCrypto(TOKEN, ENCODING_AES_KEY, APP_ID)
        self.msg_id = 9200000000000000001  # > 2^53
        self.server = None

    def check(self, name, fn, *args):
        try:
            detail = fn(*args)
        except Failed as e:
            self.failed += 1
            print("FAIL %s: %s" % (name, e))
        except Exception as e:  # a crash in a check is a failed check, not an abort
            self.failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
        else:
            self.passed += 1
            print("PASS %s%s" % (name, (" (%s)" % detail) if detail and self.verbose else ""))
        sys.stdout.flush()

    def next_msg_id(self):
        self.msg_id += 1
        return self.msg_id

    def url(self, pairs):
        return self.server.base + PATH + "?" + qs(pairs)

    # -- GET verification --------------------------------------------------
    def get_verify_ok(self):
        ts, nonce = str(int(time.time())), rand_nonce(self.rng)
        echostr = "".join(self.rng.choice(string.digits) for _ in range(19))
        sig = sha1_sorted(TOKEN, ts, nonce)
        check_signature(TOKEN, sig, ts, nonce)  # our signer agrees with wechatpy
        status, body, _ = http("GET", self.url([("signature", sig), ("timestamp", ts),
                                                ("nonce", nonce), ("echostr", echostr)]))
        expect(status == 200, "status %d, body %r" % (status, short(body)))
        expect(body == echostr.encode("ascii"), "body %r != echostr %r" % (body, echostr))
        return "echostr %s" % echostr

    def get_verify_bad(self):
        ts, nonce = str(int(time.time())), rand_nonce(self.rng)
        sig = sha1_sorted(TOKEN + "x", ts, nonce)
        status, body, _ = http("GET", self.url([("signature", sig), ("timestamp", ts),
                                                ("nonce", nonce), ("echostr", "123456789")]))
        expect(status == 403, "expected 403, got %d %r" % (status, short(body)))
        expect(b"123456789" not in body, "echostr leaked in the refusal body")

    # -- encrypted POST ----------------------------------------------------
    def post_encrypted(self, msg_xml, compatible=False):
        """POST msg_xml as WeChat would in safe (or compatible) mode; return the
        decrypted reply XML (str) and the raw envelope."""
        ts, nonce = str(int(time.time())), rand_nonce(self.rng)
        envelope = self.crypto.encrypt_message(msg_xml, nonce, ts)
        env_root = ET.fromstring(envelope.encode("utf-8"))
        encrypt = env_root.find("Encrypt").text
        msg_signature = env_root.find("MsgSignature").text
        expect(msg_signature == sha1_sorted(TOKEN, ts, nonce, encrypt), "BUG: own signer disagrees")
        enc_elem = "<Encrypt><![CDATA[%s]]></Encrypt>" % encrypt
        if compatible:
            body = msg_xml[:-len("</xml>")] + enc_elem + "</xml>"
        else:
            body = "<xml><ToUserName><![CDATA[%s]]></ToUserName>%s</xml>" % (ORIGINAL_ID, enc_elem)
        url = self.url([("signature", sha1_sorted(TOKEN, ts, nonce)), ("timestamp", ts),
                        ("nonce", nonce), ("openid", OPENID), ("encrypt_type", "aes"),
                        ("msg_signature", msg_signature)])
        status, reply, _ = http("POST", url, body.encode("utf-8"), {"Content-Type": "text/xml"})
        expect(status == 200, "status %d, body %r" % (status, short(reply)))
        expect(reply not in (b"", b"success"), "no passive reply (body %r)" % short(reply))
        try:
            env = ET.fromstring(reply)
        except ET.ParseError as e:
            raise Failed("reply is not XML (%s): %r" % (e, short(reply)))
        expect(env.tag == "xml", "envelope root <%s>" % env.tag)
        fields = {c.tag: (c.text or "") for c in env}
        for tag in ("Encrypt", "MsgSignature", "TimeStamp", "Nonce"):
            expect(tag in fields, "envelope lacks <%s>: %r" % (tag, short(reply)))
        r_ts, r_nonce, r_sig = fields["TimeStamp"], fields["Nonce"], fields["MsgSignature"]
        expect(r_ts.isdigit() and abs(int(r_ts) - time.time()) < 300,
               "envelope TimeStamp %r not current Unix seconds" % r_ts)
        # wechatpy checks MsgSignature, decrypts and checks receive_id == APP_ID
        plain = self.crypto.decrypt_message(reply.decode("utf-8"), r_sig, r_ts, r_nonce)
        return plain, fields

    def check_reply_header(self, plain):
        """Parses the decrypted reply with ElementTree and wechatpy; checks the swap."""
        try:
            root = ET.fromstring(plain.encode("utf-8"))
        except ET.ParseError as e:
            raise Failed("decrypted reply is not well-formed XML (%s): %r" % (e, short(plain, 400)))
        expect(root.tag == "xml", "reply root <%s>" % root.tag)
        msg = parse_message(plain)
        expect(msg.target == OPENID, "reply ToUserName %r != sender openid %r" % (msg.target, OPENID))
        expect(msg.source == ORIGINAL_ID, "reply FromUserName %r != %r" % (msg.source, ORIGINAL_ID))
        ct = root.findtext("CreateTime") or ""
        expect(ct.isdigit() and abs(int(ct) - time.time()) < 300,
               "reply CreateTime %r not current Unix seconds" % ct)
        return root, msg

    def expect_text_reply(self, plain, content):
        root, msg = self.check_reply_header(plain)
        expect(root.findtext("MsgType") == "text", "MsgType %r, expected text" % root.findtext("MsgType"))
        expect(type(msg).__name__ == "TextMessage", "wechatpy parsed %s" % type(msg).__name__)
        expect(msg.content == content, "Content %r != %r" % (msg.content, content))
        return "Content %r" % msg.content

    def expect_news_reply(self, plain):
        root, msg = self.check_reply_header(plain)
        expect(root.findtext("MsgType") == "news", "MsgType %r, expected news" % root.findtext("MsgType"))
        expect(msg.type == "unknown" and msg._data.get("MsgType") == "news",
               "wechatpy parse_message: %r" % msg)
        items = root.findall("./Articles/item")
        expect(len(items) == 1, "%d <item>s, expected 1" % len(items))
        expect((root.findtext("ArticleCount") or "").strip() == "1",
               "ArticleCount %r" % root.findtext("ArticleCount"))
        got = {t: items[0].findtext(t) for t in ("Title", "Description", "Url", "PicUrl")}
        want = {"Title": NEWS["title"], "Description": NEWS["description"], "Url": NEWS["url"],
                "PicUrl": NEWS["pic_url"]}
        expect(got == want, "article %r != %r" % (got, want))
        return "article %r" % got["Title"]

    def safe_text_weibo(self):
        plain, _ = self.post_encrypted(text_xml("微博", self.next_msg_id(), int(time.time())))
        return self.expect_news_reply(plain)

    def safe_text_default(self):
        plain, _ = self.post_encrypted(text_xml("hello", self.next_msg_id(), int(time.time())))
        return self.expect_text_reply(plain, DEFAULT_REPLY)

    def safe_subscribe(self):
        plain, _ = self.post_encrypted(subscribe_xml(int(time.time())))
        return self.expect_text_reply(plain, "感谢关注 " + OPENID)

    def safe_echo_cdata(self):
        content = "echo a]]>b <&> 🎉"
        plain, _ = self.post_encrypted(text_xml(content, self.next_msg_id(), int(time.time())))
        return self.expect_text_reply(plain, "echo: " + content)

    def safe_reject_bad_msg_signature(self):
        ts, nonce = str(int(time.time())), rand_nonce(self.rng)
        envelope = self.crypto.encrypt_message(text_xml("hello", self.next_msg_id(), int(ts)), nonce, ts)
        encrypt = ET.fromstring(envelope.encode("utf-8")).findtext("Encrypt")
        body = "<xml><ToUserName><![CDATA[%s]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt></xml>" % (
            ORIGINAL_ID, encrypt)
        bad_sig = sha1_sorted(TOKEN, ts, nonce, encrypt + "A")
        url = self.url([("signature", sha1_sorted(TOKEN, ts, nonce)), ("timestamp", ts), ("nonce", nonce),
                        ("openid", OPENID), ("encrypt_type", "aes"), ("msg_signature", bad_sig)])
        status, reply, _ = http("POST", url, body.encode("utf-8"))
        expect(400 <= status < 500, "expected a 4xx refusal, got %d %r" % (status, short(reply)))

    def safe_reject_signature_only(self):
        """safe mode must authenticate with msg_signature, not signature (PROTOCOL.md §9 trap 4)."""
        ts, nonce = str(int(time.time())), rand_nonce(self.rng)
        envelope = self.crypto.encrypt_message(text_xml("hello", self.next_msg_id(), int(ts)), nonce, ts)
        encrypt = ET.fromstring(envelope.encode("utf-8")).findtext("Encrypt")
        body = "<xml><ToUserName><![CDATA[%s]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt></xml>" % (
            ORIGINAL_ID, encrypt)
        url = self.url([("signature", sha1_sorted(TOKEN, ts, nonce)), ("timestamp", ts), ("nonce", nonce),
                        ("openid", OPENID), ("encrypt_type", "aes")])
        status, reply, _ = http("POST", url, body.encode("utf-8"))
        expect(400 <= status < 500, "expected a 4xx refusal, got %d %r" % (status, short(reply)))

    # -- compatible mode ---------------------------------------------------
    def compat_encrypted(self):
        plain, _ = self.post_encrypted(text_xml("微博", self.next_msg_id(), int(time.time())),
                                       compatible=True)
        return self.expect_news_reply(plain)

    def compat_plain(self):
        ts, nonce = str(int(time.time())), rand_nonce(self.rng)
        body = text_xml("hello", self.next_msg_id(), int(ts))
        url = self.url([("signature", sha1_sorted(TOKEN, ts, nonce)), ("timestamp", ts),
                        ("nonce", nonce), ("openid", OPENID)])
        status, reply, _ = http("POST", url, body.encode("utf-8"), {"Content-Type": "text/xml"})
        expect(status == 200, "status %d, body %r" % (status, short(reply)))
        try:
            root = ET.fromstring(reply)
        except ET.ParseError as e:
            raise Failed("reply is not XML (%s): %r" % (e, short(reply)))
        expect(root.find("Encrypt") is None, "plain request got an encrypted reply: %r" % short(reply))
        return self.expect_text_reply(reply.decode("utf-8"), DEFAULT_REPLY)

    # -- phases ------------------------------------------------------------
    def run_phase(self, mode, checks, workdir):
        self.server = Server(self.binary, mode, workdir)
        try:
            try:
                self.server.start()
            except Failed as e:
                self.failed += 1
                print("FAIL %s: start server: %s" % (mode, e))
                for name, _ in checks:
                    self.failed += 1
                    print("FAIL %s: not run (server did not start)" % name)
                return
            self.passed += 1
            print("PASS %s: server started, /healthz 200 on 127.0.0.1:%d" % (mode, self.server.port))
            for name, fn in checks:
                self.check(name, fn)
            if self.verbose:
                print("---- wxgate log (%s) ----\n%s" % (mode, self.server.log_tail(50)))
        finally:
            self.server.stop()

    def run(self):
        with tempfile.TemporaryDirectory(prefix="wxgate-interop-") as workdir:
            self.run_phase("safe", [
                ("safe: GET verification echoes echostr", self.get_verify_ok),
                ("safe: GET with bad signature -> 403", self.get_verify_bad),
                ("safe: text 微博 -> news reply with 1 article", self.safe_text_weibo),
                ("safe: text hello -> default text reply", self.safe_text_default),
                ("safe: subscribe event -> subscribe text reply", self.safe_subscribe),
                ("safe: text with ]]> round-trips through {content}", self.safe_echo_cdata),
                ("safe: bad msg_signature is refused (4xx)", self.safe_reject_bad_msg_signature),
                ("safe: signature without msg_signature is refused (4xx)", self.safe_reject_signature_only),
            ], workdir)
            self.run_phase("compatible", [
                ("compatible: GET verification echoes echostr", self.get_verify_ok),
                ("compatible: encrypt_type=aes -> encrypted reply wechatpy decrypts", self.compat_encrypted),
                ("compatible: plain signed request -> plain XML reply", self.compat_plain),
            ], workdir)
        print("%d passed, %d failed" % (self.passed, self.failed))
        return 1 if self.failed else 0


def main():
    ap = argparse.ArgumentParser(description="wxgate <-> wechatpy interop check")
    ap.add_argument("--bin", required=True, help="path to the wxgate binary")
    ap.add_argument("--verbose", action="store_true", help="print details and the server log")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print("FAIL wxgate binary %s not found or not executable (build it first: cargo build)" % args.bin)
        print("0 passed, 1 failed")
        return 1
    return Interop(binary, args.verbose).run()


if __name__ == "__main__":
    sys.exit(main())
