#!/usr/bin/env python3
"""SPF, DKIM and DMARC of a message with authheaders (the independent Python implementation:
authheaders with pyspf for SPF, dkimpy for DKIM, its own DMARC), through one DNS server.

usage: authheaders_check.py DNS_IP:PORT CLIENT_IP HELO MAIL_FROM < message
(MAIL_FROM may be empty: the null reverse-path.)

Prints one JSON object: {"spf": RESULT, "dkim": RESULT, "dmarc": RESULT, "policy": POLICY,
"dmarc_bis": RESULT, "policy_bis": POLICY, "header": "Authentication-Results value"}.
"dmarc" is authheaders' RFC 7489 mode (the From domain's record, else the Organizational
Domain's from the Public Suffix List); "dmarc_bis" its DMARCbis mode (the DNS tree walk).

Every library asks the DNS through dnspython's default resolver (pyspf and dkimpy call
dns.resolver.query/resolve; authheaders' dmarc_lookup.dns_query calls dns.resolver.resolve), so
the default resolver is pointed at the given server: that is the DNS function each of them
uses. (authheaders' own dnsfunc= parameter expects a function returning text rather than
dnspython answers for the DMARC lookup, and pyspf takes none, so one resolver for all is the
faithful way.) A DNS timeout, which authheaders lets escape as an exception from the DMARC
lookup, is reported as temperror, as RFC 7489 6.6.3 says.
"""
import json
import sys

import dns.exception
import dns.resolver

from authheaders import check_dkim, check_dmarc, check_spf
from authres import AuthenticationResultsHeader, SPFAuthenticationResult
from authres.dmarc import DMARCAuthenticationResult


def main():
    server, port = sys.argv[1].rsplit(":", 1)
    ip, helo, mail_from = sys.argv[2], sys.argv[3], sys.argv[4]
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server]
    resolver.port = int(port)
    resolver.timeout = 2.0
    resolver.lifetime = 2.0
    dns.resolver.default_resolver = resolver

    msg = sys.stdin.buffer.read()
    spf = check_spf(ip, mail_from, helo)
    dkim = check_dkim(msg)
    results = [spf, dkim]
    out = {"spf": spf.result, "dkim": dkim.result}
    for key, bis in (("", False), ("_bis", True)):
        # check_dmarc rewrites spf.smtp_mailfrom to its domain: give each run its own copy.
        # A null reverse-path: authheaders would take the domain of smtp.mailfrom, which authres
        # stores as None for an empty address, and fail with a TypeError. RFC 7208 2.4 defines
        # the MAIL FROM identity of a null path as postmaster@HELO, and RFC 7489 4.1 says that
        # is the identity DMARC aligns: give authheaders that (pyspf checked the same).
        spf_copy = SPFAuthenticationResult(
            result=spf.result,
            reason=spf.reason,
            smtp_mailfrom=mail_from or "postmaster@" + helo,
            smtp_helo=helo,
        )
        try:
            d = check_dmarc(msg, spf_copy, dkim, dmarcbis=bis)
            result, policy = d.result, getattr(d, "policy", None) or "none"
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as e:
            d = DMARCAuthenticationResult(result="temperror", result_comment=type(e).__name__)
            result, policy = "temperror", "none"
        out["dmarc" + key] = result
        out["policy" + key] = policy
        if not bis:
            results.append(d)
    out["header"] = str(AuthenticationResultsHeader(authserv_id="peer.test", results=results))
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
