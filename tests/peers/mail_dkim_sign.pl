#!/usr/bin/perl
# Sign a message with Mail::DKIM (rsa-sha256, relaxed/relaxed).
# usage: mail_dkim_sign.pl SELECTOR DOMAIN KEYFILE < message > signed
use strict;
use warnings;
use Mail::DKIM::Signer;
use Mail::DKIM::TextWrap;

my ($selector, $domain, $keyfile) = @ARGV;
my $message = do { local $/; binmode STDIN; <STDIN> };
my $lf_only = ($message =~ /\A[^\n]*[^\r]\n/) ? 1 : 0;
my $dkim = Mail::DKIM::Signer->new(
    Algorithm => 'rsa-sha256',
    Method    => 'relaxed',
    Domain    => $domain,
    Selector  => $selector,
    KeyFile   => $keyfile,
    Headers   => 'from:to:subject:x-hashcash',
);
(my $crlf = $message) =~ s/\015?\012/\015\012/g;
$dkim->PRINT($crlf);
$dkim->CLOSE;
my $sig = $dkim->signature->as_string . "\015\012";
$sig =~ s/\015\012/\012/g if $lf_only;
binmode STDOUT;
print $sig, $message;
