#!/usr/bin/env python3
"""Serve every scenario of the RFC 7208 SPF test suite from a real DNS server on loopback.

usage: spf_suite_dns.py SUITE.yml MANIFEST.json [--timeout SECONDS] [--check] [--verbose]
                        [--empty-txt-rdlength-0]

SUITE.yml is `test/rfc7208-tests.yml` from the pyspf sdist (`.ci/run` fetches it and names it in
$PENNYBLACK_SPF_SUITE). Each scenario (YAML document) gets its own port on 127.0.0.1, UDP and TCP
on the same number, answering authoritatively (AA set, RA clear) from that scenario's `zonedata`.
Then every test of the suite is run through pyspf (with dnspython) against its scenario's port,
and MANIFEST.json is written:

    {"suite": PATH, "suite_sha256": HEX, "pyspf": VERSION, "dnspython": VERSION,
     "timeout": SECONDS, "scenarios": N,
     "tests": [{"scenario": DESCRIPTION, "name": TEST, "port": PORT, "spec": "4.3/1",
                "helo": ..., "host": CLIENT_IP, "mailfrom": ... ("" for none), "receiver": null,
                "strict": true|2, "expected": [RESULT, ...], "explanation": null|TEXT,
                "pyspf": {"result": RESULT, "explanation": TEXT,
                          "exception": null|WHY (set where pyspf differs from the suite:
                                                 PYSPF_EXCEPTIONS)}}, ...]}

then one line `ready TESTS tests, SCENARIOS scenarios` goes to standard output and the servers
answer until the process is killed (SIGTERM or SIGINT). Exit 1 when pyspf could not be run.

The zone data means what pyspf's own harness (test/testspf.py in the sdist) makes of it:

- A type SPF record (served as type 99) is also served as TXT when its name has no TXT record of
  its own (`TXT: NONE` only stops that). Most of the suite relies on it.
- TXT and SPF values given as a YAML list are several character-strings of one record; a plain
  string is one. The text goes out as its UTF-8 bytes (YAML's "\\xEF" is the character U+00EF:
  two octets on the wire, as testspf.py's `.encode('utf-8')` makes it). One exception: `[]`
  (null-text: "no strings is illegal, but SPF should not crash") goes out as one empty
  character-string, not as a record of none (RDLENGTH 0), which RFC 1035 has no room for and
  both client libraries at hand refuse with the whole message: dnspython (FormError: the list
  of strings must not be empty) and hickory-proto 0.26 ("unexpected record with length 0 in
  non-update message"), so the test would measure the resolver library, not SPF, and come out
  a timeout or temperror. `--empty-txt-rdlength-0` serves it as RDLENGTH 0 all the same (pyspf
  then says temperror there).
- `TIMEOUT` among a name's records: a query for a type none of whose records come before it in
  the list gets no answer at all (the client times out: a temperror); types listed before it
  are answered. `TYPE: TIMEOUT` makes queries for that type go unanswered. A name absent from
  the zone whose first label is `error` goes unanswered too.
- A name with records (of any type) answers NOERROR with no records (NODATA) for a type it
  lacks; so does an empty non-terminal (a name with none but with names below it), as any
  authoritative server does (testspf.py has no such notion: both are an empty answer to pyspf,
  and both count alike as void lookups in RFC 7208 4.6.4). Any other name is NXDOMAIN. A
  negative answer carries the SOA of the root zone, which this server plays.
- A CNAME is answered for every other type with the CNAME and then the target's records of the
  asked type, followed through the zone (at most 8 steps, a loop stops the chain where it
  repeats); an unanswered target leaves the whole query unanswered; a chain ending in a name
  that does not exist is NXDOMAIN (RFC 6604). testspf.py follows one step; the suite's one
  loop (ptr-cname-loop) comes out the same.
- Names are matched case-insensitively (ASCII), and answers keep the case the query was asked
  in, CNAME targets and PTR data keep the zone's case (ptr-case-change needs that).
- Answers over the UDP limit (512 octets, or the client's EDNS size up to 1232) go out
  truncated (TC, no records) and are answered in full over TCP.

What a real DNS cannot carry: testspf.py's DNSLookup turns a label longer than 63 octets into a
TempError and silently drops empty labels. Neither name can be put in a query on the wire, so
an implementation must not send one: the suite expects `none` when the identity's domain has
such a label (toolonglabel, emptylabel: RFC 7208 4.3) and fail or permerror when a mechanism's
target has one (invalid-domain-empty-label, invalid-domain-long,
invalid-domain-long-via-macro: the target is treated as not existing, or the record as
broken). pyspf itself never queries such names (query.dns returns [] for them).

pyspf's results are computed the way testspf.py runs it: `spf.query(i=host, s=mailfrom,
h=helo, strict=strict)` with the default explanation set to "DEFAULT" (so an expected
explanation of "DEFAULT" in the suite means: no exp= text, the receiver's default), the result
`unknown`/`error` renamed `permerror`/`temperror`, and every DNS query going to the scenario's
port through a dnspython Resolver (nameservers 127.0.0.1 only, `--timeout` seconds for each
lookup, default 1).

Validation: pyspf 2.0.14 with dnspython 2.9.2 through this server gives 202 of the suite's 203
tests the expected result (and the expected explanation wherever the suite gives one). The
other, ptr-cname-loop, is in PYSPF_EXCEPTIONS below with its reason; it is no test with several
allowed results. `--check` runs pyspf only and exits 1 if any other test differs. One more
thing a real DNS shows: dnspython merges identical records of an RRset, so pyspf sees one
record where multispf1 serves two identical ones and says fail (the suite allows permerror or
fail there: "cannot be reliably reproduced with live DNS").
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import signal
import socketserver
import struct
import sys
import threading
import time

import yaml
from dnslib import (
    AAAA,
    CNAME,
    MX,
    PTR,
    QTYPE,
    RCODE,
    RR,
    SOA,
    TXT,
    A,
    DNSHeader,
    DNSLabel,
    DNSRecord,
    EDNS0,
)

# Tests where pyspf through real DNS differs from the suite, and why (not a fault of the zone).
PYSPF_EXCEPTIONS = {
    "ptr-cname-loop": "the A lookup of the PTR name answers with a CNAME loop (loop4 -> "
    "CNAME.example.com -> itself); dnspython reports the server as failed (CNAME chain too "
    "long), pyspf turns that into TempError and does not skip the name as RFC 7208 5.5/7 says: "
    "temperror. In testspf.py pyspf follows the CNAMEs itself, sees the loop and skips it.",
}

TTL = 300
TIMEOUT = "TIMEOUT"
SUPPORTED = ("A", "AAAA", "MX", "PTR", "CNAME", "TXT", "SPF")
VERBOSE = False
EMPTY_TXT_RDLENGTH_0 = False


def log(*args):
    if VERBOSE:
        print(*args, file=sys.stderr, flush=True)


def labels(name):
    """A domain name (str or bytes) as a tuple of label octets, without the root label."""
    if isinstance(name, str):
        name = name.encode("utf-8")
    name = name.rstrip(b".")
    return tuple(name.split(b".")) if name else ()


def key(lbls):
    """The case-insensitive (ASCII only, as DNS) lookup key of a tuple of labels."""
    return tuple(label.lower() for label in lbls)


def getrdata(records, name):
    """testspf.py's getrdata: the zone entries of one name in order, TIMEOUT markers kept,
    SPF records copied to TXT (at the end) unless the name has a TXT entry of its own."""
    txt = []
    gen = True
    for m in records:
        if not isinstance(m, dict):
            yield m  # the bare TIMEOUT marker
            continue
        for t, v in m.items():
            if t in ("TXT", "SPF") and isinstance(v, str):
                v = (v,)
            if t == "TXT":
                gen = False
            elif t == "SPF" and gen:
                txt.append(("TXT", v, name))
            if v != ("NONE",):
                yield (t, v, name)
    if gen:
        for i in txt:
            yield i


class Zone:
    """One scenario's zone data, answering queries as testspf.py's DNSLookup would."""

    def __init__(self, zonedata):
        self.names = {}
        for name, records in (zonedata or {}).items():
            items = list(getrdata(records, name))
            for item in items:
                if item != TIMEOUT and (not isinstance(item, tuple) or item[0] not in SUPPORTED):
                    raise ValueError(f"unsupported zone entry {item!r} at {name!r}")
            self.names[key(labels(name))] = items
        # empty non-terminals: every proper suffix of an owner name
        self.enclosers = set()
        for k in self.names:
            for i in range(1, len(k)):
                self.enclosers.add(k[i:])

    def walk(self, lbls, qtype):
        """(status, records) for one name: status is 'timeout', 'nxdomain' or 'noerror';
        records are (type, value) of the asked type, or a CNAME."""
        k = key(lbls)
        items = self.names.get(k)
        if items is None:
            if k and k[0] == b"error":
                return "timeout", []
            return "noerror" if (k in self.enclosers or not k) else "nxdomain", []
        seen = False
        out = []
        for item in items:
            if item == TIMEOUT:
                if not seen:
                    return "timeout", []
                break
            t, v, _ = item
            if t == qtype:
                seen = True
            if v == TIMEOUT:
                if t == qtype:
                    return "timeout", []
                continue
            if t == qtype or (t == "CNAME" and qtype != "CNAME"):
                out.append((t, v))
        return "noerror", out

    def answer(self, qname, qtype):
        """(status, [RR]) for a query: follows CNAMEs through the zone."""
        rrs = []
        name = qname
        visited = set()
        status = "noerror"
        for _ in range(9):
            visited.add(key(name))
            status, records = self.walk(name, qtype)
            if status == "timeout":
                return "timeout", []
            cname = None
            for t, v in records:
                rrs.append(make_rr(name, t, v))
                if t == "CNAME":
                    cname = labels(v)
            if cname is None or key(cname) in visited:
                break
            name = cname
        return status, rrs


def make_rr(owner, t, v):
    rname = DNSLabel(list(owner))
    if t == "A":
        rdata = A(v)
    elif t == "AAAA":
        rdata = AAAA(v)
    elif t == "MX":
        pref, exchange = v
        rdata = MX(DNSLabel(list(labels(exchange or ""))), int(pref))
    elif t == "PTR":
        rdata = PTR(DNSLabel(list(labels(v))))
    elif t == "CNAME":
        rdata = CNAME(DNSLabel(list(labels(v))))
    elif t in ("TXT", "SPF"):
        strings = [s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in v]
        if not strings and not EMPTY_TXT_RDLENGTH_0:
            strings = [b""]  # null text: see the module's docstring
        # longer than a character-string can be: split, as a zone file would have to
        chunks = []
        for s in strings:
            if len(s) <= 255:
                chunks.append(s)
            else:
                chunks.extend(s[i : i + 255] for i in range(0, len(s), 255))
        rdata = TXT(chunks)
    else:
        raise ValueError(t)
    return RR(rname, getattr(QTYPE, t), rdata=rdata, ttl=TTL)


ROOT_SOA = RR(
    DNSLabel([]),
    QTYPE.SOA,
    rdata=SOA(
        DNSLabel([b"ns", b"spf-suite", b"invalid"]),
        DNSLabel([b"hostmaster", b"spf-suite", b"invalid"]),
        (2014040100, 3600, 600, 86400, 60),
    ),
    ttl=60,
)


def respond(zone, data, udp):
    """The reply to one query message, as bytes, or None for no reply at all."""
    try:
        query = DNSRecord.parse(data)
    except Exception:
        if len(data) >= 12:
            (qid, flags) = struct.unpack("!HH", data[:4])
            if flags & 0x8000:
                return None  # a response: never answer one
            return struct.pack("!HHHHHH", qid, 0x8000 | (flags & 0x7900) | RCODE.FORMERR, 0, 0, 0, 0)
        return None
    h = query.header
    if h.qr:
        return None
    edns = [r for r in query.ar if r.rtype == QTYPE.OPT]
    reply = DNSRecord(DNSHeader(id=h.id, qr=1, aa=1, ra=0, rd=h.rd, opcode=h.opcode))
    reply.questions = list(query.questions)
    if edns:
        reply.add_ar(EDNS0(udp_len=1232))
    if h.opcode != 0:
        reply.header.aa = 0
        reply.header.rcode = RCODE.NOTIMP
        return reply.pack()
    if len(query.questions) != 1:
        reply.header.aa = 0
        reply.header.rcode = RCODE.FORMERR
        return reply.pack()
    q = query.questions[0]
    qname = tuple(q.qname.label)
    qtype = QTYPE.get(q.qtype)
    if q.qclass != 1:
        reply.header.aa = 0
        reply.header.rcode = RCODE.REFUSED
        return reply.pack()
    if qtype == "SOA" and not qname:
        status, rrs = "noerror", [ROOT_SOA]
    else:
        status, rrs = zone.answer(qname, qtype if isinstance(qtype, str) else str(qtype))
    log(f"{'udp' if udp else 'tcp'} {b'.'.join(qname)!r} {qtype}: {status} {len(rrs)}")
    if status == "timeout":
        return None
    for rr in rrs:
        reply.add_answer(rr)
    if status == "nxdomain":
        reply.header.rcode = RCODE.NXDOMAIN
    if not any(rr.rtype == q.qtype for rr in rrs):
        reply.add_auth(ROOT_SOA)
    packed = reply.pack()
    if udp:
        limit = 512
        if edns:
            limit = max(512, min(edns[0].rclass, 1232))  # OPT: CLASS is the payload size
        if len(packed) > limit:
            short = DNSRecord(
                DNSHeader(id=h.id, qr=1, aa=1, ra=0, rd=h.rd, tc=1, rcode=reply.header.rcode)
            )
            short.questions = list(query.questions)
            if edns:
                short.add_ar(EDNS0(udp_len=1232))
            packed = short.pack()
    return packed


class UDPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        out = respond(self.server.zone, data, udp=True)
        if out is not None:
            sock.sendto(out, self.client_address)


class TCPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        conn = self.request
        conn.settimeout(30)
        try:
            while True:
                head = self._read(2)
                if head is None:
                    return
                (n,) = struct.unpack("!H", head)
                data = self._read(n)
                if data is None:
                    return
                out = respond(self.server.zone, data, udp=False)
                if out is not None:
                    conn.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            return

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.request.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf


class UDPServer(socketserver.ThreadingUDPServer):
    daemon_threads = True
    allow_reuse_address = False


class TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(zone):
    """A UDP and a TCP server on one free port of 127.0.0.1 for this zone; returns the port."""
    for _ in range(100):
        udp = UDPServer(("127.0.0.1", 0), UDPHandler)
        port = udp.server_address[1]
        try:
            tcp = TCPServer(("127.0.0.1", port), TCPHandler)
        except OSError:
            udp.server_close()
            continue
        for s in (udp, tcp):
            s.zone = zone
            threading.Thread(target=s.serve_forever, daemon=True).start()
        return port
    raise RuntimeError("no free port for both UDP and TCP")


class _ThreadResolver:
    """dnspython's default resolver, one per thread: pyspf calls dns.resolver.query, which
    asks the default resolver, and each worker thread points it at its scenario's port."""

    local = threading.local()

    def __getattr__(self, name):
        return getattr(self.local.resolver, name)


