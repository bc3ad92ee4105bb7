#!/usr/bin/env python3
"""Generate the recorded WeChat callback fixtures under tests/fixtures/.

Every fixture is built deterministically (fixed account, CreateTime, MsgId,
nonces and 16-byte random prefixes), so re-running this script reproduces the
files byte for byte.  Encryption, signing and parsing are done with the
independent reference implementation wechatpy==1.8.18, cross-checked by a small
`cryptography`-based implementation, and every output is asserted before it is
written:

  * each plain XML parses with ElementTree, has root <xml>, the fixture
    account's ToUserName/FromUserName and the expected CreateTime;
  * wechatpy's parse_message dispatches it to the expected class;
  * each compatible/safe body decrypts with
    WeChatCrypto(token, key, app_id).decrypt_message(body, msg_signature,
    timestamp, nonce) back to exactly the plain XML;
  * each `signature` passes wechatpy.utils.check_signature;
  * the deliberately malformed bodies in xml/bad/ fail the way they should.

Usage (the venv comes from scripts/ensure_pyenv.sh):
  "$(scripts/ensure_pyenv.sh)" scripts/gen_fixtures.py           # (re)write
  "$(scripts/ensure_pyenv.sh)" scripts/gen_fixtures.py --check   # compare only

--check exits non-zero if any generated file differs from the one on disk, is
missing, or if a stale generated-looking file exists in the fixture folders.
"""
import argparse
import base64
import hashlib
import json
import os
import struct
import sys
import xml.etree.ElementTree as ET
from urllib.parse import quote

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import importlib.metadata
import wechatpy
import wechatpy.crypto as wp_crypto
from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise.crypto import PrpCrypto as WeComPrpCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.enterprise.parser import parse_message as parse_wecom_message
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.parser import parse_message
from wechatpy.utils import check_signature

WECHATPY_VERSION = "1.8.18"

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO_ROOT, "tests", "fixtures")

# --------------------------------------------------------------------------
# the fixture account
# --------------------------------------------------------------------------
ACCOUNT = {
    "token": "wxgateFixtureToken2023",  # 3-32 letters/digits, as the WeChat console requires
    # 43 chars of [A-Za-z0-9]; the last char 'd' (value 29 = 0b011101) leaves the
    # 2 surplus bits set, so a strict base64 decoder rejects it (PROTOCOL.md §3.1)
    "encoding_aes_key": "Wx9gAteF1xTuReK3yT3stOnlyN0tAS3cr3tQ7mZpL4d",
    "app_id": "wx5f3a9c2e7b1d4068",
    "original_id": "gh_3c8e1f2a9b7d",
    "openid": "oX7kQ9mTzB4v-Lw2nR_c8YpE3sHd",
}

FIRST_CREATE_TIME = 1700000000
# MsgIds: 64-bit, > 2^53 and chosen so that an f64 cannot hold them exactly
# (PROTOCOL.md §9 trap 14).  Spacing 1117 keeps them distinct and odd-looking.
FIRST_MSG_ID = 7385641329876543201
MSG_ID_STEP = 1117

# --------------------------------------------------------------------------
# the message kinds: (name, PROTOCOL.md §4 sample it derives from,
#                     expected wechatpy class, body template)
# Placeholders: {to} {frm} {ct} {msgid} {app_id}
# --------------------------------------------------------------------------
H = ("<ToUserName><![CDATA[{to}]]></ToUserName><FromUserName><![CDATA[{frm}]]></FromUserName>"
     "<CreateTime>{ct}</CreateTime>")


def ev(event):
    return H + "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[%s]]></Event>" % event


