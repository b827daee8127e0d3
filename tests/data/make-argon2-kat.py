#!/usr/bin/env python3
"""Regenerates tests/data/argon2id-kat.tsv: Argon2id stamp parts computed by argon2-cffi
(the reference C implementation, phc-winner-argon2, through its low-level API), not by
pennyblack.

A part of a version 2 Argon2id stamp is Argon2id (version 0x13) over password = prefix ||
counter, salt = b"pennyblack argon2id stamp v2", with the m, t and p its algorithm field
names, 32 bytes out; it meets a claim of BITS when the output starts with BITS zero bits
(docs/FORMAT.md, "Argon2id").

Every row is one part of a one- or multi-part stamp (rows with the same prefix are the parts
of one stamp, in order): the stamp's prefix, the counter, m, t, p, the output in hex and its
leading zero bits. Counters are the first ones, in a fixed order, whose part meets the claim;
the last part of the "one part short" stamp is the first that misses it. Nothing is random:
running this again writes the same file.

    .venv/bin/python tests/data/make-argon2-kat.py     (argon2-cffi; .ci/run installs it)
"""

import os

from argon2.low_level import Type, hash_secret_raw

SALT = b"pennyblack argon2id stamp v2"
DATE = "261127"

# (m KiB, t passes, p lanes, bits per part, parts, resource, ext, rand, counter width, short)
# short: the last part is the first counter that misses the claim (the stamp is worth 0).
STAMPS = [
    # m at its least, 8 KiB per lane, for 1, 2 and 4 lanes
    (8, 1, 1, 4, 1, "a@example.org", "", "AAAAAAAAAAAAAAAA", 0, False),
    (16, 1, 2, 3, 1, "b@example.org", "", "BBBBBBBBBBBBBBBB", 0, False),
    (32, 2, 4, 3, 1, "c@example.org", "", "CCCCCCCCCCCCCCCC", 0, False),
    # 64 KiB: four parts of one stamp; then three passes, two lanes, a prefix over 64 bytes
    (64, 1, 1, 3, 4, "dave@example.org", "", "DDDDDDDDDDDDDDDDDDDDDDDD", 0, False),
    (64, 3, 2, 4, 1, "eve.longer.name@mail.example.org", "a=1,2;b",
     "EEEEEEEEEEEEEEEEEEEEEEEE", 0, False),
    # a memory size that is not a multiple of 4 x lanes (Argon2 rounds the blocks down)
    (100, 2, 4, 3, 1, "f@example.org", "", "FFFFFFFFFFFFFFFF", 0, False),
    # 1 MiB: a prefix over 127 bytes; two lanes with a 64-character counter; four lanes
    (1024, 1, 1, 5, 1, "grace." + "g" * 60 + "@example.org", "ext=" + "x" * 40,
     "GGGGGGGGGGGGGGGGGGGGGGGG", 0, False),
    (1024, 3, 2, 4, 1, "h" * 90 + "@example.org", "", "HHHHHHHHHHHHHHHH", 64, False),
    (1024, 2, 4, 3, 1, "i@example.org", "", "IIIIIIIIIIIIIIII", 0, False),
    # two parts, the second one short of the claim
    (64, 1, 1, 6, 2, "j@example.org", "", "JJJJJJJJJJJJJJJJ", 0, True),
]


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
    n = int.from_bytes(out, "big")
    return 256 - n.bit_length()


def main():
    rows = []
    for m, t, p, bits, parts, res, ext, rand, width, short in STAMPS:
        prefix = f"2:argon2id-m{m}-t{t}-p{p}:{bits}:{parts}:{DATE}:{res}:{ext}:{rand}:"
        n = 0
        for i in range(parts):
            want_miss = short and i == parts - 1
            while True:
                counter = f"{n:0{width}X}" if width else f"{n:X}"
                n += 1
                out = part(m, t, p, (prefix + counter).encode())
                if (zero_bits(out) >= bits) != want_miss:
                    break
            rows.append((prefix, counter, m, t, p, out.hex(), zero_bits(out)))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "argon2id-kat.tsv")
    with open(path, "w") as f:
        f.write("# Argon2id stamp parts computed by argon2-cffi (phc-winner-argon2), not by\n")
        f.write("# pennyblack: tests/data/make-argon2-kat.py writes this file (run it with the\n")
        f.write("# .venv python after `bash .ci/run`, which installs argon2-cffi). Salt\n")
        f.write('# b"pennyblack argon2id stamp v2", version 0x13, 32 bytes out, password =\n')
        f.write("# prefix || counter. Rows with the same prefix are the parts of one stamp.\n")
        f.write("# prefix\tcounter\tm\tt\tp\toutput\tzero_bits\n")
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")
    print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