def run_pyspf(tests, timeout):
    import dns.nameserver
    import dns.resolver
    import spf

    dns.resolver.default_resolver = _ThreadResolver()

    def one(t):
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", t["port"])]
        r.timeout = timeout
        r.lifetime = timeout
        r.search = []
        _ThreadResolver.local.resolver = r
        q = spf.query(i=t["host"], s=t["mailfrom"], h=t["helo"], strict=t["strict"], timeout=timeout)
        q.set_default_explanation("DEFAULT")
        try:
            res, _code, exp = q.check()
        except Exception as e:  # pyspf should never raise: record it as a result of its own
            res, exp = "exception", f"{type(e).__name__}: {e}"
        res = {"unknown": "permerror", "error": "temperror"}.get(res, res)
        t["pyspf"] = {"result": res, "explanation": exp}

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, tests))


def main():
    global VERBOSE, EMPTY_TXT_RDLENGTH_0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("suite")
    ap.add_argument("manifest")
    ap.add_argument("--timeout", type=float, default=1.0, help="pyspf's DNS timeout per lookup")
    ap.add_argument("--verbose", action="store_true", help="log every query to stderr")
    ap.add_argument(
        "--check", action="store_true", help="exit after pyspf: 0 when it passes the suite, else 1"
    )
    ap.add_argument(
        "--empty-txt-rdlength-0",
        action="store_true",
        help="serve a TXT of no character-string (null-text) as RDLENGTH 0, not one empty string",
    )
    args = ap.parse_args()
    VERBOSE = args.verbose
    EMPTY_TXT_RDLENGTH_0 = args.empty_txt_rdlength_0

    raw = open(args.suite, "rb").read()
    tests = []
    scenarios = 0
    for doc in yaml.safe_load_all(raw):
        if not doc:
            continue
        scenarios += 1
        port = serve(Zone(doc.get("zonedata")))
        for name, t in doc["tests"].items():
            expected = t["result"]
            tests.append(
                {
                    "scenario": doc.get("description", ""),
                    "name": name,
                    "port": port,
                    "spec": str(t.get("spec", "")),
                    "helo": t["helo"],
                    "host": t["host"],
                    "mailfrom": t.get("mailfrom") or "",
                    "receiver": t.get("receiver"),
                    "strict": t.get("strict", True),
                    "expected": expected if isinstance(expected, list) else [expected],
                    "explanation": t.get("explanation"),
                }
            )

    started = time.monotonic()
    try:
        run_pyspf(tests, args.timeout)
    except ImportError as e:
        print(f"pyspf and dnspython are needed: {e}", file=sys.stderr)
        return 1
    import dns.version
    import spf

    differ = [
        t
        for t in tests
        if t["pyspf"]["result"] not in t["expected"]
        or (t["explanation"] is not None and t["pyspf"]["explanation"] != t["explanation"])
    ]
    bad = []
    for t in differ:
        reason = PYSPF_EXCEPTIONS.get(t["name"])
        t["pyspf"]["exception"] = reason
        if reason is None:
            bad.append(t)
        print(
            f"pyspf differs from the suite{' (known)' if reason else ''}: {t['scenario']} / "
            f"{t['name']}: {t['pyspf']['result']} {t['pyspf']['explanation']!r}, expected "
            f"{t['expected']} {t['explanation']!r}",
            file=sys.stderr,
        )
    for name in sorted(set(PYSPF_EXCEPTIONS) - {t["name"] for t in differ}):
        print(f"pyspf passes {name} now: drop it from PYSPF_EXCEPTIONS", file=sys.stderr)
    print(
        f"pyspf: {len(tests) - len(differ)} of {len(tests)} as the suite expects, "
        f"known exceptions: {len(differ) - len(bad)} ({time.monotonic() - started:.1f} s)",
        file=sys.stderr,
    )
    if args.check:
        return 1 if bad else 0

    manifest = {
        "suite": os.path.abspath(args.suite),
        "suite_sha256": hashlib.sha256(raw).hexdigest(),
        "pyspf": getattr(spf, "__version__", "?"),
        "dnspython": dns.version.version,
        "timeout": args.timeout,
        "scenarios": scenarios,
        "tests": tests,
    }
    tmp = args.manifest + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
    os.replace(tmp, args.manifest)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"ready {len(tests)} tests, {scenarios} scenarios", flush=True)
    while not stop.wait(3600):
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the server threads need no goodbye


if __name__ == "__main__":
    sys.exit(main())
