#!/usr/bin/env python3
"""Generate the callback crypto vectors under tests/fixtures/vectors/.

Three files, each `{"generator", "wechatpy", "vectors": [...]}`:

  * official_vectors.json / wechatpy_test_vectors.json: values published by
    Tencent (the WXBizMsgCrypt samples for Official Accounts and WeCom, the
    open-platform "message push" and OA "message encryption" docs) and the
    values hard-coded in wechatpy's own tests (tests/test_utils.py,
    tests/test_crypto.py).  Only the published inputs and outputs are carried
    in PUBLISHED below, each with its source; everything else (key bytes, IV,
    random prefix, pad, lengths, plaintext layout) is derived here, and every
    published signature, ciphertext and plaintext is recomputed and asserted.
  * generated_vectors.json: fresh deterministic vectors (fixed random
    prefixes): CJK + emoji text and its encrypted reply, a full 32-byte pad
    block, a message over 2 KB, a compatible-mode body, a binary random
    prefix, the OA GET signature, WeCom's encrypted echostr, a WeCom push and
    reply.
  * negative_vectors.json: inputs a correct server must refuse, each with the
    WXBizMsgCrypt error code (-40001 ... -40010) it must fail with.

Each ciphertext is made by wechatpy 1.8.18 and by an independent
`cryptography` implementation, which must agree; each decryption is done by
both as well.

Usage (the venv comes from scripts/ensure_pyenv.sh):
  "$(scripts/ensure_pyenv.sh)" scripts/gen_vectors.py           # (re)write
  "$(scripts/ensure_pyenv.sh)" scripts/gen_vectors.py --check   # compare only
"""
import argparse
import base64
import hashlib
import json
import os
import struct
import sys
from urllib.parse import quote

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import wechatpy.crypto as wp_crypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto
from wechatpy.utils import check_signature

WECHATPY_VERSION = "1.8.18"
GENERATOR = "scripts/gen_vectors.py"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO_ROOT, "tests", "fixtures", "vectors")

