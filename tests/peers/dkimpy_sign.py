#!/usr/bin/env python3
"""Sign a message with dkimpy.

usage: dkimpy_sign.py SELECTOR DOMAIN KEYFILE ALGORITHM HEADERS < message > signed
ALGORITHM is rsa-sha256 or ed25519-sha256; HEADERS a colon-separated list of fields to sign.
For ed25519 dkimpy wants the raw 32-byte seed, base64, as the key; a PKCS#8 PEM is converted.
"""
import base64
import sys

import dkim


def ed25519_seed(pem):
    body = b"".join(l for l in pem.splitlines() if not l.startswith(b"-----"))
    der = base64.b64decode(body)
    return base64.b64encode(der[-32:])


def main():
    selector, domain, keyfile, algorithm, headers = sys.argv[1:6]
    key = open(keyfile, "rb").read()
    if algorithm == "ed25519-sha256":
        key = ed25519_seed(key)
    message = sys.stdin.buffer.read()
    sig = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key,
        include_headers=[h.encode() for h in headers.split(":")],
        canonicalize=(b"relaxed", b"relaxed"),
        signature_algorithm=algorithm.encode(),
    )
    # dkimpy returns the field with CRLF line endings; keep the message's own.
    if b"\r\n" not in message.split(b"\n", 1)[0] + b"\n":
        sig = sig.replace(b"\r\n", b"\n")
    sys.stdout.buffer.write(sig + message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