KINDS = [
    ("text", "§4 text", "TextMessage",
     H + "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello wxgate]]></Content>"
         "<MsgId>{msgid}</MsgId>"),
    ("text_no_cdata", "§4 text, every string field without CDATA (as in WeCom sample 2); "
                      "Content uses &lt; &gt; &amp; escapes",
     "TextMessage",
     "<ToUserName>{to}</ToUserName><FromUserName>{frm}</FromUserName><CreateTime>{ct}</CreateTime>"
     "<MsgType>text</MsgType><Content>plain text, no cdata: 5 &lt; 6 &amp;&amp; 7 &gt; 3</Content>"
     "<MsgId>{msgid}</MsgId>"),
    ("text_cdata_terminator", "§4 text; Content `echo x]]>y` split as `]]]]><![CDATA[>` (§9 trap 8)",
     "TextMessage",
     H + "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[echo x]]]]><![CDATA[>y]]></Content>"
         "<MsgId>{msgid}</MsgId>"),
    ("text_emoji", "§4 text; CJK + emoji with skin-tone modifier (§9 traps 6-7)", "TextMessage",
     H + "<MsgType><![CDATA[text]]></MsgType>"
         "<Content><![CDATA[你好，世界 👋🏽 测试😀！]]></Content><MsgId>{msgid}</MsgId>"),
    ("image", "§4 image", "ImageMessage",
     H + "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://mmbiz.qpic.cn/mmbiz_jpg/xyz/0]]></PicUrl>"
         "<MediaId><![CDATA[Xy8pQ2Lm_media_id]]></MediaId><MsgId>{msgid}</MsgId>"),
    ("voice", "§4 voice (Recognition + MediaId16K)", "VoiceMessage",
     H + "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[voice_media_id]]></MediaId>"
         "<Format><![CDATA[amr]]></Format><Recognition><![CDATA[腾讯微信团队]]></Recognition>"
         "<MediaId16K><![CDATA[voice_media_id_16k]]></MediaId16K><MsgId>{msgid}</MsgId>"),
    ("voice_no_recognition", "§4 voice without <Recognition> (speech recognition off)", "VoiceMessage",
     H + "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[voice_media_id_2]]></MediaId>"
         "<Format><![CDATA[amr]]></Format><MediaId16K><![CDATA[voice_media_id_2_16k]]></MediaId16K>"
         "<MsgId>{msgid}</MsgId>"),
    ("video", "§4 video", "VideoMessage",
     H + "<MsgType><![CDATA[video]]></MsgType><MediaId><![CDATA[video_media_id]]></MediaId>"
         "<ThumbMediaId><![CDATA[thumb_media_id]]></ThumbMediaId><MsgId>{msgid}</MsgId>"),
    ("shortvideo", "§4 shortvideo", "ShortVideoMessage",
     H + "<MsgType><![CDATA[shortvideo]]></MsgType><MediaId><![CDATA[sv_media_id]]></MediaId>"
         "<ThumbMediaId><![CDATA[sv_thumb_id]]></ThumbMediaId><MsgId>{msgid}</MsgId>"),
    ("location", "§4 location (Location_X = latitude)", "LocationMessage",
     H + "<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X>"
         "<Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[广州市天河区]]></Label>"
         "<MsgId>{msgid}</MsgId>"),
    ("link", "§4 link", "LinkMessage",
     H + "<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[标题]]></Title>"
         "<Description><![CDATA[描述]]></Description><Url><![CDATA[https://example.com/a]]></Url>"
         "<MsgId>{msgid}</MsgId>"),
    ("event_subscribe", "§4 subscribe (plain, no EventKey)", "SubscribeEvent",
     ev("subscribe")),
    ("event_subscribe_qrscene", "§4 subscribe via parametric QR", "SubscribeScanEvent",
     ev("subscribe") + "<EventKey><![CDATA[qrscene_123123]]></EventKey>"
                       "<Ticket><![CDATA[gQH47joAAAAAAAAAASxodHRw]]></Ticket>"),
    ("event_unsubscribe", "§4 unsubscribe", "UnsubscribeEvent", ev("unsubscribe")),
    ("event_scan", "§4 SCAN", "ScanEvent",
     ev("SCAN") + "<EventKey><![CDATA[123123]]></EventKey><Ticket><![CDATA[gQH47joAAAAAAAAAASxodHRw]]></Ticket>"),
    ("event_location", "§4 LOCATION", "LocationEvent",
     ev("LOCATION") + "<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude>"
                      "<Precision>119.385040</Precision>"),
    ("event_click", "§4 CLICK", "ClickEvent",
     ev("CLICK") + "<EventKey><![CDATA[V1001_TODAY_MUSIC]]></EventKey>"),
    ("event_view", "§4 VIEW (with <MenuId>)", "ViewEvent",
     ev("VIEW") + "<EventKey><![CDATA[https://example.com/m]]></EventKey><MenuId>410418124</MenuId>"),
    ("event_scancode_push", "§4 scancode_push", "ScanCodePushEvent",
     ev("scancode_push") + "<EventKey><![CDATA[rselfmenu_0_1]]></EventKey><ScanCodeInfo>"
                           "<ScanType><![CDATA[qrcode]]></ScanType>"
                           "<ScanResult><![CDATA[http://weixin.qq.com/r/abc]]></ScanResult></ScanCodeInfo>"),
    ("event_scancode_waitmsg", "§4 scancode_waitmsg", "ScanCodeWaitMsgEvent",
     ev("scancode_waitmsg") + "<EventKey><![CDATA[rselfmenu_0_0]]></EventKey><ScanCodeInfo>"
                              "<ScanType><![CDATA[barcode]]></ScanType>"
                              "<ScanResult><![CDATA[EAN_13,6901234567892]]></ScanResult></ScanCodeInfo>"),
    ("event_pic_sysphoto", "§4 pic_sysphoto", "PicSysPhotoEvent",
     ev("pic_sysphoto") + "<EventKey><![CDATA[rselfmenu_1_0]]></EventKey><SendPicsInfo><Count>1</Count>"
                          "<PicList><item><PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]></PicMd5Sum>"
                          "</item></PicList></SendPicsInfo>"),
    ("event_pic_photo_or_album", "§4 pic_photo_or_album (2 pics)", "PicPhotoOrAlbumEvent",
     ev("pic_photo_or_album") + "<EventKey><![CDATA[rselfmenu_1_1]]></EventKey><SendPicsInfo><Count>2</Count>"
                                "<PicList><item><PicMd5Sum><![CDATA[5a75aaca956d97be686719218f275c6b]]>"
                                "</PicMd5Sum></item><item><PicMd5Sum><![CDATA[7c0e9d3b1a2f4e5d6c7b8a9f0e1d2c3b]]>"
                                "</PicMd5Sum></item></PicList></SendPicsInfo>"),
    ("event_pic_weixin", "§4 pic_weixin", "PicWeChatEvent",
     ev("pic_weixin") + "<EventKey><![CDATA[rselfmenu_1_2]]></EventKey><SendPicsInfo><Count>1</Count>"
                        "<PicList><item><PicMd5Sum><![CDATA[5a75aaca956d97be686719218f275c6b]]></PicMd5Sum>"
                        "</item></PicList></SendPicsInfo>"),
    ("event_location_select", "§4 location_select", "LocationSelectEvent",
     ev("location_select") + "<EventKey><![CDATA[rselfmenu_2_0]]></EventKey><SendLocationInfo>"
                             "<Location_X><![CDATA[23]]></Location_X><Location_Y><![CDATA[113]]></Location_Y>"
                             "<Scale><![CDATA[15]]></Scale><Label><![CDATA[广州市海珠区客村艺苑路 106号]]></Label>"
                             "<Poiname><![CDATA[]]></Poiname></SendLocationInfo>"),
    ("event_view_miniprogram", "§4 view_miniprogram", "ViewMiniProgramEvent",
     ev("view_miniprogram") + "<EventKey><![CDATA[pages/index/index]]></EventKey><MenuId>433418371</MenuId>"),
    ("event_templatesendjobfinish", "§4 TEMPLATESENDJOBFINISH (<MsgID>, capital D)",
     "TemplateSendJobFinishEvent",
     ev("TEMPLATESENDJOBFINISH") + "<MsgID>3487542469355618313</MsgID><Status><![CDATA[success]]></Status>"),
    ("event_masssendjobfinish", "§4 MASSSENDJOBFINISH (<MsgID>)", "MassSendJobFinishEvent",
     ev("MASSSENDJOBFINISH") + "<MsgID>1000001625</MsgID><Status><![CDATA[send success]]></Status>"
                               "<TotalCount>100</TotalCount><FilterCount>80</FilterCount>"
                               "<SentCount>75</SentCount><ErrorCount>5</ErrorCount>"),
    # miniprogrampage is a real push (mini-program card sent to customer service) that
    # wxgate does not model: it must come out as an "unknown" message keeping every field.
    # wechatpy happens to know it (MiniProgramPageMessage).
    ("unknown_msgtype", "not in §4: mini-program card message (MsgType miniprogrampage), "
                        "field order as in the customer-service message doc",
     "MiniProgramPageMessage",
     H + "<MsgType><![CDATA[miniprogrampage]]></MsgType><MsgId>{msgid}</MsgId>"
         "<Title><![CDATA[小程序卡片]]></Title><AppId><![CDATA[wx2b3c4d5e6f708192]]></AppId>"
         "<PagePath><![CDATA[pages/index/index?id=42]]></PagePath>"
         "<ThumbUrl><![CDATA[http://mmbiz.qpic.cn/mmbiz_jpg/thumb/0]]></ThumbUrl>"
         "<ThumbMediaId><![CDATA[mini_thumb_media_id]]></ThumbMediaId>"),
    ("unknown_event", "not in §4: event user_info_modified with extra fields (OpenID, AppID, RevokeInfo)",
     "UnknownMessage",
     ev("user_info_modified") + "<OpenID><![CDATA[{frm}]]></OpenID><AppID><![CDATA[{app_id}]]></AppID>"
                                "<RevokeInfo><![CDATA[301]]></RevokeInfo>"),
]