# --------------------------------------------------------------------------
# published values: Tencent's samples and docs, wechatpy's tests
# --------------------------------------------------------------------------
# `source` names where each value was published; `random` is the fixed
# 16-byte prefix the sample itself pins (encrypt direction only).
PUBLISHED = [{'name': 'oa_java_testAesEncrypt',
  'source': 'Official OA Java sample WXBizMsgCryptTest.testAesEncrypt (fixed randomStr)',
  'kind': 'oa',
  'direction': 'encrypt',
  'token': 'pamtest',
  'encoding_aes_key': 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  'receive_id': 'wxb11529c136998cb6',
  'msg': '我是中文abcd123',
  'encrypt': 'jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==',
  'random': 'aaaabbbbccccdddd',
  'origin': 'tencent'},
 {'name': 'oa_java_testAesEncrypt2',
  'source': 'Official OA Java sample WXBizMsgCryptTest.testAesEncrypt2',
  'kind': 'oa',
  'direction': 'encrypt',
  'token': 'pamtest',
  'encoding_aes_key': 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  'receive_id': 'wxb11529c136998cb6',
  'msg': '<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>',
  'encrypt': 'jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb',
  'random': 'aaaabbbbccccdddd',
  'origin': 'tencent'},
 {'name': 'oa_python_sample_compat_body',
  'source': 'Official OA Python Sample.py (compatible-mode body: plaintext fields + Encrypt)',
  'kind': 'oa',
  'direction': 'decrypt',
  'token': 'spamtest',
  'encoding_aes_key': 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  'receive_id': 'wx2c2769f8efd9abc2',
  'timestamp': '1409735669',
  'nonce': '1320562132',
  'msg_signature': '5d197aaffba7e9b25a30732f161a50dee96bd5fa',
  'encrypt': 'hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=',
  'expected_msg': '<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n'
                  '<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n'
                  '<CreateTime>1409735668</CreateTime>\n'
                  '<MsgType><![CDATA[text]]></MsgType>\n'
                  '<Content><![CDATA[abcdteT]]></Content>\n'
                  '<MsgId>6054768590064713728</MsgId>\n'
                  '</xml>',
  'post_body': '<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId><Encrypt><![CDATA[hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=]]></Encrypt></xml>',
  'origin': 'tencent'},
 {'name': 'oa_cpp_sample',
  'source': 'Official OA C++ Sample.cpp (safe-mode body)',
  'kind': 'oa',
  'direction': 'decrypt',
  'token': 'spamtest',
  'encoding_aes_key': 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  'receive_id': 'wx2c2769f8efd9abc2',
  'timestamp': '1410349438',
  'nonce': '298025754',
  'msg_signature': '003fee52ecc56afb46c00b5c7721be87860ce785',
  'encrypt': 'mfBCs65c67CeJw22u4VT2TD73q5H06+ocrAIxswCaeZ/d/Lw0msSZFHY0teqgSYiI1zR2gD2DKrB3TIrmX/liNSDrGqS8jSI/WPeKB5VPr7Ezr7gomZAyGCwJSgT1TRFWPfONGJMxuj2nk4faTuspAuVIFQ6SHwZuJBZC7mcJp7Cgr9cUhATQWDbOPaE7ukZBTV2YqyzH+UI2AK+J1S47cE79k1RX8t0hcTz/O0hlK8DGXKnvYv88qKQcI7z4iaajqHfRVZKBNyOODabs+It+ZfM3dWTeFcPgDbGtIEnpt/EDtuuA/zMvtkaKdHdswPnVZQ+xdwbYr3ldGvfT8HlEYEgkgKaThxTFobVlwzu2ZkXCjicbP3xdr15Iq48ObgzPpqYuZ3IEoyggZDKClquk0u0orMck4GTF/XyE8yGzc4=',
  'expected_msg': '<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n'
                  '<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n'
                  '<CreateTime>1410349438</CreateTime>\n'
                  '<MsgType><![CDATA[text]]></MsgType>\n'
                  '<Content><![CDATA[abcdteT]]></Content>\n'
                  '<MsgId>6057404712141979648</MsgId>\n'
                  '</xml>',
  'post_body': '<xml><ToUserName><![CDATA[toUser]]></ToUserName><Encrypt><![CDATA[mfBCs65c67CeJw22u4VT2TD73q5H06+ocrAIxswCaeZ/d/Lw0msSZFHY0teqgSYiI1zR2gD2DKrB3TIrmX/liNSDrGqS8jSI/WPeKB5VPr7Ezr7gomZAyGCwJSgT1TRFWPfONGJMxuj2nk4faTuspAuVIFQ6SHwZuJBZC7mcJp7Cgr9cUhATQWDbOPaE7ukZBTV2YqyzH+UI2AK+J1S47cE79k1RX8t0hcTz/O0hlK8DGXKnvYv88qKQcI7z4iaajqHfRVZKBNyOODabs+It+ZfM3dWTeFcPgDbGtIEnpt/EDtuuA/zMvtkaKdHdswPnVZQ+xdwbYr3ldGvfT8HlEYEgkgKaThxTFobVlwzu2ZkXCjicbP3xdr15Iq48ObgzPpqYuZ3IEoyggZDKClquk0u0orMck4GTF/XyE8yGzc4=]]></Encrypt></xml>',
  'origin': 'tencent'},
 {'name': 'oplatform_doc_push_example',
  'source': "Official open-platform doc 'message push' "
            '(Third-party_Platforms/2.0/.../message_push.html)',
  'kind': 'oa',
  'direction': 'decrypt',
  'token': 'AAAAA',
  'encoding_aes_key': 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  'receive_id': 'wx134c8103faa5a59e',
  'timestamp': '1715943329',
  'nonce': '1590219412',
  'msg_signature': '6c12a4205838198b8fa631b3220723bb07f1015c',
  'encrypt': 'D7yzvUNAL930rd28wf21s4hvXhz0L6Uit/p2Di6C5DHyYGpEgdBRnKjBec34JwoQXicwaZC7fOVihW80F4VtsdvE//1vr7oAbqjDv8KenVp+ajKYpJnyQ4zMRhIC+a31fCVOMC03FfzV/QuC94kBP55a+Za3sJgvAn+ZbsNqZI5DkyuzkhQN8OBqCzFhizGmy0xpM0MEA4agpvE+RuNO1rhHTtuJB5yltw1FiYzecSXJ+y/D2r81VkRn2eYjh2ltsoyfbDR7Is6ookXIFxTfyeNyeHxMeT4KN5WpCDmSbTcUYrbBUlkGLJ9n/rU8YOywma6G7aTb7KZKOqCxgfoUlYEZPk4FUL/TK7ShriFDMVCLyjQJ15Ob++agDWtcxhfUfe6HIoIpRW8mKNBQiY/Jd1svvuskA1wLef1RTtzKfMpagSCX/laZINmdnX4zrF6kIaR9P4xQrWXbsTFHTYe0Mg==',
  'expected_msg': '<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName>\n'
                  '<FromUserName><![CDATA[o9AgO5Kd5ggOC-bXrbNODIiE3bGY]]></FromUserName>\n'
                  '<CreateTime>1715943329</CreateTime>\n'
                  '<MsgType><![CDATA[event]]></MsgType>\n'
                  '<Event><![CDATA[debug_demo]]></Event>\n'
                  '<debug_str><![CDATA[hello world]]></debug_str>\n'
                  '</xml>',
  'post_body': '<xml>\n'
               '    <ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName>\n'
               '    '
               '<Encrypt><![CDATA[D7yzvUNAL930rd28wf21s4hvXhz0L6Uit/p2Di6C5DHyYGpEgdBRnKjBec34JwoQXicwaZC7fOVihW80F4VtsdvE//1vr7oAbqjDv8KenVp+ajKYpJnyQ4zMRhIC+a31fCVOMC03FfzV/QuC94kBP55a+Za3sJgvAn+ZbsNqZI5DkyuzkhQN8OBqCzFhizGmy0xpM0MEA4agpvE+RuNO1rhHTtuJB5yltw1FiYzecSXJ+y/D2r81VkRn2eYjh2ltsoyfbDR7Is6ookXIFxTfyeNyeHxMeT4KN5WpCDmSbTcUYrbBUlkGLJ9n/rU8YOywma6G7aTb7KZKOqCxgfoUlYEZPk4FUL/TK7ShriFDMVCLyjQJ15Ob++agDWtcxhfUfe6HIoIpRW8mKNBQiY/Jd1svvuskA1wLef1RTtzKfMpagSCX/laZINmdnX4zrF6kIaR9P4xQrWXbsTFHTYe0Mg==]]></Encrypt>\n'
               '</xml>',
  'query': {'signature': 'cc0c594499c1634947d5b502f158ee518947db27',
            'timestamp': '1715943329',
            'nonce': '1590219412',
            'openid': 'o9AgO5Kd5ggOC-bXrbNODIiE3bGY',
            'encrypt_type': 'aes',
            'msg_signature': '6c12a4205838198b8fa631b3220723bb07f1015c'},
  'origin': 'tencent'},
 {'name': 'oplatform_doc_reply_example',
  'source': "Official open-platform doc 'message push' reply example",
  'kind': 'oa',
  'direction': 'encrypt',
  'token': 'AAAAA',
  'encoding_aes_key': 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  'receive_id': 'wx134c8103faa5a59e',
  'msg': '<xml><demo_resp>[CDATA[good luck]]</demo_resp></xml>',
  'encrypt': 'hE8R6mGXHkJJjU72KxzKUd1GEkKJaEZq7vRL8XgK3o+00k8JGq6+pZJUIlTSyhsX+bxIBQ72g3GyvDdIZcr6+3HAZbSvPT9t/o11MI7d6WELwqrGd7jMnV0zv3Zc9Nq7',
  'timestamp': '1713424427',
  'nonce': '415670741',
  'msg_signature': '03e0812039325c2712ef5f0f980fd14c70d6e307',
  'reply_envelope': '<xml>\n'
                    '<Encrypt><![CDATA[hE8R6mGXHkJJjU72KxzKUd1GEkKJaEZq7vRL8XgK3o+00k8JGq6+pZJUIlTSyhsX+bxIBQ72g3GyvDdIZcr6+3HAZbSvPT9t/o11MI7d6WELwqrGd7jMnV0zv3Zc9Nq7]]></Encrypt>\n'
                    '<MsgSignature><![CDATA[03e0812039325c2712ef5f0f980fd14c70d6e307]]></MsgSignature>\n'
                    '<TimeStamp>1713424427</TimeStamp>\n'
                    '<Nonce><![CDATA[415670741]]></Nonce>\n'
                    '</xml>',
  'random': '999951349e8ee746',
  'origin': 'tencent'},
 {'name': 'oa_doc_plaintext_signature',
  'source': "Official OA doc 'message encryption' plaintext-mode example",
  'kind': 'oa',
  'direction': 'signature',
  'token': 'AAAAA',
  'timestamp': '1714037059',
  'nonce': '486452656',
  'signature': '899cf89e464efb63f54ddac96b0a0a235f53aa78',
  'origin': 'tencent'},
 {'name': 'wecom_verify_url',
  'source': 'Official WeCom samples VerifyURL (GET echostr)',
  'kind': 'wecom',
  'direction': 'decrypt',
  'token': 'QDG6eK',
  'encoding_aes_key': 'jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C',
  'receive_id': 'wx5823bf96d3bd56c7',
  'timestamp': '1409659589',
  'nonce': '263014780',
  'msg_signature': '5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3',
  'encrypt': 'P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==',
  'expected_msg': '1616140317555161061',
  'get_query_raw': 'msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780&echostr=P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D',
  'origin': 'tencent'},
 {'name': 'wecom_decrypt_msg',
  'source': 'Official WeCom samples DecryptMsg (text message, pad=30)',
  'kind': 'wecom',
  'direction': 'decrypt',
  'token': 'QDG6eK',
  'encoding_aes_key': 'jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C',
  'receive_id': 'wx5823bf96d3bd56c7',
  'timestamp': '1409659813',
  'nonce': '1372623149',
  'msg_signature': '477715d11cdb4164915debcba66cb864d751f3e6',
  'encrypt': 'RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==',
  'expected_msg': '<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n'
                  '<FromUserName><![CDATA[mycreate]]></FromUserName>\n'
                  '<CreateTime>1409659813</CreateTime>\n'
                  '<MsgType><![CDATA[text]]></MsgType>\n'
                  '<Content><![CDATA[hello]]></Content>\n'
                  '<MsgId>4561255354251345929</MsgId>\n'
                  '<AgentID>218</AgentID>\n'
                  '</xml>',
  'post_body': '<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==]]></Encrypt></xml>',
  'origin': 'tencent'},
 {'name': 'wecom_sample2_verify_url',
  'source': 'WeCom Python callback Sample.py (2016 set) VerifyURL',
  'kind': 'wecom',
  'direction': 'decrypt',
  'token': 'hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo',
  'encoding_aes_key': '6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt',
  'receive_id': 'ww1436e0e65a779aee',
  'timestamp': '1476416373',
  'nonce': '47744683',
  'msg_signature': '012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb',
  'encrypt': 'fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==',
  'expected_msg': '1288432023552776189',
  'origin': 'tencent'},
 {'name': 'wecom_sample2_decrypt_msg',
  'source': 'WeCom Python callback Sample.py (2016 set) DecryptMsg (non-CDATA plaintext)',
  'kind': 'wecom',
  'direction': 'decrypt',
  'token': 'hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo',
  'encoding_aes_key': '6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt',
  'receive_id': 'ww1436e0e65a779aee',
  'timestamp': '1476422779',
  'nonce': '1597212914',
  'msg_signature': '0c3914025cb4b4d68103f6bfc8db550f79dcf48e',
  'encrypt': 'Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+',
  'expected_msg': '<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName><CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>',
  'post_body': '<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n'
               '<Encrypt><![CDATA[Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n'
               '<AgentID><![CDATA[1000002]]></AgentID>\n'
               '</xml>',
  'origin': 'tencent'},
 {'name': 'wechatpy_check_signature',
  'source': 'wechatpy tests/test_utils.py test_check_signature_should_ok/_fail',
  'kind': 'oa',
  'direction': 'signature',
  'token': 'test',
  'timestamp': '1410685589',
  'nonce': 'test',
  'signature': 'f21891de399b4e33a1a93c9a7b8a8fffb5a443ff',
  'bad_signature': 'f21891de399b4e33a1a93c9a7b8a8fffb5a443fe',
  'origin': 'wechatpy'},
 {'name': 'wechatpy_wecom_check_signature',
  'source': 'wechatpy tests/test_crypto.py test_check_signature_should_ok (WeCom echostr)',
  'kind': 'wecom',
  'direction': 'decrypt',
  'token': '123456',
  'encoding_aes_key': 'kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR',
  'receive_id': 'wx49f0ab532d5d035a',
  'timestamp': '1411443780',
  'nonce': '437374425',
  'msg_signature': 'dd6b9c95b495b3f7e2901bfbc76c664930ffdb96',
  'encrypt': '4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==',
  'expected_msg': '5927782489442352469',
  'note': 'test_check_signature_should_fail uses nonce 437374424 with the same signature -> must '
          'be rejected',
  'origin': 'wechatpy'},
 {'name': 'wechatpy_wecom_decrypt_message',
  'source': 'wechatpy tests/test_crypto.py test_decrypt_message (pad=1)',
  'kind': 'wecom',
  'direction': 'decrypt',
  'token': '123456',
  'encoding_aes_key': 'kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR',
  'receive_id': 'wx49f0ab532d5d035a',
  'timestamp': '1411525903',
  'nonce': '461056294',
  'msg_signature': '74d92dfeb87ba7c714f89d98870ae5eb62dff26d',
  'encrypt': 'RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=',
  'expected_msg': '<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n'
                  '<FromUserName><![CDATA[messense]]></FromUserName>\n'
                  '<CreateTime>1411525903</CreateTime>\n'
                  '<MsgType><![CDATA[text]]></MsgType>\n'
                  '<Content><![CDATA[test]]></Content>\n'
                  '<MsgId>4363689963896700987</MsgId>\n'
                  '<AgentID>1</AgentID>\n'
                  '</xml>',
  'post_body': '<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n'
               '<Encrypt><![CDATA[RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]></Encrypt>\n'
               '<AgentID><![CDATA[1]]></AgentID>\n'
               '</xml>',
  'origin': 'wechatpy'},
 {'name': 'wechatpy_wecom_encrypt_message',
  'source': "wechatpy tests/test_crypto.py test_encrypt_message (random '1234567890123456')",
  'kind': 'wecom',
  'direction': 'encrypt',
  'token': '123456',
  'encoding_aes_key': 'kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR',
  'receive_id': 'wx49f0ab532d5d035a',
  'msg': '<xml>\n'
         '<MsgType><![CDATA[text]]></MsgType>\n'
         '<Content><![CDATA[test]]></Content>\n'
         '<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n'
         '<ToUserName><![CDATA[messense]]></ToUserName>\n'
         '<AgentID>1</AgentID>\n'
         '<CreateTime>1411525903</CreateTime>\n'
         '</xml>',
  'encrypt': '9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3',
  'timestamp': '1411525903',
  'nonce': '461056294',
  'msg_signature': '407518b7649e86ef23978113f92d27afa9296533',
  'reply_envelope': '<xml>\n'
                    '<Encrypt><![CDATA[9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3]]></Encrypt>\n'
                    '<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>\n'
                    '<TimeStamp>1411525903</TimeStamp>\n'
                    '<Nonce><![CDATA[461056294]]></Nonce>\n'
                    '</xml>',
  'random': '1234567890123456',
  'origin': 'wechatpy'}]


