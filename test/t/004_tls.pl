
# TLS: the worker verifies the provider's certificate and host name, always.
# A self-signed emulator is refused until sms.ca_file names its certificate;
# a certificate for another host is refused even then.  Either refusal would
# meet every message alike, so it pauses the queue: no attempt is counted.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $dir = PostgreSQL::Test::Utils::tempdir();


my ($crt, $key) = make_cert($dir, 'good', 'IP:127.0.0.1,DNS:localhost');
my $emu = start_emulator(tls_cert => $crt, tls_key => $key);
like($emu->url, qr{^https://127\.0\.0\.1:}, 'the emulator serves HTTPS');
my $node = sms_node('tls', $emu);

my $id = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558670501', '+15017122661', 'over TLS')});
my $paused = 'paused: cannot verify the certificate of ' . $emu->url . ': ';
wait_for_rows($node, "SELECT left(worker, @{[ length($paused) ]}) FROM sms_stats", $paused,
	'self-signed certificate without sms.ca_file: the queue pauses');
like($node->safe_psql('postgres', 'SELECT worker FROM sms_stats'), qr/certificate/,
	'the condition says why');
wait_for_rows($node, "SELECT state || ' ' || attempts FROM sms_outbox WHERE id = $id", 'pending 0',
	'self-signed certificate: the message waits with no attempt counted');
like($node->safe_psql('postgres', "SELECT error_message FROM sms_outbox WHERE id = $id"),
	qr/^transport error before the request was sent: .*certificate/i,
	'the row says why, and that the request never left');
is(scalar(@{ $emu->messages }), 0, 'nothing reached the emulator');

$node->append_conf('postgresql.conf', "sms.ca_file = '$crt'\n");
reload_and_wait($node);
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'sent',
	'with sms.ca_file naming the certificate: sent');
like($node->safe_psql('postgres', "SELECT sid FROM sms_outbox WHERE id = $id"),
	qr/^SM[0-9a-f]{32}$/, 'SID written back over HTTPS');
is($node->safe_psql('postgres', "SELECT attempts FROM sms_outbox WHERE id = $id"), 1,
	'one attempt counted: the one that sent it');
is_deeply($emu->created_per_body, { 'over TLS' => 1 }, 'one message created');
$node->stop;
$emu->stop;

# a trusted certificate for another host name is still refused
my ($other_crt, $other_key) = make_cert($dir, 'other', 'DNS:api.example.com');
$emu = start_emulator(tls_cert => $other_crt, tls_key => $other_key, insecure_control => 1);
$node = sms_node('tls_host', $emu, conf => "sms.ca_file = '$other_crt'\n");
$id = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558670502', '+15017122661', 'wrong host')});
$paused = 'paused: cannot verify the certificate of ' . $emu->url . ': ';
wait_for_rows($node, "SELECT left(worker, @{[ length($paused) ]}) FROM sms_stats", $paused,
	'certificate for another host: the queue pauses');
# (libcurl's words: "host name" in Debian 12's 7.88, "subject name matches
# target" in Debian 13's 8.14)
like($node->safe_psql('postgres', 'SELECT worker FROM sms_stats'),
	qr/(?:host name|subject name matches target)/,
	'the condition names the host name problem');
wait_for_rows($node, "SELECT state || ' ' || attempts FROM sms_outbox WHERE id = $id", 'pending 0',
	'certificate for another host: the message waits with no attempt counted');
is(scalar(@{ $emu->messages }), 0, 'nothing reached the emulator');

$node->stop;
$emu->stop;
done_testing();
