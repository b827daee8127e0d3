#!/usr/bin/env python3
"""Verify every DKIM-Signature of a message with dkimpy (the independent Python implementation).

usage: dkimpy_verify.py KEYFILE < message   (KEYFILE: lines 'SELECTOR._domainkey.DOMAIN RECORD')
Exit 0 when every signature verifies, 1 when one does not, 2 when there is none.
"""
import sys

import dkim


def main():
    records = {}
    with open(sys.argv[1]) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                name, record = line.split(None, 1)
                records[name.lower().rstrip(".") + "."] = record.encode()

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return records.get(name.lower().rstrip(".") + ".")

    message = sys.stdin.buffer.read()
    d = dkim.DKIM(message)
    count = len([h for h in d.headers if h[0].lower() == b"dkim-signature"])
    if count == 0:
        print("no signature")
        return 2
    ok = True
    for i in range(count):
        result = d.verify(idx=i, dnsfunc=dnsfunc)
        print(f"signature {i}: {'pass' if result else 'fail'}")
        ok = ok and result
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