# --------------------------------------------------------------------------
# crypto: an independent implementation, cross-checked by wechatpy
# --------------------------------------------------------------------------
def aes_key(encoding_aes_key):
    key = base64.b64decode(encoding_aes_key + "=")  # lenient about the surplus bits
    assert len(key) == 32
    return key


def layout(rand16, msg, receive_id):
    raw = msg.encode("utf-8")
    data = rand16 + struct.pack(">I", len(raw)) + raw + receive_id.encode("utf-8")
    n = 32 - len(data) % 32
    return data + bytes([n]) * n


def encrypt(encoding_aes_key, rand16, msg, receive_id):
    key = aes_key(encoding_aes_key)
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    out = base64.b64encode(enc.update(layout(rand16, msg, receive_id)) + enc.finalize()).decode("ascii")
    pc = wp_crypto.PrpCrypto(key)
    pc.get_random_string = lambda: rand16
    assert pc.encrypt(msg, receive_id).decode("ascii") == out, "wechatpy disagrees"
    return out


def decrypt(encoding_aes_key, text):
    """(random16, msg, receive_id, pad, padded_len); checks the padding."""
    key = aes_key(encoding_aes_key)
    raw = base64.b64decode(text, validate=True)
    assert len(raw) % 32 == 0
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    data = dec.update(raw) + dec.finalize()
    n = data[-1]
    assert 1 <= n <= 32 and data[-n:] == bytes([n]) * n
    body = data[:-n]
    (msg_len,) = struct.unpack(">I", body[16:20])
    msg = body[20:20 + msg_len].decode("utf-8")
    rid = body[20 + msg_len:].decode("utf-8")
    # wechatpy's own decryption agrees.
    back = wp_crypto.PrpCrypto(key).decrypt(text, rid)
    assert (back.decode("utf-8") if isinstance(back, bytes) else back) == msg
    return body[:16], msg, rid, n, len(raw)


