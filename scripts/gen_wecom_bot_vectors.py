#!/usr/bin/env python3
"""Generate the WeCom 智能机器人 callback vectors in tests/fixtures/wecom_bot/.

Written from WeCom's public documentation (docs/platforms/wecom_bot.md lists
the pages), independently of wxgate's Rust code: the URL check's and each
callback's msg_signature = SHA-1 hex of the sorted token, timestamp, nonce and
ciphertext joined; the ciphertext = Base64(AES-256-CBC(key =
Base64(EncodingAESKey + "="), IV = the first 16 key bytes, random(16) ||
len(message) as 4 bytes big-endian || message || receive id, PKCS#7 padded to
32 bytes)), where a 智能机器人's receive id is empty. The callbacks' bodies are
{"encrypt": …}; an answer is {"encrypt", "msgsignature", "timestamp",
"nonce"}. Written with the `cryptography` package and hashlib, and
cross-checked by opening every envelope and recomputing every signature with
wechatpy's implementation of the same scheme.

Deterministic: a re-run reproduces vectors.json byte for byte.

Usage:
  "$(scripts/ensure_pyenv.sh)" scripts/gen_wecom_bot_vectors.py           # (re)write
  "$(scripts/ensure_pyenv.sh)" scripts/gen_wecom_bot_vectors.py --check   # compare only
"""
import base64
import hashlib
import json
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import vectors_file

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO_ROOT, "tests", "fixtures", "wecom_bot", "vectors.json")

# The fake bot, shared with tests/api/support/fake_wecom_bot.rs.
TOKEN = "aibottoken"
ENCODING_AES_KEY = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo"
BOT_ID = "aibwxgatefixture"
TIMESTAMP = "1760000000"


def aes_key(encoding_aes_key):
    key = base64.b64decode(encoding_aes_key + "=")
    assert len(key) == 32
    return key


def encrypt(random16, message):
    key = aes_key(ENCODING_AES_KEY)
    msg = message.encode("utf-8")
    plain = random16 + struct.pack(">I", len(msg)) + msg  # the receive id is empty
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode("ascii")


def signature(timestamp, nonce, ciphertext):
    return hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce, ciphertext])).encode("utf-8")).hexdigest()


def cross_check(case):
    """wechatpy's envelope and signature, an implementation of its own."""
    from wechatpy.crypto import PrpCrypto, _get_signature

    plain = PrpCrypto(aes_key(ENCODING_AES_KEY)).decrypt(case["encrypt"], "")
    plain = plain.decode("utf-8") if isinstance(plain, bytes) else plain
    assert plain == case["plaintext"], case["what"]
    sig = _get_signature(TOKEN, case["timestamp"], case["nonce"], case["encrypt"])
    assert sig == case["msg_signature"], case["what"]


def case(what, kind, nonce, random16, plaintext, **extra):
    enc = encrypt(random16.encode("ascii"), plaintext)
    c = {
        "what": what, "kind": kind, "timestamp": TIMESTAMP, "nonce": nonce, "random": random16,
        "plaintext": plaintext, "encrypt": enc, "msg_signature": signature(TIMESTAMP, nonce, enc),
    }
    c.update(extra)
    cross_check(c)
    return c


def compact(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def build():
    text = compact({
        "msgid": "CAIQ16HMjQYYwxgate01", "aibotid": BOT_ID, "chattype": "single",
        "from": {"userid": "zhangsan"},
        "response_url": "https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=RC1",
        "msgtype": "text", "text": {"content": "价格"},
    })
    group = compact({
        "msgid": "CAIQ16HMjQYYwxgate02", "aibotid": BOT_ID, "chatid": "wrkSFfCgAAwxgate", "chattype": "group",
        "from": {"userid": "lisi"},
        "response_url": "https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=RC2",
        "msgtype": "text", "text": {"content": "@机器人 价格"},
    })
    refresh = compact({
        "msgid": "CAIQ16HMjQYYwxgate03", "aibotid": BOT_ID, "chattype": "single",
        "from": {"userid": "zhangsan"}, "msgtype": "stream", "stream": {"id": "wxgate-000000000000000000000001"},
    })
    enter = compact({
        "msgid": "CAIQ16HMjQYYwxgate04", "aibotid": BOT_ID, "chattype": "single",
        "from": {"userid": "zhangsan"}, "msgtype": "event", "event": {"eventtype": "enter_chat"},
    })
    answer = compact({"msgtype": "stream", "stream": {"id": "wxgate-000000000000000000000001",
                                                      "finish": True, "content": "**价格表**见官网"}})
    cases = [
        case("the console's URL check (the echostr)", "url_check", "nonce001", "RandomPrefix0001", "wxgate-echo-1760000000"),
        case("a direct text", "message", "nonce002", "RandomPrefix0002", text, content="价格", user="zhangsan"),
        case("an @ in a group", "message", "nonce003", "RandomPrefix0003", group, content="@机器人 价格", user="lisi"),
        case("a stream refresh", "refresh", "nonce004", "RandomPrefix0004", refresh, stream_id="wxgate-000000000000000000000001"),
        case("entering the chat", "event", "nonce005", "RandomPrefix0005", enter, event_type="enter_chat"),
        case("a finished stream answer", "answer", "nonce006", "RandomPrefix0006", answer),
    ]
    return {
        "about": "WeCom 智能机器人 callback vectors (empty receive id); generated by scripts/gen_wecom_bot_vectors.py, do not edit",
        "token": TOKEN, "encoding_aes_key": ENCODING_AES_KEY, "bot_id": BOT_ID,
        "cases": cases,
    }


if __name__ == "__main__":
    vectors_file.main(__doc__.splitlines()[0], OUT, build, "wecom_bot")