MODES = ("plain", "compatible", "safe")


# --------------------------------------------------------------------------
# deterministic "randomness"
# --------------------------------------------------------------------------
def _digest(*parts):
    return hashlib.sha256("/".join(("wxgate-fixtures",) + parts).encode("utf-8")).digest()


def fixed_nonce(name, mode):
    """9-10 digit decimal nonce, like the ones WeChat sends."""
    n = int.from_bytes(_digest("nonce", name, mode)[:8], "big")
    return str(100000000 + n % 3900000000)


ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def fixed_random16(name, mode):
    """16 alphanumerics, the alphabet wechatpy/Java/PHP use for the prefix."""
    return "".join(ALNUM[b % len(ALNUM)] for b in _digest("random", name, mode)[:16]).encode("ascii")


# --------------------------------------------------------------------------
# crypto: wechatpy with a fixed prefix, cross-checked by `cryptography`
# --------------------------------------------------------------------------
def aes_key(encoding_aes_key):
    key = base64.b64decode(encoding_aes_key + "=")  # lenient about the surplus bits
    assert len(key) == 32
    return key


def wechatpy_encrypt(msg, rand16):
    """Encrypt with wechatpy's own PrpCrypto, only the random prefix pinned."""
    pc = wp_crypto.PrpCrypto(aes_key(ACCOUNT["encoding_aes_key"]))
    pc.get_random_string = lambda: rand16
    return pc.encrypt(msg, ACCOUNT["app_id"]).decode("ascii")