def sha1_sorted(*parts):
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def key_fields(v):
    key = aes_key(v["encoding_aes_key"])
    return {"aes_key_hex": key.hex(), "iv_hex": key[:16].hex()}


# --------------------------------------------------------------------------
# the published vectors, completed and checked
# --------------------------------------------------------------------------
def complete(p):
    v = {k: val for k, val in p.items() if k not in ("random", "origin")}
    if "signature" in v:  # plaintext-mode URL signature
        assert sha1_sorted(v["token"], v["timestamp"], v["nonce"]) == v["signature"], v["name"]
        assert check_signature(v["token"], v["signature"], v["timestamp"], v["nonce"]) is None
        if "bad_signature" in v:
            assert sha1_sorted(v["token"], v["timestamp"], v["nonce"]) != v["bad_signature"]
        v["sorted_parts"] = sorted([v["token"], v["timestamp"], v["nonce"]])
        return v
    v.update(key_fields(v))
    if "msg_signature" in v:
        assert sha1_sorted(v["token"], v["timestamp"], v["nonce"], v["encrypt"]) == v["msg_signature"], v["name"]
    if p["direction"] == "encrypt":
        rand = p["random"].encode("utf-8")
        assert encrypt(v["encoding_aes_key"], rand, v["msg"], v["receive_id"]) == v["encrypt"], v["name"]
        padded = layout(rand, v["msg"], v["receive_id"])
        v.update(random_hex=rand.hex(), msg_len=len(v["msg"].encode("utf-8")), pad=padded[-1],
                 padded_len=len(padded), padded_plaintext_hex=padded.hex())
        if "reply_envelope" in v:
            assert v["reply_envelope"] == render_envelope(v), v["name"]
    else:
        rand, msg, rid, pad, padded_len = decrypt(v["encoding_aes_key"], v["encrypt"])
        assert msg == v["expected_msg"] and rid == v["receive_id"], v["name"]
        if "post_body" in v:
            assert "<![CDATA[%s]]>" % v["encrypt"] in v["post_body"], v["name"]
        if "query" in v:
            q = v["query"]
            assert q["msg_signature"] == v["msg_signature"] and q["timestamp"] == v["timestamp"]
            if "signature" in q:
                assert sha1_sorted(v["token"], q["timestamp"], q["nonce"]) == q["signature"], v["name"]
        if "get_query_raw" in v:
            assert "echostr=" + quote(v["encrypt"], safe="") in v["get_query_raw"], v["name"]
        if v["kind"] == "wecom" and "post_body" in v:
            c = WeComCrypto(v["token"], v["encoding_aes_key"], v["receive_id"])
            assert c.decrypt_message(v["post_body"], v["msg_signature"], v["timestamp"], v["nonce"]) == msg
        v.update(random_hex=rand.hex(), expected_msg_len=len(msg.encode("utf-8")), pad=pad, padded_len=padded_len)
    return v


