#!/usr/bin/env python3
"""The monitord wire envelope written a second time, from docs/DESIGN.md's text only.

This is an independent implementation used to prove that the contract and the Rust code
agree: bodies it seals must be accepted by a real monitord, and bodies the real agent seals
must open here. It uses Python's `cryptography` package (AES-128-CTR, HMAC-SHA256, HKDF) and
none of the project's code.

Contract (docs/DESIGN.md, "Keys and the wire format"):
  okm = HKDF-SHA256(ikm = master, salt = "monitord v1", info = "client:" + name, L = 48)
  enc_key = okm[0:16], mac_key = okm[16:48]
  body = base64("MON1" || iv[16] || AES-128-CTR(enc_key, iv)(json) || tag[32])
  tag  = HMAC-SHA256(mac_key, "MON1" || u16be(len(name)) || name || iv || ciphertext)

Commands (keys come from the 32-byte master key file, never from argv):
  envelope.py seal KEYFILE NAME     plaintext on stdin -> base64 body on stdout
  envelope.py open KEYFILE NAME     body on stdin -> plaintext on stdout (exit 1 on a bad tag)
  envelope.py serve KEYFILE OUTFILE a tiny HTTP server on 127.0.0.1:0 that opens each
                                    PUT /v1/samples/{name}, checks the sample, appends its
                                    JSON as one line to OUTFILE and answers 200; prints
                                    "listening on 127.0.0.1:PORT" first
"""

import base64
import binascii
import hmac
import json
import os
import struct
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"MON1"
IV_LEN = 16
TAG_LEN = 32
MAX_BODY = 65536


def derive(master: bytes, name: str):
    """Returns (enc_key, mac_key) for client `name`."""
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=48,
        salt=b"monitord v1",
        info=b"client:" + name.encode(),
    ).derive(master)
    return okm[:16], okm[16:48]


def _tag(mac_key: bytes, name: str, iv: bytes, ciphertext: bytes) -> HMAC:
    name_bytes = name.encode()
    h = HMAC(mac_key, hashes.SHA256())
    h.update(MAGIC + struct.pack(">H", len(name_bytes)) + name_bytes + iv + ciphertext)
    return h


def _ctr(enc_key: bytes, iv: bytes):
    # cryptography's CTR mode treats the whole 16-byte block as one big-endian counter.
    return Cipher(algorithms.AES(enc_key), modes.CTR(iv))


def seal(enc_key: bytes, mac_key: bytes, name: str, plaintext: bytes) -> str:
    iv = os.urandom(IV_LEN)
    encryptor = _ctr(enc_key, iv).encryptor()
    ciphertext = encryptor.update(plaintext) + encryptor.finalize()
    tag = _tag(mac_key, name, iv, ciphertext).finalize()
    return base64.b64encode(MAGIC + iv + ciphertext + tag).decode()


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def open_body(enc_key: bytes, mac_key: bytes, name: str, body: bytes) -> bytes:
    """Opens a body; raises Refused(400) for a malformed body, Refused(401) for a bad tag."""
    try:
        raw = base64.b64decode(body.rstrip(), validate=True)
    except (binascii.Error, ValueError):
        raise Refused(400, "not base64")
    if len(raw) < len(MAGIC) + IV_LEN + TAG_LEN:
        raise Refused(400, "too short")
    if raw[:4] != MAGIC:
        raise Refused(400, "no MON1")
    iv = raw[4 : 4 + IV_LEN]
    ciphertext = raw[4 + IV_LEN : -TAG_LEN]
    tag = raw[-TAG_LEN:]
    expected = _tag(mac_key, name, iv, ciphertext).finalize()
    if not hmac.compare_digest(expected, tag):
        raise Refused(401, "bad tag")
    decryptor = _ctr(enc_key, iv).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


REQUIRED = ("v", "instance", "seq", "ts", "cpu_percent", "memory")


def check_sample(sample) -> None:
    if not isinstance(sample, dict):
        raise Refused(400, "sample is not an object")
    missing = [f for f in REQUIRED if f not in sample]
    if missing:
        raise Refused(400, "missing " + ", ".join(missing))
    if sample["v"] != 1:
        raise Refused(400, "v is not 1")
    for field in ("total", "used", "available", "percent"):
        if field not in sample["memory"]:
            raise Refused(400, "memory." + field + " missing")


def read_master(path: str) -> bytes:
    with open(path, "rb") as f:
        master = f.read()
    if len(master) != 32:
        sys.exit(f"{path}: master key must be 32 bytes, is {len(master)}")
    return master


def serve(master: bytes, out_path: str) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self):
            prefix = "/v1/samples/"
            if not self.path.startswith(prefix):
                return self.answer(404, "not found")
            name = urllib.parse.unquote(self.path[len(prefix) :])
            length = int(self.headers.get("Content-Length", "0"))
            if length > MAX_BODY:
                return self.answer(413, "too large")
            body = self.rfile.read(length)
            try:
                enc_key, mac_key = derive(master, name)
                sample = json.loads(open_body(enc_key, mac_key, name, body))
                check_sample(sample)
            except Refused as e:
                return self.answer(e.status, str(e))
            except ValueError as e:
                return self.answer(400, "not JSON: %s" % e)
            with open(out_path, "a") as out:
                out.write(json.dumps({"name": name, "sample": sample}) + "\n")
            self.answer(200, "stored")

        def answer(self, status: int, text: str):
            payload = json.dumps({"status": text}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, fmt, *args):
            sys.stderr.write("python envelope server: " + (fmt % args) + "\n")

    server = HTTPServer(("127.0.0.1", 0), Handler)
    host, port = server.server_address
    print(f"listening on {host}:{port}", flush=True)
    server.serve_forever()


def main(argv) -> int:
    if len(argv) != 4 or argv[1] not in ("seal", "open", "serve"):
        sys.stderr.write(__doc__)
        return 2
    command, key_file, arg = argv[1], argv[2], argv[3]
    master = read_master(key_file)
    if command == "serve":
        serve(master, arg)
        return 0
    enc_key, mac_key = derive(master, arg)
    data = sys.stdin.buffer.read()
    if command == "seal":
        sys.stdout.write(seal(enc_key, mac_key, arg, data))
        return 0
    try:
        sys.stdout.buffer.write(open_body(enc_key, mac_key, arg, data))
    except Refused as e:
        sys.stderr.write(f"refused ({e.status}): {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