def reference_encrypt(msg, rand16, encoding_aes_key=None, receive_id=None):
    """Independent implementation: AES-256-CBC, IV = key[:16], 32-byte PKCS#7.

    Defaults to the OA fixture account; the WeCom fixtures pass their own key
    and the corp id."""
    key = aes_key(encoding_aes_key or ACCOUNT["encoding_aes_key"])
    raw = msg.encode("utf-8")
    receive_id = receive_id or ACCOUNT["app_id"]
    data = rand16 + struct.pack(">I", len(raw)) + raw + receive_id.encode("ascii")
    n = 32 - len(data) % 32
    data += bytes([n]) * n
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode("ascii")


def reference_decrypt(encrypt, encoding_aes_key):
    """Independent decryption: returns (random16, msg, receive_id); checks the padding."""
    key = aes_key(encoding_aes_key)
    raw = base64.b64decode(encrypt, validate=True)
    assert len(raw) % 32 == 0
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    data = dec.update(raw) + dec.finalize()
    n = data[-1]
    assert 1 <= n <= 32 and data[-n:] == bytes([n]) * n
    data = data[:-n]
    (msg_len,) = struct.unpack(">I", data[16:20])
    return data[:16], data[20:20 + msg_len].decode("utf-8"), data[20 + msg_len:].decode("ascii")


def sha1_sorted(*parts):
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def query_string(pairs):
    return "&".join("%s=%s" % (k, quote(v, safe="")) for k, v in pairs)


# --------------------------------------------------------------------------
# building and checking one kind
# --------------------------------------------------------------------------
def xml_text(elem, tag):
    child = elem.find(tag)
    return None if child is None else (child.text or "")


def build_kind(index, name, source, expected_class, template, msg_id):
    ct = FIRST_CREATE_TIME + index
    plain = "<xml>" + template.format(
        to=ACCOUNT["original_id"], frm=ACCOUNT["openid"], ct=ct, msgid=msg_id,
        app_id=ACCOUNT["app_id"]) + "</xml>"

    # -- plain XML checks
    root = ET.fromstring(plain.encode("utf-8"))
    assert root.tag == "xml", name
    assert xml_text(root, "ToUserName") == ACCOUNT["original_id"], name
    assert xml_text(root, "FromUserName") == ACCOUNT["openid"], name
    assert xml_text(root, "CreateTime") == str(ct), name
    msg_type = xml_text(root, "MsgType")
    assert msg_type, name
    if msg_type != "event":
        assert xml_text(root, "MsgId") == str(msg_id), name
        assert msg_id > 2 ** 53 and int(float(msg_id)) != msg_id, name
    else:
        assert root.find("MsgId") is None, name
    if name == "text_cdata_terminator":
        assert xml_text(root, "Content") == "echo x]]>y", name
    if name == "text_no_cdata":
        assert "CDATA" not in plain and xml_text(root, "Content") == "plain text, no cdata: 5 < 6 && 7 > 3"
    parsed = parse_message(plain)
    assert type(parsed).__name__ == expected_class, (name, type(parsed).__name__)

    files = {}
    modes_info = {}
    ts = str(ct)
    crypto = WeChatCrypto(ACCOUNT["token"], ACCOUNT["encoding_aes_key"], ACCOUNT["app_id"])
    for mode in MODES:
        nonce = fixed_nonce(name, mode)
        signature = sha1_sorted(ACCOUNT["token"], ts, nonce)
        check_signature(ACCOUNT["token"], signature, ts, nonce)  # raises on mismatch
        pairs = [("signature", signature), ("timestamp", ts), ("nonce", nonce),
                 ("openid", ACCOUNT["openid"])]
        info = {"nonce": nonce, "signature": signature}
        if mode == "plain":
            body = plain
        else:
            rand16 = fixed_random16(name, mode)
            encrypt = wechatpy_encrypt(plain, rand16)
            assert encrypt == reference_encrypt(plain, rand16), name
            msg_signature = sha1_sorted(ACCOUNT["token"], ts, nonce, encrypt)
            enc_elem = "<Encrypt><![CDATA[%s]]></Encrypt>" % encrypt
            if mode == "compatible":
                assert plain.endswith("</xml>")
                body = plain[:-len("</xml>")] + enc_elem + "</xml>"
            else:
                body = ("<xml><ToUserName><![CDATA[%s]]></ToUserName>%s</xml>"
                        % (ACCOUNT["original_id"], enc_elem))
            pairs += [("encrypt_type", "aes"), ("msg_signature", msg_signature)]
            info.update(random16=rand16.decode("ascii"), msg_signature=msg_signature)

            # -- the body must decrypt with wechatpy to exactly the plain XML
            body_root = ET.fromstring(body.encode("utf-8"))
            assert body_root.tag == "xml"
            tags = [c.tag for c in body_root]
            if mode == "compatible":
                assert tags == [c.tag for c in root] + ["Encrypt"], name
            else:
                assert tags == ["ToUserName", "Encrypt"], name
            decrypted = crypto.decrypt_message(body, msg_signature, ts, nonce)
            assert decrypted == plain, (name, mode)
            assert type(parse_message(decrypted)).__name__ == expected_class, (name, mode)
            # and a wrong msg_signature must be refused by wechatpy
            try:
                crypto.decrypt_message(body, signature, ts, nonce)
            except InvalidSignatureException:
                pass
            else:
                raise AssertionError("wechatpy accepted `signature` as msg_signature: %s" % name)

        q = query_string(pairs)
        assert "\n" not in q
        files["xml/%s/%s.xml" % (mode, name)] = body.encode("utf-8")
        files["xml/%s/%s.query" % (mode, name)] = q.encode("ascii")
        modes_info[mode] = info

    manifest = {
        "source": "PROTOCOL.md " + source if source.startswith("§") else source,
        "create_time": ct,
        "msg_type": msg_type,
        "event": xml_text(root, "Event"),
        "msg_id": str(msg_id) if msg_type != "event" else None,
        "wechatpy_class": expected_class,
        # top-level leaf elements as an XML parser must decode them (CDATA unwrapped,
        # entities resolved); nested blocks (ScanCodeInfo, SendPicsInfo, ...) omitted
        "fields": {c.tag: (c.text or "") for c in root if len(c) == 0},
        "modes": modes_info,
    }
    return files, manifest