def render_envelope(v):
    """The encrypted passive-reply envelope, as the samples print it."""
    return ("<xml>\n<Encrypt><![CDATA[%s]]></Encrypt>\n<MsgSignature><![CDATA[%s]]></MsgSignature>\n"
            "<TimeStamp>%s</TimeStamp>\n<Nonce><![CDATA[%s]]></Nonce>\n</xml>"
            % (v["encrypt"], v["msg_signature"], v["timestamp"], v["nonce"]))


# --------------------------------------------------------------------------
# fresh deterministic vectors
# --------------------------------------------------------------------------
OA = {"token": "wxgateVectorToken", "encoding_aes_key": "VxGateVect0rKeyF0rTheRep0sIt0ryOnlyN0tS3crT",
      "receive_id": "wx7c1e5a9d3b2f4068", "original_id": "gh_5b2d8e1f9c3a", "openid": "oV3cT0r-Us3rXk9mQ2bL7nPz4sWe"}
WECOM = {"token": "wxgateWeComVectors", "encoding_aes_key": "WcVect0rsF0rWeC0mAppsInThisRep0N0tASecretX1",
         "receive_id": "ww3f8a2c1e9d7b5064", "user": "zhangsan", "agent": "1000002"}


def rand16(name):
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alnum[b % 62] for b in hashlib.sha256(("wxgate-vectors/" + name).encode()).digest()[:16]).encode()


