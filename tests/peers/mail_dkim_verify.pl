#!/usr/bin/perl
# Verify every DKIM signature of a message with Mail::DKIM (Debian libmail-dkim-perl), keys
# injected with Net::DNS::Resolver::Mock.
# usage: mail_dkim_verify.pl KEYFILE < message   (KEYFILE: lines 'SELECTOR._domainkey.DOMAIN RECORD')
# Exit 0 when every signature passes, 1 when one does not, 2 when there is none.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Net::DNS::Resolver::Mock;

my ($keyfile) = @ARGV;
my $zone = "";
open my $fh, '<', $keyfile or die "$keyfile: $!";
while (my $line = <$fh>) {
    chomp $line;
    next if $line =~ /^\s*(#|$)/;
    my ($name, $record) = split /\s+/, $line, 2;
    # TXT strings are at most 255 octets: split long records.
    my @parts = ($record =~ /(.{1,200})/g);
    $zone .= "$name. 300 IN TXT " . join(" ", map { "\"$_\"" } @parts) . "\n";
}
my $resolver = Net::DNS::Resolver::Mock->new();
$resolver->zonefile_parse($zone);
Mail::DKIM::DNS::resolver($resolver);

my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\015?\012/\015\012/;
    $dkim->PRINT($line);
}
$dkim->CLOSE;
my @sigs = $dkim->signatures;
if (!@sigs) { print "no signature\n"; exit 2; }
my $ok = 1;
for my $s (@sigs) {
    printf "%s %s %s\n", $s->result, $s->algorithm, ($s->result_detail // '');
    $ok = 0 unless $s->result eq 'pass';
}
exit($ok ? 0 : 1);
