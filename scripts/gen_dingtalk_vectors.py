#!/usr/bin/env python3
"""Generate the DingTalk robot callback signature vectors in tests/fixtures/dingtalk/.

Written from DingTalk's public documentation (docs/platforms/dingtalk.md lists
the pages), independently of wxgate's Rust code, with Python's hmac:
sign = Base64(HMAC-SHA256(key = AppSecret, message = timestamp + "\\n" + AppSecret)),
the timestamp in milliseconds as sent in the `timestamp` header.

The encrypted event callbacks (事件订阅): the query's signature = SHA-1 hex of
the sorted token, timestamp, nonce and encrypt joined; encrypt =
Base64(AES-256-CBC(key = Base64(EncodingAESKey + "="), IV = the first 16 key
bytes, random(16) || len(message) as 4 bytes big-endian || message || receive
id, PKCS#7 padded to 32 bytes)). Written with the `cryptography` package and
hashlib, and cross-checked by decrypting every envelope and recomputing every
signature with wechatpy's implementation of the same (WeChat-style) scheme.

Deterministic: a re-run reproduces vectors.json byte for byte.

Usage:
  "$(scripts/ensure_pyenv.sh)" scripts/gen_dingtalk_vectors.py           # (re)write
  "$(scripts/ensure_pyenv.sh)" scripts/gen_dingtalk_vectors.py --check   # compare only
"""
import base64
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import vectors_file

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO_ROOT, "tests", "fixtures", "dingtalk", "vectors.json")


def sign(timestamp, secret):
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_by_hand(timestamp, secret):
    """A second implementation: HMAC written out (RFC 2104) over hashlib."""
    key = secret.encode("utf-8")
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + f"{timestamp}\n{secret}".encode("utf-8")).digest()
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).digest()
    return base64.b64encode(outer).decode("ascii")


# The fake app's event subscription, shared with tests/api/support/fake_dingtalk.rs.
EVENT_TOKEN = "wxgateDingTalkEventToken"
EVENT_AES_KEY = "wxgateDingTalkEventAesKey0123456789abcdefgh"
APP_KEY = "dingwxgatefixture01"


def aes_key(encoding_aes_key):
    key = base64.b64decode(encoding_aes_key + "=")
    assert len(key) == 32
    return key


def encrypt(encoding_aes_key, random16, message, receive_id):
    key = aes_key(encoding_aes_key)
    msg = message.encode("utf-8")
    plain = random16 + struct.pack(">I", len(msg)) + msg + receive_id.encode("utf-8")
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode("ascii")


def signature(token, timestamp, nonce, encrypt_):
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt_])).encode("utf-8")).hexdigest()


def cross_check(case):
    """wechatpy's envelope and signature, an implementation of its own."""
    from wechatpy.crypto import PrpCrypto, _get_signature

    plain = PrpCrypto(aes_key(case["encoding_aes_key"])).decrypt(case["encrypt"], case["receive_id"])
    plain = plain.decode("utf-8") if isinstance(plain, bytes) else plain
    assert plain == case["plaintext"], case["what"]
    sig = _get_signature(case["token"], case["timestamp"], case["nonce"], case["encrypt"])
    assert sig == case["signature"], case["what"]


def event_cases():
    cases = []
    for what, kind, ts, nonce, random16, plaintext, event_type in [
        ("the console's URL check", "check_url", "1700000000000", "nonce001", "RandomPrefix0001",
         '{"EventType":"check_url"}', None),
        ("an address-book event", "event", "1700000060000", "nonce002", "RandomPrefix0002",
         '{"EventType":"user_add_org","TimeStamp":1700000060000,"UserId":["manager0001"],"CorpId":"dingcorp0001"}',
         "user_add_org"),
        ("the encrypted success answer", "success", "1700000000000", "nonce001", "RandomPrefix0003",
         "success", None),
    ]:
        enc = encrypt(EVENT_AES_KEY, random16.encode("ascii"), plaintext, APP_KEY)
        case = {
            "what": what, "kind": kind, "token": EVENT_TOKEN, "encoding_aes_key": EVENT_AES_KEY,
            "receive_id": APP_KEY, "timestamp": ts, "nonce": nonce, "random": random16,
            "plaintext": plaintext, "encrypt": enc, "signature": signature(EVENT_TOKEN, ts, nonce, enc),
        }
        if event_type:
            case["event_type"] = event_type
        cross_check(case)
        cases.append(case)
    return cases


def build():
    cases = []
    for what, ts, secret in [
        ("a typical AppSecret", "1700000000000", "wxgateDingTalkAppSecret0123456789abcdefghijklmnopqrstuvwxyz0123"),
        ("a short secret", "1577262236757", "s3cret"),
        ("a secret longer than the HMAC block", "1700000123456", "x" * 100),
    ]:
        s = sign(ts, secret)
        assert s == sign_by_hand(ts, secret), what
        cases.append({"what": what, "timestamp": ts, "app_secret": secret, "sign": s})
    return {
        "about": "DingTalk robot callback signature and encrypted event callback vectors; generated by scripts/gen_dingtalk_vectors.py, do not edit",
        "sign": cases,
        "events": event_cases(),
    }


if __name__ == "__main__":
    vectors_file.main(__doc__.splitlines()[0], OUT, build, "dingtalk")