def nonce(name):
    return str(100000000 + int.from_bytes(hashlib.sha256(("nonce/" + name).encode()).digest()[:8], "big") % 3900000000)


def oa_text(content, ts, msg_id):
    return ("<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"
            "<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[%s]]></Content>"
            "<MsgId>%d</MsgId></xml>" % (OA["original_id"], OA["openid"], ts, content, msg_id))


def packed(acct, name, msg, rand=None):
    rand = rand if rand is not None else rand16(name)
    enc = encrypt(acct["encoding_aes_key"], rand, msg, acct["receive_id"])
    padded = layout(rand, msg, acct["receive_id"])
    assert decrypt(acct["encoding_aes_key"], enc)[1] == msg
    v = {"token": acct["token"], "encoding_aes_key": acct["encoding_aes_key"], "receive_id": acct["receive_id"]}
    v.update(key_fields(v))
    v.update(encrypt=enc, msg=msg, msg_len=len(msg.encode("utf-8")), msg_char_count=len(msg),
             random_hex=rand.hex(), pad=padded[-1], padded_len=len(padded), padded_plaintext_hex=padded.hex())
    return v


def oa_inbound(name, description, msg, ts, compat=False, rand=None):
    v = {"name": name, "kind": "oa", "direction": "inbound_post", "description": description}
    v.update(packed(OA, name, msg, rand))
    n = nonce(name)
    sig = sha1_sorted(OA["token"], str(ts), n)
    msig = sha1_sorted(OA["token"], str(ts), n, v["encrypt"])
    v["query"] = {"signature": sig, "timestamp": str(ts), "nonce": n, "openid": OA["openid"],
                  "encrypt_type": "aes", "msg_signature": msig}
    if compat:
        v["post_body"] = msg[:-len("</xml>")] + "<Encrypt><![CDATA[%s]]></Encrypt></xml>" % v["encrypt"]
    else:
        v["post_body"] = ("<xml><ToUserName><![CDATA[%s]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt></xml>"
                          % (OA["original_id"], v["encrypt"]))
    c = wp_crypto.WeChatCrypto(OA["token"], OA["encoding_aes_key"], OA["receive_id"])
    assert c.decrypt_message(v["post_body"], msig, str(ts), n) == msg
    return v


def reply(acct, kind, name, source, msg, ts):
    v = {"name": name, "source": source, "kind": kind, "direction": "encrypt"}
    v.update(packed(acct, name, msg))
    v.update(timestamp=str(ts), nonce=nonce(name))
    v["msg_signature"] = sha1_sorted(acct["token"], v["timestamp"], v["nonce"], v["encrypt"])
    v["reply_envelope"] = render_envelope(v)
    return v


