#!/usr/bin/env python3
"""The cost of `pennyblack check` on hostile messages: time and peak memory, beside the time of
hashing the same bytes (sha256sum), for one or more builds of the binary.

    python3 benches/dkim_cost.py target/release/pennyblack [OTHER_BINARY ...]

Messages (written to a temporary folder):
  header  a header block under 1 MiB: 100,000 short fields and 5 signatures whose h= lists
          20,000 names of absent fields each (a key of the attacker's own domain and a correct
          bh=, so the header hashing runs)
  h256    the same fields, 5 signatures whose h= lists 256 names each (within the limit)
  tags    one signature whose tag list holds 80,000 tags (about 1 MB)
  empty   a 64 MiB body of empty lines under 5 signatures (relaxed and simple)
  text    a 64 MiB body of 70-character lines under 5 signatures
Each is run 3 times per binary, alternating binaries; the best time and the largest peak RSS
are printed.
"""

import base64
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time


def relaxed_body(body: bytes) -> bytes:
    lines = body.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = [re.sub(rb"[ \t]+", b" ", l).rstrip(b" ") for l in lines]
    while out and out[-1] == b"":
        out.pop()
    return b"".join(l + b"\r\n" for l in out)


def sig(h_names, bh, extra_tags=""):
    # 200 names a line: every line well under 998 octets.
    h = ":\r\n\t".join(":".join(h_names[i : i + 200]) for i in range(0, len(h_names), 200))
    return (
        f"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.org; s=s1;{extra_tags}\r\n"
        f"\th={h};\r\n\tbh={bh}; b=AAAA\r\n"
    ).encode()


def main():
    bins = sys.argv[1:]
    if not bins:
        sys.exit(__doc__)
    tmp = tempfile.mkdtemp()
    keygen = subprocess.run(
        [bins[-1], "keygen", "--selector", "s1", "--domain", "example.org", "--out", f"{tmp}/k.pem"],
        capture_output=True,
        check=True,
    )
    keys = f"{tmp}/keys.txt"
    open(keys, "wb").write(keygen.stdout)
    base = b"From: a@example.org\r\nTo: bob@example.net\r\nSubject: cost\r\n"
    small_body = b"Hello\r\n"
    small_bh = base64.b64encode(hashlib.sha256(relaxed_body(small_body)).digest()).decode()
    msgs = {}
    filler = b"A: 1\r\n" * 100000
    sigs = b"".join(sig(["from"] + ["b"] * 20000, small_bh) for _ in range(5))
    msgs["header"] = sigs + filler + base + b"\r\n" + small_body
    sigs = b"".join(sig(["from"] + ["b"] * 255, small_bh) for _ in range(5))
    msgs["h256"] = sigs + filler + base + b"\r\n" + small_body
    tags = "".join(f"\r\n\tz{i}=1;" for i in range(80000))
    msgs["tags"] = sig(["from"], small_bh, tags) + base + b"\r\n" + small_body
    for name, body in [
        ("empty", b"\r\n" * (32 << 20)),
        ("text", (b"x" * 70 + b"\r\n") * ((64 << 20) // 72)),
    ]:
        bh = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode()
        s = b"".join(
            sig(["from"], bh).replace(b"c=relaxed/relaxed", c)
            for c in [b"c=relaxed/relaxed", b"c=relaxed/simple"] * 2 + [b"c=simple/simple"]
        )
        msgs[name] = s + base + b"\r\n" + body
    print(f"{'message':8} {'bytes':>10} {'sha256sum':>10}  " + "  ".join(f"{os.path.basename(os.path.dirname(os.path.dirname(b))) or b:>24}" for b in bins))
    for name, m in msgs.items():
        path = f"{tmp}/{name}.eml"
        open(path, "wb").write(m)
        t = time.perf_counter()
        subprocess.run(["sha256sum", path], capture_output=True, check=True)
        hash_s = time.perf_counter() - t
        best = {b: (1e9, 0) for b in bins}
        for _ in range(3):
            for b in bins:
                r = subprocess.run(
                    ["/usr/bin/time", "-f", "%e %M", b, "check", "--keys", keys, "--no-spent",
                     "--verdict-only", "--max-size", str(128 << 20), "--rcpt", "bob@example.net"],
                    stdin=open(path, "rb"), capture_output=True,
                )
                secs, kb = r.stderr.decode().strip().splitlines()[-1].split()
                tb, mb = best[b]
                best[b] = (min(tb, float(secs)), max(mb, int(kb)))
        cells = "  ".join(f"{best[b][0]:7.2f} s {best[b][1] / 1024:7.0f} MiB" for b in bins)
        print(f"{name:8} {len(m):>10} {hash_s:9.2f}s  {cells}")


main()