# --------------------------------------------------------------------------
# deliberately malformed bodies
# --------------------------------------------------------------------------
def bad_bodies():
    to, frm = ACCOUNT["original_id"], ACCOUNT["openid"]
    head = ("<ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"
            % (to, frm))
    ct = FIRST_CREATE_TIME + 1000
    text = (head + "<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            "<Content><![CDATA[hello]]></Content><MsgId>%d</MsgId>" % (ct, FIRST_MSG_ID - 1))
    # "billion laughs" shape, bounded to 5 levels (10^5 x "lol" = 300 KB if expanded)
    # so that a parser that wrongly expands it fails the test rather than the machine.
    ents = ['<!ENTITY lol "lol">']
    prev = "lol"
    for i in range(1, 6):
        cur = "lol%d" % i
        ents.append('<!ENTITY %s "%s">' % (cur, ("&%s;" % prev) * 10))
        prev = cur
    doctype = ('<?xml version="1.0"?>\n<!DOCTYPE xml [\n  <!ELEMENT xml ANY>\n  '
               + "\n  ".join(ents) + "\n]>\n")
    return {
        "doctype_entity.xml": doctype + "<xml>" + head
        + "<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>&lol5;</Content>"
          "<MsgId>%d</MsgId></xml>" % (ct + 1, FIRST_MSG_ID - 2),
        "xxe_external.xml": '<?xml version="1.0"?>\n<!DOCTYPE xml [\n  <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'
        + "<xml>" + head + "<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType>"
          "<Content>&xxe;</Content><MsgId>%d</MsgId></xml>" % (ct + 2, FIRST_MSG_ID - 3),
        # cut in the middle of the Content element, no closing tags
        "truncated.xml": ("<xml>" + text)[: ("<xml>" + text).index("<Content>") + len("<Content><![CDATA[hel")],
        "not_xml.txt": '{"ToUserName":"%s","FromUserName":"%s","CreateTime":%d,"MsgType":"text","Content":"hello"}'
                       % (to, frm, ct + 3),
        "missing_msgtype.xml": "<xml>" + head + "<CreateTime>%d</CreateTime>"
                               "<Content><![CDATA[hello]]></Content><MsgId>%d</MsgId></xml>"
                               % (ct + 4, FIRST_MSG_ID - 4),
        "empty.xml": "",
        "wrong_root.xml": "<message>" + head + "<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                          "<Content><![CDATA[hello]]></Content><MsgId>%d</MsgId></message>"
                          % (ct + 5, FIRST_MSG_ID - 5),
        "text_missing_content.xml": "<xml>" + head + "<CreateTime>%d</CreateTime>"
                                    "<MsgType><![CDATA[text]]></MsgType><MsgId>%d</MsgId></xml>"
                                    % (ct + 6, FIRST_MSG_ID - 6),
    }


def check_bad(name, body):
    def parse():
        return ET.fromstring(body.encode("utf-8"))

    def must_fail():
        try:
            parse()
        except ET.ParseError:
            return
        raise AssertionError("bad/%s parsed but should not" % name)

    if name == "doctype_entity.xml":
        # expat expands internal entities: that is exactly the danger being pinned
        assert "<!DOCTYPE" in body and "<!ENTITY lol5" in body
        assert xml_text(parse(), "Content") == "lol" * 10 ** 5
    elif name == "xxe_external.xml":
        assert 'SYSTEM "file:///etc/passwd"' in body
        try:
            content = xml_text(parse(), "Content")
        except ET.ParseError:
            content = None  # expat refuses the undefined external entity: fine
        assert not content or "root:" not in content
    elif name in ("truncated.xml", "not_xml.txt", "empty.xml"):
        must_fail()
    elif name == "missing_msgtype.xml":
        r = parse()
        assert r.tag == "xml" and r.find("MsgType") is None and r.find("Content") is not None
    elif name == "wrong_root.xml":
        r = parse()
        assert r.tag == "message" and xml_text(r, "MsgType") == "text"
    elif name == "text_missing_content.xml":
        r = parse()
        assert r.tag == "xml" and xml_text(r, "MsgType") == "text" and r.find("Content") is None
    else:
        raise AssertionError(name)


# --------------------------------------------------------------------------
# WeCom (企业微信): pushes to a self-built app's callback URL, and the
# 微信客服 notification that arrives through the same callback
# --------------------------------------------------------------------------
WECOM_ACCOUNT = {
    "token": "wxgateWecomFixture2024",  # letters/digits, 3-32, as the WeCom console requires
    # 43 chars; the last char 'F' (value 5 = 0b000101) leaves the 2 surplus bits
    # set, like the OA key, so a strict base64 decoder rejects it
    "encoding_aes_key": "Wc0mG4teF1xtur3KeyQ7sN2vB9xR4tY6uP8oL3kJ5hF",
    # receive_id inside every Encrypt payload; the fake WeCom API uses the same corp id
    "corp_id": "ww5d3c1b9a7e2f4086",
    "agent_id": 1000002,
    "user_id": "LiLei",  # FromUserName of member messages and events
    "open_kfid": "wkQx7T2gAAAwxgateFixtureKf0001Zq",  # 微信客服 account of the notification
}

WECOM_FIRST_CREATE_TIME = 1700100000
# 64-bit like the OA MsgIds: > 2^53 and not exactly representable as an f64
WECOM_FIRST_MSG_ID = 7391806524193857031

# Header of a member message or event; {corp} {user} {ct} {msgid} {agent} {kfid} {kftoken}
WH = ("<ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
      "<CreateTime>{ct}</CreateTime>")


def wev(event):
    return WH + "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[%s]]></Event>" % event


AGENT = "<AgentID>{agent}</AgentID>"

# (name, where the shape comes from, expected wechatpy.enterprise class, template)
WECOM_KINDS = [
    ("text", "WeCom doc 接收消息 / 消息格式: text, with MsgId and AgentID", "enterprise.messages.TextMessage",
     WH + "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好 wxgate 👋]]></Content>"
          "<MsgId>{msgid}</MsgId>" + AGENT),
    ("image", "WeCom doc 消息格式: image", "enterprise.messages.ImageMessage",
     WH + "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[https://wework.qpic.cn/wwpic/fixture/0]]></PicUrl>"
          "<MediaId><![CDATA[wecom_image_media_id]]></MediaId><MsgId>{msgid}</MsgId>" + AGENT),
    ("event_click", "WeCom doc 事件格式: 点击菜单拉取消息 (Event `click`, lower case in WeCom)",
     "enterprise.events.ClickEvent",
     wev("click") + "<EventKey><![CDATA[wxgate_menu_help]]></EventKey>" + AGENT),
    ("event_enter_agent", "WeCom doc 事件格式: 进入应用 (EventKey present and empty)",
     "enterprise.events.EnterAgentEvent",
     wev("enter_agent") + "<EventKey><![CDATA[]]></EventKey>" + AGENT),
    ("event_location", "WeCom doc 事件格式: 上报地理位置 (upper-case LOCATION, AppType wxwork)",
     "enterprise.events.LocationEvent",
     wev("LOCATION") + "<Latitude>23.104105</Latitude><Longitude>113.320107</Longitude>"
                       "<Precision>65.000000</Precision>" + AGENT + "<AppType><![CDATA[wxwork]]></AppType>"),
    # FromUserName is `sys`, ChangeType is bare text and there is no AgentID in the
    # documented samples; since August 2022 new callback URLs get only UserID/Department.
    ("event_change_contact", "WeCom doc 通讯录变更事件: 更新成员 (update_user); FromUserName sys, no AgentID",
     "messages.UnknownMessage",
     "<ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
     "<CreateTime>{ct}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
     "<Event><![CDATA[change_contact]]></Event><ChangeType>update_user</ChangeType>"
     "<UserID><![CDATA[{user}]]></UserID><Department><![CDATA[1,2]]></Department>"),
    ("event_kf_msg_or_event", "PROTOCOL.md §4 微信客服 notification: no FromUserName, no AgentID, "
                              "Token for kf/sync_msg and OpenKfId",
     "messages.UnknownMessage",
     "<ToUserName><![CDATA[{corp}]]></ToUserName><CreateTime>{ct}</CreateTime>"
     "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
     "<Token><![CDATA[{kftoken}]]></Token><OpenKfId><![CDATA[{kfid}]]></OpenKfId>"),
]


def wecom_kf_token():
    """A callback Token shaped like the documented one: ENC + 44 letters/digits."""
    return "ENC" + "".join(ALNUM[b % len(ALNUM)] for b in _digest("kf-token") + _digest("kf-token-2"))[:44]


def wecom_encrypt(msg, rand16):
    """Encrypt with wechatpy's enterprise PrpCrypto (receive id = corp id), prefix pinned."""
    pc = WeComPrpCrypto(aes_key(WECOM_ACCOUNT["encoding_aes_key"]))
    pc.get_random_string = lambda: rand16
    out = pc.encrypt(msg, WECOM_ACCOUNT["corp_id"]).decode("ascii")
    assert out == reference_encrypt(msg, rand16, WECOM_ACCOUNT["encoding_aes_key"], WECOM_ACCOUNT["corp_id"])
    assert reference_decrypt(out, WECOM_ACCOUNT["encoding_aes_key"]) == (rand16, msg, WECOM_ACCOUNT["corp_id"])
    return out


def wechatpy_class_name(obj):
    return "%s.%s" % (type(obj).__module__[len("wechatpy."):], type(obj).__name__)


def build_wecom_kind(index, name, source, expected_class, template, msg_id):
    acct = WECOM_ACCOUNT
    ct = WECOM_FIRST_CREATE_TIME + index
    plain = "<xml>" + template.format(
        corp=acct["corp_id"], user=acct["user_id"], ct=ct, msgid=msg_id, agent=acct["agent_id"],
        kfid=acct["open_kfid"], kftoken=wecom_kf_token()) + "</xml>"

    # -- plain XML checks
    root = ET.fromstring(plain.encode("utf-8"))
    assert root.tag == "xml", name
    assert xml_text(root, "ToUserName") == acct["corp_id"], name
    assert xml_text(root, "CreateTime") == str(ct), name
    msg_type = xml_text(root, "MsgType")
    event = xml_text(root, "Event")
    agent = xml_text(root, "AgentID")
    if msg_type != "event":
        assert xml_text(root, "MsgId") == str(msg_id), name
        assert msg_id > 2 ** 53 and int(float(msg_id)) != msg_id, name
    else:
        assert root.find("MsgId") is None, name
    if event == "kf_msg_or_event":
        assert root.find("FromUserName") is None and agent is None, name
        assert xml_text(root, "OpenKfId") == acct["open_kfid"] and xml_text(root, "Token").startswith("ENC")
    elif event == "change_contact":
        assert xml_text(root, "FromUserName") == "sys" and agent is None, name
        assert xml_text(root, "ChangeType") == "update_user" and xml_text(root, "UserID") == acct["user_id"]
    else:
        assert xml_text(root, "FromUserName") == acct["user_id"], name
        assert agent == str(acct["agent_id"]), name
    parsed = parse_wecom_message(plain)
    assert wechatpy_class_name(parsed) == expected_class, (name, wechatpy_class_name(parsed))
    if agent is not None:
        assert parsed.agent == acct["agent_id"], name

    # -- the encrypted POST, as WeCom sends it
    ts = str(ct)
    nonce = fixed_nonce(name, "wecom")
    rand16 = fixed_random16(name, "wecom")
    encrypt = wecom_encrypt(plain, rand16)
    msg_signature = sha1_sorted(acct["token"], ts, nonce, encrypt)
    body = ("<xml><ToUserName><![CDATA[%s]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt>%s</xml>"
            % (acct["corp_id"], encrypt,
               "" if agent is None else "<AgentID><![CDATA[%s]]></AgentID>" % agent))
    body_root = ET.fromstring(body.encode("utf-8"))
    assert [c.tag for c in body_root] == ["ToUserName", "Encrypt"] + ([] if agent is None else ["AgentID"])
    crypto = WeComCrypto(acct["token"], acct["encoding_aes_key"], acct["corp_id"])
    assert crypto.decrypt_message(body, msg_signature, ts, nonce) == plain, name
    for wrong in (
        lambda: crypto.decrypt_message(body, sha1_sorted(acct["token"], ts, nonce), ts, nonce),
        lambda: WeComCrypto(acct["token"], acct["encoding_aes_key"], "ww0000000000000000")
        .decrypt_message(body, msg_signature, ts, nonce),
    ):
        try:
            wrong()
        except (InvalidSignatureException, InvalidCorpIdException):
            pass
        else:
            raise AssertionError("wechatpy accepted a wrong signature or corp id: %s" % name)

    files = {
        "wecom/plain/%s.xml" % name: plain.encode("utf-8"),
        "wecom/encrypted/%s.xml" % name: body.encode("utf-8"),
    }
    manifest = {
        "source": source,
        "create_time": ct,
        "msg_type": msg_type,
        "event": event,
        "msg_id": str(msg_id) if msg_type != "event" else None,
        "agent_id": None if agent is None else int(agent),
        "wechatpy_class": expected_class,
        "fields": {c.tag: (c.text or "") for c in root if len(c) == 0},
        "query": {"msg_signature": msg_signature, "timestamp": ts, "nonce": nonce},
        "random16": rand16.decode("ascii"),
    }
    return files, manifest


def build_wecom_verify():
    """The GET URL verification: an encrypted echostr whose base64 has '+' and '/'."""
    acct = WECOM_ACCOUNT
    ts = str(WECOM_FIRST_CREATE_TIME + 1000)
    nonce = fixed_nonce("verify", "wecom")
    # WeCom's echostr plaintext is a decimal number (19 digits in the official samples)
    reply = str(10 ** 18 + int.from_bytes(_digest("verify", "echostr")[:8], "big") % (9 * 10 ** 18))
    for attempt in range(1000):
        rand16 = fixed_random16("verify#%d" % attempt, "wecom")
        echostr = wecom_encrypt(reply, rand16)
        if "+" in echostr and "/" in echostr:
            break
    else:
        raise AssertionError("no echostr with both '+' and '/'")
    msg_signature = sha1_sorted(acct["token"], ts, nonce, echostr)
    crypto = WeComCrypto(acct["token"], acct["encoding_aes_key"], acct["corp_id"])
    assert crypto.check_signature(msg_signature, ts, nonce, echostr) == reply
    get_query = query_string([("msg_signature", msg_signature), ("timestamp", ts), ("nonce", nonce),
                              ("echostr", echostr)])
    assert "%2B" in get_query and "%2F" in get_query and "+" not in get_query and "/" not in get_query
    return {
        "timestamp": ts,
        "nonce": nonce,
        "echostr": echostr,
        "msg_signature": msg_signature,
        "random16": rand16.decode("ascii"),
        "get_query": get_query,
        "expected_response_body": reply,
    }


def generate_wecom():
    acct = WECOM_ACCOUNT
    key_last = ALNUM.index(acct["encoding_aes_key"][-1])
    assert len(acct["encoding_aes_key"]) == 43 and key_last & 3, "key must have non-zero trailing bits"
    assert len(acct["corp_id"]) == 18 and acct["corp_id"].startswith("ww")
    files = {}
    manifest = {
        "generator": "scripts/gen_fixtures.py",
        "wechatpy": WECHATPY_VERSION,
        "account": "account.json",
        "kinds": {},
        "verify": build_wecom_verify(),
    }
    names = [k[0] for k in WECOM_KINDS]
    assert len(set(names)) == len(names)
    msg_id = WECOM_FIRST_MSG_ID
    for index, (name, source, cls, template) in enumerate(WECOM_KINDS):
        kind_files, info = build_wecom_kind(index, name, source, cls, template, msg_id)
        if info["msg_type"] != "event":
            msg_id += MSG_ID_STEP
        files.update(kind_files)
        manifest["kinds"][name] = info
    files["wecom/account.json"] = (json.dumps(acct, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    files["wecom/manifest.json"] = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return files


# --------------------------------------------------------------------------
def generate():
    installed = importlib.metadata.version("wechatpy")
    if installed != WECHATPY_VERSION:
        raise SystemExit("gen_fixtures: need wechatpy==%s, found %s (use scripts/ensure_pyenv.sh)"
                         % (WECHATPY_VERSION, installed))
    key_last = ALNUM.index(ACCOUNT["encoding_aes_key"][-1])  # A-Z a-z 0-9 = base64 order
    assert len(ACCOUNT["encoding_aes_key"]) == 43 and key_last & 3, "key must have non-zero trailing bits"

    files = {}
    manifest = {
        "generator": "scripts/gen_fixtures.py",
        "wechatpy": WECHATPY_VERSION,
        "account": "account.json",
        "kinds": {},
        "bad": {},
    }
    names = [k[0] for k in KINDS]
    assert len(set(names)) == len(names)
    msg_id = FIRST_MSG_ID
    for index, (name, source, cls, template) in enumerate(KINDS):
        kind_files, info = build_kind(index, name, source, cls, template, msg_id)
        if info["msg_type"] != "event":
            msg_id += MSG_ID_STEP
        files.update(kind_files)
        manifest["kinds"][name] = info

    # bad bodies: each gets a plaintext-mode signed query so a test can get past
    # signature verification and hit the body error path
    for j, (name, body) in enumerate(sorted(bad_bodies().items())):
        check_bad(name, body)
        ts = str(FIRST_CREATE_TIME + 2000 + j)
        stem = name.rsplit(".", 1)[0]
        nonce = fixed_nonce("bad_" + stem, "plain")
        signature = sha1_sorted(ACCOUNT["token"], ts, nonce)
        files["xml/bad/" + name] = body.encode("utf-8")
        files["xml/bad/%s.query" % stem] = query_string(
            [("signature", signature), ("timestamp", ts), ("nonce", nonce),
             ("openid", ACCOUNT["openid"])]).encode("ascii")
        manifest["bad"][name] = {"query": "%s.query" % stem, "timestamp": int(ts), "nonce": nonce}

    files["account.json"] = (json.dumps(ACCOUNT, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    files["xml/manifest.json"] = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    files.update(generate_wecom())
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="compare with the files on disk instead of writing")
    args = ap.parse_args()

    files = generate()
    if args.check:
        bad = 0
        for rel, data in sorted(files.items()):
            path = os.path.join(FIXTURES, rel)
            try:
                with open(path, "rb") as f:
                    if f.read() != data:
                        print("DIFFERS %s" % rel)
                        bad += 1
            except FileNotFoundError:
                print("MISSING %s" % rel)
                bad += 1
        for sub in ("xml/plain", "xml/compatible", "xml/safe", "xml/bad", "wecom/plain", "wecom/encrypted"):
            d = os.path.join(FIXTURES, sub)
            for fn in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                if "%s/%s" % (sub, fn) not in files:
                    print("STALE %s/%s" % (sub, fn))
                    bad += 1
        print("gen_fixtures --check: %d files, %d problems" % (len(files), bad))
        return 1 if bad else 0

    for rel, data in sorted(files.items()):
        path = os.path.join(FIXTURES, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    print("gen_fixtures: wrote %d files under tests/fixtures/ (wechatpy %s)"
          % (len(files), wechatpy.__version__ if hasattr(wechatpy, "__version__") else WECHATPY_VERSION))
    return 0


if __name__ == "__main__":
    sys.exit(main())
