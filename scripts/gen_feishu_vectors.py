#!/usr/bin/env python3
"""Generate the Feishu/Lark event crypto vectors in tests/fixtures/feishu/.

Written from Feishu's public documentation (docs/platforms/feishu.md lists
the pages), independently of wxgate's Rust code, with the `cryptography`
package for AES:

  * an encrypted body is {"encrypt": base64(iv || AES-256-CBC(PKCS7(plain)))}
    with key = SHA-256(Encrypt Key) and a 16-byte iv in front;
  * X-Lark-Signature = hex(SHA-256(timestamp + nonce + Encrypt Key + body)).

Everything is deterministic (fixed keys, ivs, timestamps and nonces), so a
re-run reproduces vectors.json byte for byte. Every vector is checked before
it is written: each ciphertext decrypts back to its plaintext with a second,
separately written decryption, and the padding is verified.

Usage (the venv comes from scripts/ensure_pyenv.sh):
  "$(scripts/ensure_pyenv.sh)" scripts/gen_feishu_vectors.py           # (re)write
  "$(scripts/ensure_pyenv.sh)" scripts/gen_feishu_vectors.py --check   # compare only
"""
import base64
import hashlib
import json
import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import vectors_file

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO_ROOT, "tests", "fixtures", "feishu", "vectors.json")

# The key of the Feishu documentation's own decryption example, and one of ours.
KEYS = ["test key", "wxgateFeishuEncryptKey2026"]
# The documentation's example ciphertext ("事件订阅 / Encrypt Key" page): with
# the key "test key" it decrypts to "hello world". A known answer from the
# platform itself, not generated here.
DOCUMENTED = "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="


def aes_key(encrypt_key):
    return hashlib.sha256(encrypt_key.encode("utf-8")).digest()


def encrypt(encrypt_key, plain, iv):
    padder = padding.PKCS7(128).padder()
    data = padder.update(plain.encode("utf-8")) + padder.finalize()
    enc = Cipher(algorithms.AES(aes_key(encrypt_key)), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(data) + enc.finalize()).decode("ascii")


def decrypt(encrypt_key, encrypted):
    """A second implementation: raw CBC decryption and a hand-checked padding."""
    raw = base64.b64decode(encrypted)
    iv, body = raw[:16], raw[16:]
    dec = Cipher(algorithms.AES(aes_key(encrypt_key)), modes.CBC(iv)).decryptor()
    data = dec.update(body) + dec.finalize()
    pad = data[-1]
    assert 1 <= pad <= 16 and data[-pad:] == bytes([pad]) * pad, "bad padding"
    return data[:-pad].decode("utf-8")


def signature(timestamp, nonce, encrypt_key, body):
    h = hashlib.sha256()
    h.update((timestamp + nonce + encrypt_key).encode("utf-8"))
    h.update(body.encode("utf-8"))
    return h.hexdigest()


def compact(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


APP_ID = "cli_wxgatefixture01"
VERIFICATION_TOKEN = "wxgateFeishuVerificationToken"

URL_VERIFICATION = compact({
    "challenge": "ajls384kdjx98XX",
    "token": VERIFICATION_TOKEN,
    "type": "url_verification",
})

MESSAGE_EVENT = compact({
    "schema": "2.0",
    "header": {
        "event_id": "5e3702a84e847582be8db7fb73283c02",
        "event_type": "im.message.receive_v1",
        "create_time": "1700000000000",
        "token": VERIFICATION_TOKEN,
        "app_id": APP_ID,
        "tenant_key": "2ca1d211f64f6438",
    },
    "event": {
        "sender": {
            "sender_id": {"open_id": "ou_84aad35d084aa403a838cf73ee18467", "user_id": "e33ggbyz", "union_id": "on_8ed6aa67826108097d9ee143816345"},
            "sender_type": "user",
            "tenant_key": "2ca1d211f64f6438",
        },
        "message": {
            "message_id": "om_5ce6d572455d361153b7cb51da133945",
            "create_time": "1700000000000",
            "chat_id": "oc_5ce6d572455d361153b7cb51da133945",
            "chat_type": "p2p",
            "message_type": "text",
            "content": compact({"text": "你好 wxgate"}),
        },
    },
})


def build():
    decrypt_cases = []
    assert decrypt(KEYS[0], DOCUMENTED) == "hello world", "the documented example"
    documented_iv = base64.b64decode(DOCUMENTED)[:16]
    plains = [
        ("the documentation's example (its iv, its ciphertext)", KEYS[0], "hello world", documented_iv),
        ("an encrypted url_verification", KEYS[1], URL_VERIFICATION, bytes([0x11] * 16)),
        ("an encrypted im.message.receive_v1", KEYS[1], MESSAGE_EVENT, bytes(range(16, 32))),
        ("a plaintext of exactly one block (a whole block of padding)", KEYS[1], "0123456789abcdef", bytes([0xA5] * 16)),
    ]
    for what, key, plain, iv in plains:
        sealed = encrypt(key, plain, iv)
        assert decrypt(key, sealed) == plain, what
        if key == KEYS[0]:
            assert sealed == DOCUMENTED, "encryption reproduces the documented ciphertext"
        decrypt_cases.append({
            "what": what,
            "encrypt_key": key,
            "aes_key_hex": aes_key(key).hex(),
            "iv_hex": iv.hex(),
            "plaintext": plain,
            "encrypt": sealed,
        })
    signature_cases = []
    for what, key, ts, nonce, body in [
        ("a signed encrypted body", KEYS[1], "1700000000", "13541", compact({"encrypt": decrypt_cases[2]["encrypt"]})),
        ("a signed plain event", KEYS[1], "1700000123", "xyz-nonce", MESSAGE_EVENT),
    ]:
        sig = signature(ts, nonce, key, body)
        assert len(sig) == 64
        signature_cases.append({
            "what": what,
            "encrypt_key": key,
            "timestamp": ts,
            "nonce": nonce,
            "body": body,
            "signature": sig,
        })
    return {
        "about": "Feishu/Lark event crypto vectors; generated by scripts/gen_feishu_vectors.py, do not edit",
        "app_id": APP_ID,
        "verification_token": VERIFICATION_TOKEN,
        "decrypt": decrypt_cases,
        "signature": signature_cases,
    }


if __name__ == "__main__":
    vectors_file.main(__doc__.splitlines()[0], OUT, build, "feishu")
