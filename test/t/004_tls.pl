
# TLS: the worker verifies the provider's certificate and host name, always.
# A self-signed emulator is refused until sms.ca_file names its certificate;
# a certificate for another host is refused even then.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $dir = PostgreSQL::Test::Utils::tempdir();

sub make_cert
{
	my ($name, $san) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(
		[
			'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
			'-days', '2', '-subj', '/CN=sms-test',
			'-addext', "subjectAltName=$san",
			'-keyout', "$dir/$name.key", '-out', "$dir/$name.crt"
		],
		'>', \$out, '2>', \$err) or die "openssl failed: $err";
	return ("$dir/$name.crt", "$dir/$name.key");
}

my ($crt, $key) = make_cert('good', 'IP:127.0.0.1,DNS:localhost');
my $emu = start_emulator(tls_cert => $crt, tls_key => $key);
like($emu->url, qr{^https://127\.0\.0\.1:}, 'the emulator serves HTTPS');
my $node = sms_node('tls', $emu);

my $id = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558670501', '+15017122661', 'over TLS')});
wait_for_rows($node, "SELECT attempts >= 2 AND state = 'pending' FROM sms_outbox WHERE id = $id", 't',
	'self-signed certificate without sms.ca_file: attempts fail');
my ($state, $err) = split /\|/, $node->safe_psql('postgres',
	"SELECT state, error_message FROM sms_outbox WHERE id = $id");
# between two attempts it is pending, during one sending; never unknown,
# which would mean a request might have left
like($state, qr/^(pending|sending)$/, "the message waits (the request never left): $state");
like($err, qr/certificate|SSL/i, "the error says why: $err");
is(scalar(@{ $emu->messages }), 0, 'nothing reached the emulator');

$node->append_conf('postgresql.conf', "sms.ca_file = '$crt'\n");
$node->reload;
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'sent',
	'with sms.ca_file naming the certificate: sent');
like($node->safe_psql('postgres', "SELECT sid FROM sms_outbox WHERE id = $id"),
	qr/^SM[0-9a-f]{32}$/, 'SID written back over HTTPS');
is_deeply($emu->created_per_body, { 'over TLS' => 1 }, 'one message created');
$node->stop;
$emu->stop;

# a trusted certificate for another host name is still refused
my ($other_crt, $other_key) = make_cert('other', 'DNS:api.example.com');
$emu = start_emulator(tls_cert => $other_crt, tls_key => $other_key, insecure_control => 1);
$node = sms_node('tls_host', $emu, conf => "sms.ca_file = '$other_crt'\n");
$id = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558670502', '+15017122661', 'wrong host')});
wait_for_rows($node, "SELECT attempts >= 2 AND state = 'pending' FROM sms_outbox WHERE id = $id", 't',
	'certificate for another host: attempts fail');
like($node->safe_psql('postgres', "SELECT error_message FROM sms_outbox WHERE id = $id"),
	qr/certificate|SSL|host/i, 'the error names the certificate problem');
is(scalar(@{ $emu->messages }), 0, 'nothing reached the emulator');

$node->stop;
$emu->stop;
done_testing();
