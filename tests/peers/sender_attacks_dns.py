#!/usr/bin/env python3
"""A tiny authoritative DNS server on loopback for the attacks of tests/it/review18.rs.

usage: sender_attacks_dns.py ZONE.json

ZONE.json maps a name (lowercase, no final dot) to a list of [TYPE, DATA] records: TXT data is a
string (split into 255-octet character-strings) or a list of strings; A, AAAA, PTR, MX ("PREF
NAME") as dnslib reads them. A name absent from the zone is NXDOMAIN; a name present without the
asked type is NODATA. Prints `port N` once listening (UDP and TCP on the same port), then serves
until killed.
"""
import json
import socket
import sys

from dnslib import AAAA, MX, PTR, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class Zone(BaseResolver):
    def __init__(self, zone):
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}

    def resolve(self, request, handler):
        reply = request.reply()
        reply.header.aa = 1
        reply.header.ra = 0
        q = request.q
        name = str(q.qname).rstrip(".").lower()
        qtype = QTYPE[q.qtype]
        if name not in self.zone:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for rtype, data in self.zone[name]:
            if rtype != qtype:
                continue
            if rtype == "TXT":
                parts = data if isinstance(data, list) else [data]
                strings = []
                for p in parts:
                    b = p.encode("utf-8")
                    strings.extend(b[i : i + 255] for i in range(0, max(len(b), 1), 255))
                rdata = TXT(strings)
            elif rtype == "A":
                rdata = A(data)
            elif rtype == "AAAA":
                rdata = AAAA(data)
            elif rtype == "PTR":
                rdata = PTR(data)
            elif rtype == "MX":
                pref, host = data.split(" ", 1)
                rdata = MX(host, int(pref))
            else:
                continue
            reply.add_answer(RR(q.qname, q.qtype, rdata=rdata, ttl=60))
        return reply


def main():
    with open(sys.argv[1]) as f:
        zone = json.load(f)
    # One free port for both UDP and TCP.
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        try:
            quiet = DNSLogger(logf=lambda _: None)
            udp = DNSServer(Zone(zone), port=port, address="127.0.0.1", logger=quiet)
            tcp = DNSServer(Zone(zone), port=port, address="127.0.0.1", tcp=True, logger=quiet)
            break
        except OSError:
            continue
    udp.start_thread()
    tcp.start_thread()
    print(f"port {port}", flush=True)
    import time

    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