def generated():
    out = []
    ts = 1750000000
    cjk = "你好，世界！😀 wxgate 测试 🎉"
    v = oa_inbound("gen_text_cjk_emoji", "Safe-mode text with CJK and emoji (4-byte UTF-8)",
                   oa_text(cjk, ts, 7400000000000000001), ts)
    v.update(content_char_count=len(cjk), content_utf8_len=len(cjk.encode("utf-8")),
             content_utf16_units=len(cjk.encode("utf-16-le")) // 2)
    out.append(v)
    reply_xml = ("<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"
                 "<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[收到：%s]]>"
                 "</Content></xml>" % (OA["openid"], OA["original_id"], ts + 1, cjk))
    out.append(reply(OA, "oa", "gen_reply_cjk_emoji", "Encrypted passive reply (envelope) to gen_text_cjk_emoji",
                     reply_xml, ts + 1))
    # A message whose layout is an exact multiple of 32 bytes: a whole pad block.
    base = oa_text("", ts + 2, 7400000000000000002)
    fill = (32 - (16 + 4 + len(base.encode()) + len(OA["receive_id"])) % 32) % 32
    full = oa_text("x" * fill, ts + 2, 7400000000000000002)
    v = oa_inbound("gen_full_pad_block", "Layout a multiple of 32 bytes: the pad is a whole block of 32", full, ts + 2)
    assert v["pad"] == 32
    out.append(v)
    out.append(oa_inbound("gen_long_msg", "A text message over 2 KB",
                          oa_text("长消息" * 300, ts + 3, 7400000000000000003), ts + 3))
    out.append(oa_inbound("gen_compat_mode_body", "Compatible mode: plaintext fields and <Encrypt> side by side",
                          oa_text("compatible", ts + 4, 7400000000000000004), ts + 4, compat=True))
    out.append(oa_inbound("gen_binary_random_prefix", "A random prefix of arbitrary bytes (not alphanumerics)",
                          oa_text("binary prefix", ts + 5, 7400000000000000005), ts + 5,
                          rand=bytes(range(0xf0, 0x100))))
    # The OA GET URL check: signature over the sorted token, timestamp, nonce.
    n, t, echo = nonce("gen_oa_get_verify"), str(ts + 6), "6186437923985724129"
    parts = sorted([OA["token"], t, n])
    out.append({"name": "gen_oa_get_verify", "kind": "oa", "direction": "get_verify",
                "description": "Plaintext GET URL verification: echo echostr when the signature holds",
                "token": OA["token"], "timestamp": t, "nonce": n, "echostr": echo,
                "sorted_parts": parts, "joined": "".join(parts), "signature": sha1_sorted(*parts),
                "get_query_raw": "signature=%s&timestamp=%s&nonce=%s&echostr=%s" % (sha1_sorted(*parts), t, n, echo),
                "expected_response_body": echo,
                "wrong_if_joined_with_ampersand": hashlib.sha1("&".join(parts).encode()).hexdigest(),
                "wrong_if_unsorted": hashlib.sha1((OA["token"] + t + n).encode()).hexdigest()
                if [OA["token"], t, n] != parts else hashlib.sha1((n + t + OA["token"]).encode()).hexdigest()})
    # WeCom: the encrypted echostr of the URL check.
    name = "gen_wecom_get_verify"
    p = packed(WECOM, name, "4830152916243071562")
    t, n = str(ts + 7), nonce(name)
    msig = sha1_sorted(WECOM["token"], t, n, p["encrypt"])
    out.append({"name": name, "kind": "wecom", "direction": "get_verify",
                "description": "WeCom GET URL verification: the decrypted echostr is the body",
                "token": WECOM["token"], "encoding_aes_key": WECOM["encoding_aes_key"],
                "aes_key_hex": p["aes_key_hex"], "receive_id": WECOM["receive_id"],
                "timestamp": t, "nonce": n, "echostr": p["encrypt"], "msg_signature": msig,
                "get_query_raw": "msg_signature=%s&timestamp=%s&nonce=%s&echostr=%s"
                % (msig, t, n, quote(p["encrypt"], safe="")),
                "expected_response_body": p["msg"], "random_hex": p["random_hex"], "pad": p["pad"],
                "padded_plaintext_hex": p["padded_plaintext_hex"]})
    # WeCom: a text push and the encrypted reply.
    name, t = "gen_wecom_inbound_text", ts + 8
    msg = ("<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"
           "<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好]]></Content>"
           "<MsgId>7400000000000000009</MsgId><AgentID>%s</AgentID></xml>"
           % (WECOM["receive_id"], WECOM["user"], t, WECOM["agent"]))
    v = {"name": name, "kind": "wecom", "direction": "inbound_post",
         "description": "A WeCom app text push (safe mode is the only mode)"}
    v.update(packed(WECOM, name, msg))
    n = nonce(name)
    v["query"] = {"msg_signature": sha1_sorted(WECOM["token"], str(t), n, v["encrypt"]),
                  "timestamp": str(t), "nonce": n}
    v["post_body"] = ("<xml><ToUserName><![CDATA[%s]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt>"
                      "<AgentID><![CDATA[%s]]></AgentID></xml>" % (WECOM["receive_id"], v["encrypt"], WECOM["agent"]))
    c = WeComCrypto(WECOM["token"], WECOM["encoding_aes_key"], WECOM["receive_id"])
    assert c.decrypt_message(v["post_body"], v["query"]["msg_signature"], str(t), n) == msg
    out.append(v)
    wecom_reply = ("<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"
                   "<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好，%s]]>"
                   "</Content></xml>" % (WECOM["user"], WECOM["receive_id"], t + 1, WECOM["user"]))
    out.append(reply(WECOM, "wecom", "gen_wecom_reply", "WeCom encrypted passive reply envelope", wecom_reply, t + 1))
    return out


# --------------------------------------------------------------------------
# inputs a correct server refuses
# --------------------------------------------------------------------------
def raw_encrypt(encoding_aes_key, data):
    key = aes_key(encoding_aes_key)
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode("ascii")


def negative():
    out = []
    ts, msg = "1750001000", oa_text("negative", 1750001000, 7400000000000000100)
    acct = {k: OA[k] for k in ("token", "encoding_aes_key", "receive_id")}

    def inbound(name, receive_id=OA["receive_id"], msig=None, sig_only=False):
        enc = encrypt(OA["encoding_aes_key"], rand16(name), msg, receive_id)
        n = nonce(name)
        good = sha1_sorted(OA["token"], ts, n, enc)
        sig = sha1_sorted(OA["token"], ts, n)
        q = {"signature": sig, "timestamp": ts, "nonce": n, "openid": OA["openid"], "encrypt_type": "aes",
             "msg_signature": sig if sig_only else (msig or good)}
        body = ("<xml><ToUserName><![CDATA[%s]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt></xml>"
                % (OA["original_id"], enc))
        return dict(name=name, **acct, query=q, post_body=body)

    out.append(dict(inbound("neg_bad_msg_signature", msig="0" * 40), expect_error=-40001))
    out.append(dict(inbound("neg_url_signature_only", sig_only=True), expect_error=-40001,
                    note="msg_signature must cover Encrypt; the URL signature alone is not enough"))
    out.append(dict(inbound("neg_wrong_appid", receive_id="wx0000000000000000"), expect_error=-40005))
    for name, last in (("neg_pad_zero", 0), ("neg_pad_33", 33)):
        raw = msg.encode()
        data = rand16(name) + struct.pack(">I", len(raw)) + raw + OA["receive_id"].encode()
        data += b"\x00" * ((-len(data) - 1) % 32) + bytes([last])
        enc = raw_encrypt(OA["encoding_aes_key"], data)
        n = nonce(name)
        out.append(dict(name=name, **acct, timestamp=ts, nonce=n, encrypt=enc,
                        msg_signature=sha1_sorted(OA["token"], ts, n, enc), last_plaintext_byte=last,
                        expect_error=-40008, note="PKCS#7 pad byte outside 1..32 (IllegalBuffer)"))
    out.append({"name": "neg_bad_base64", "encrypt": "not base64!!", "expect_error": -40010})
    out.append({"name": "neg_len_not_multiple_of_16", "encrypt": base64.b64encode(b"x" * 20).decode(),
                "expect_error": -40007, "note": "20 bytes: not whole AES blocks (DecryptAES error)"})
    out.append({"name": "neg_short_key", "encoding_aes_key": OA["encoding_aes_key"][:42], "expect_error": -40004})
    out.append({"name": "neg_doctype_body", "expect_error": -40002, "note": "a DTD is refused before any parsing",
                "post_body": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><xml><Encrypt>&e;</Encrypt></xml>'})
    return out


def files():
    def doc(vectors):
        return (json.dumps({"generator": GENERATOR, "wechatpy": WECHATPY_VERSION, "vectors": vectors},
                           indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    completed = [(p["origin"], complete(p)) for p in PUBLISHED]
    return {
        "official_vectors.json": doc([v for o, v in completed if o == "tencent"]),
        "wechatpy_test_vectors.json": doc([v for o, v in completed if o == "wechatpy"]),
        "generated_vectors.json": doc(generated()),
        "negative_vectors.json": doc(negative()),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    args = ap.parse_args()
    out = files()
    if args.check:
        bad = 0
        for rel, data in sorted(out.items()):
            try:
                with open(os.path.join(OUT, rel), "rb") as f:
                    same = f.read() == data
            except FileNotFoundError:
                same = False
            if not same:
                print("DIFFERS %s" % rel)
                bad += 1
        print("gen_vectors --check: %d files, %d problems" % (len(out), bad))
        return 1 if bad else 0
    os.makedirs(OUT, exist_ok=True)
    for rel, data in sorted(out.items()):
        with open(os.path.join(OUT, rel), "wb") as f:
            f.write(data)
    print("gen_vectors: wrote %d files under tests/fixtures/vectors/" % len(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
