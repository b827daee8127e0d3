#!/usr/bin/env python3
"""Argon2id stamp parts with argon2-cffi (the reference C implementation), for the live interop
test. A part is Argon2id version 0x13 over prefix || counter, salt b"pennyblack argon2id stamp
v2", 32 bytes out.

usage: argon2id_cffi.py hash < lines 'M T P HEX_PASSWORD'
           prints each part's output in hex, one line each
       argon2id_cffi.py search M T P BITS PREFIX
           prints two counters (uppercase hex of 0, 1, 2, ...): the first whose part has
           exactly BITS leading zero bits, then the first with exactly BITS - 1
"""
import sys

from argon2.low_level import Type, hash_secret_raw

SALT = b"pennyblack argon2id stamp v2"


def part(m, t, p, pwd):
    return hash_secret_raw(
        secret=pwd,
        salt=SALT,
        time_cost=t,
        memory_cost=m,
        parallelism=p,
        hash_len=32,
        type=Type.ID,
        version=19,
    )


def zero_bits(out):
    return 256 - int.from_bytes(out, "big").bit_length()


def main():
    if sys.argv[1] == "hash":
        for line in sys.stdin:
            m, t, p, pwd = line.split()
            print(part(int(m), int(t), int(p), bytes.fromhex(pwd)).hex())
    elif sys.argv[1] == "search":
        m, t, p, bits = (int(x) for x in sys.argv[2:6])
        prefix = sys.argv[6].encode()
        for want in (bits, bits - 1):
            n = 0
            while zero_bits(part(m, t, p, prefix + f"{n:X}".encode())) != want:
                n += 1
            print(f"{n:X}")
    else:
        sys.exit("usage: argon2id_cffi.py hash | search M T P BITS PREFIX")


if __name__ == "__main__":
    main()
