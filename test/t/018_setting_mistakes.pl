
# Setting mistakes.  sms.api_url is judged on the URL as libcurl parses it:
# https to any host, plain http only to 127.0.0.1, localhost or [::1], and
# no user name or password, query, fragment or path; sms.ca_file must be a
# readable file.  A mistake that every request would meet alike (a CA file
# gone, https against a plain-HTTP server, a certificate nobody trusts, no
# server listening) pauses the queue: no message is failed, no attempt is
# counted, sms_stats and the log say why; fixed and reloaded, each message
# is sent exactly once.
#
# Nothing here connects anywhere but 127.0.0.1.  A host name that does not
# resolve pauses the queue too, but is not tested: resolving any name that
# is not local would send a DNS query off the machine.

use strict;
use warnings;

use File::Copy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $dir = PostgreSQL::Test::Utils::tempdir();


my $emu = start_emulator();
my $port = $emu->{port};
my $node = sms_node('mistakes', $emu);

# --- sms.api_url: each bad form refused with its own detail and a hint
my $hint = qr/HINT:  .*'https:\/\/api\.twilio\.com'/;
my @bad = (
	# the part before "@" is userinfo: the real host is after it
	[ q{'http://127.0.0.1:x@example.com/'}, qr/DETAIL:  The API URL must not contain a user name or password .*the host here is "example\.com"/ ],
	[ q{'http://localhost:@evil.example.net'}, qr/DETAIL:  The API URL must not contain a user name or password .*the host here is "evil\.example\.net"/ ],
	[ q{'http://[::1]:pw@example.org:80'}, qr/DETAIL:  The API URL must not contain a user name or password .*the host here is "example\.org"/ ],
	[ q{'https://AC123:secret@api.twilio.com'}, qr/DETAIL:  The API URL must not contain a user name or password/ ],
	[ q{'http://@localhost:1'}, qr/DETAIL:  The API URL must not contain a user name or password/ ],
	[ q{'http://example.com'}, qr/DETAIL:  Credentials are never sent unencrypted: "http:\/\/" is accepted only for a test server on this machine \(127\.0\.0\.1, localhost or \[::1\]\), and the host here is "example\.com"/ ],
	[ q{'http://localhost.:1'}, qr/DETAIL:  Credentials are never sent unencrypted.*the host here is "localhost\."/ ],
	[ q{'https://api.twilio.com/?x=1'}, qr/DETAIL:  The API URL must not have a query string/ ],
	[ q{'https://api.twilio.com?'}, qr/DETAIL:  The API URL must not have a query string/ ],
	[ q{'https://api.twilio.com/#top'}, qr/DETAIL:  The API URL must not have a fragment/ ],
	[ q{'https://api.twilio.com#'}, qr/DETAIL:  The API URL must not have a fragment/ ],
	[ q{'https://api.twilio.com/2010-04-01'}, qr/DETAIL:  The API URL must not have a path \("\/2010-04-01"\): the API lives at the root of its host/ ],
	[ q{'https://api.twilio.com/a/..'}, qr/DETAIL:  The API URL must not have a path/ ],
	[ q{'https://'}, qr/DETAIL:  The API URL has no host name/ ],
	[ q{'http:///x'}, qr/DETAIL:  The API URL has no host name/ ],
	[ q{'https://api.twilio.com '}, qr/DETAIL:  The API URL contains a space or a control character/ ],
	[ q{E'https://api.twilio.com/\t'}, qr/DETAIL:  The API URL contains a space or a control character/ ],
	[ q{''}, qr/DETAIL:  The API URL is empty/ ],
	[ q{'ftp://127.0.0.1/'}, qr/DETAIL:  The API URL must start with "https:\/\/", not "ftp:\/\/"/ ],
	[ q{'api.twilio.com'}, qr/DETAIL:  The API URL must start with "https:\/\/"\./ ],
	[ q{'https://api.twilio.com:99999'}, qr/DETAIL:  The API URL cannot be parsed: .*[Pp]ort/ ],
	[ q{'http://127.0.0.1:0'}, qr/DETAIL:  The API URL's port must be 1 to 65535/ ],
);
for my $b (@bad)
{
	my ($literal, $detail) = @$b;
	my ($ret, $out, $err) = $node->psql('postgres',
		"ALTER SYSTEM SET sms.api_url = $literal");
	isnt($ret, 0, "api_url $literal: refused");
	like($err, qr/invalid value for parameter "sms\.api_url"/, "api_url $literal: invalid value");
	like($err, $detail, "api_url $literal: the detail says what is wrong");
	like($err, $hint, "api_url $literal: the hint gives a valid example");
}
unlike(slurp_file($node->data_dir . '/postgresql.auto.conf'), qr/api_url/,
	'no refused value reached postgresql.auto.conf');

for my $good ('https://api.twilio.com', 'https://api.twilio.com/',
	'https://api.example.com:8443', 'HTTPS://API.TWILIO.COM',
	"http://127.0.0.1:$port", "http://localhost:$port", "http://[::1]:$port",
	"http://LOCALHOST:$port/")
{
	my ($ret, $out, $err) = $node->psql('postgres',
		"ALTER SYSTEM SET sms.api_url = '$good'");
	is($ret, 0, "api_url '$good': accepted") or diag($err);
}
$node->safe_psql('postgres', 'ALTER SYSTEM RESET sms.api_url');

# --- sms.ca_file: a file that cannot be read is refused when it is set
my ($crt, $key) = make_cert($dir, 'good', 'IP:127.0.0.1,DNS:localhost');
my ($ret, $out, $err) = $node->psql('postgres',
	"ALTER SYSTEM SET sms.ca_file = '$dir/missing.crt'");
isnt($ret, 0, 'ca_file missing: refused');
like($err, qr/DETAIL:  Cannot open "\Q$dir\E\/missing\.crt": No such file or directory/,
	'ca_file missing: the detail has the OS error');
like($err, qr/HINT:  .*PEM/, 'ca_file missing: the hint says what to name');
($ret, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET sms.ca_file = '$dir'");
isnt($ret, 0, 'ca_file a directory: refused');
like($err, qr/DETAIL:  "\Q$dir\E" is a directory/, 'ca_file a directory: the detail says so');
copy($crt, "$dir/unreadable.crt") or die "copy: $!";
chmod 0, "$dir/unreadable.crt";
($ret, $out, $err) = $node->psql('postgres',
	"ALTER SYSTEM SET sms.ca_file = '$dir/unreadable.crt'");
isnt($ret, 0, 'ca_file unreadable: refused');
like($err, qr/DETAIL:  Cannot open "\Q$dir\E\/unreadable\.crt": Permission denied/,
	'ca_file unreadable: the detail has the OS error');
($ret, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET sms.ca_file = '$crt'");
is($ret, 0, 'ca_file readable: accepted') or diag($err);
$node->safe_psql('postgres', 'ALTER SYSTEM RESET sms.ca_file');

# --- a bad URL in postgresql.conf: the reload keeps the old value, and
# nothing goes to the host the URL really names (a second emulator stands
# for another host: the part before "@" only looks like one)
my $other = start_emulator();
my $offset = -s $node->logfile;
$node->append_conf('postgresql.conf',
	"sms.api_url = 'http://127.0.0.1:$port\@localhost:$other->{port}/'\n");
reload_and_wait($node);
ok(eval { $node->wait_for_log(qr/invalid value for parameter "sms\.api_url"/, $offset); 1 },
	'bad URL reloaded: the server log says it is invalid');
ok($node->log_contains(qr/configuration file .* contains errors; unaffected changes were applied/, $offset),
	'bad URL reloaded: the rest of the file was applied');
is($node->safe_psql('postgres', 'SHOW sms.api_url'), $emu->url,
	'bad URL reloaded: the old value stays');
my $id = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558671801', '+15017122661', 'after a bad reload')});
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'sent',
	'bad URL reloaded: a message is sent with the old value');
is(scalar(@{ $emu->creates }), 1, 'bad URL reloaded: the message went to the old URL');
is(scalar(@{ $other->requests }), 0, 'bad URL reloaded: nothing reached the other host');
$other->stop;

# --- setting mistakes: paused, nothing failed or counted; fixed, sent once
my $tls = start_emulator(tls_cert => $crt, tls_key => $key);
my $closed = PostgreSQL::Test::Cluster::get_free_port();
my $ca_copy = "$dir/ca-copy.crt";
my $n = 3;

# Starts the server with $conf (so that the worker certainly runs with it),
# runs $after_start, queues $n messages, and checks the pause (its reason,
# or the start of it); then runs $fix_files, appends $fix, reloads, and
# checks that each message is sent exactly once at $to.
sub mistake
{
	my (%m) = @_;
	my $name = $m{name};
	my $to = $m{to};

	$_->reset for ($emu, $tls);
	$node->append_conf('postgresql.conf', $m{conf});
	$node->restart;
	$m{after_start}->() if $m{after_start};
	my $offset = -s $node->logfile;
	queue_messages($node, $name, $n);

	# a reason that quotes OpenSSL is compared up to where OpenSSL's text begins
	my $reason = $m{reason} // $m{reason_prefix};
	my $condition = $m{reason} ? 'worker' : 'left(worker, ' . length("paused: $reason") . ')';
	wait_for_rows($node, "SELECT $condition FROM sms_stats", "paused: $reason",
		"$name: the queue pauses and sms_stats says why");
	ok(eval { $node->wait_for_log(qr/LOG:  sms: sending paused: \Q$reason\E/, $offset); 1 },
		"$name: the pause is logged with its reason");
	my $said = $node->safe_psql('postgres', 'SELECT worker FROM sms_stats');
	note("$name: $said");
	like($said, $m{reason_like}, "$name: the condition names the cause") if $m{reason_like};
	wait_for_rows($node,
		qq{SELECT count(*) FROM sms_outbox WHERE body LIKE '$name %' AND state = 'pending' AND attempts = 0},
		$n, "$name: every message is pending with no attempt counted");
	is($node->safe_psql('postgres', q{SELECT count(*) FROM sms_outbox WHERE state IN ('failed', 'unknown')}),
		0, "$name: nothing failed and nothing unknown");
	like($node->safe_psql('postgres',
			qq{SELECT min(error_message) FROM sms_outbox WHERE body LIKE '$name %' AND error_message IS NOT NULL}),
		qr/^transport error before the request was sent: /,
		"$name: the rows say the request never left");

	# the worker tries one message now and then, soon at first (from
	# sms.retry_base, doubling; how soon is a figure of make bench): a failed
	# try keeps the pause
	my $tried = $node->safe_psql('postgres',
		qq{SELECT max(last_attempt_at) FROM sms_outbox WHERE body LIKE '$name %'});
	wait_for_rows($node,
		qq{SELECT count(*) FROM sms_outbox WHERE body LIKE '$name %' AND last_attempt_at > '$tried' AND state = 'pending' AND attempts = 0},
		1, "$name: a later try fails alike and gives its attempt back");
	is($node->safe_psql('postgres', "SELECT $condition FROM sms_stats"), "paused: $reason",
		"$name: still paused after the try");
	is(scalar(@{ $to->creates }), 0, "$name: nothing was created");

	$offset = -s $node->logfile;
	$m{fix_files}->() if $m{fix_files};
	$node->append_conf('postgresql.conf', $m{fix});
	reload_and_wait($node);
	wait_for_rows($node,
		qq{SELECT count(*) FROM sms_outbox WHERE body LIKE '$name %' AND state = 'sent'},
		$n, "$name: fixed and reloaded, all sent");
	ok($node->log_contains(qr/sms: sending resumed: the configuration was reloaded/, $offset),
		"$name: the resumption is logged");
	is($node->safe_psql('postgres', q{SELECT worker FROM sms_stats}), 'running',
		"$name: running again");
	is($node->safe_psql('postgres',
			qq{SELECT min(attempts) || ' ' || max(attempts) FROM sms_outbox WHERE body LIKE '$name %'}),
		'1 1', "$name: one attempt counted per message, the one that sent it");
	is(scalar(@{ $to->creates }), $n, "$name: $n create requests at the emulator");
	exactly_once($to, $name, $n);
}

# a CA file removed after the server read the setting
copy($crt, $ca_copy) or die "copy: $!";
mistake(
	name => 'cafile',
	conf => "sms.api_url = '@{[ $tls->url ]}'\nsms.ca_file = '$ca_copy'\n",
	after_start => sub { unlink $ca_copy or die "unlink: $!"; },
	reason => qq{cannot load sms.ca_file "$ca_copy": No such file or directory},
	fix_files => sub { copy($crt, $ca_copy) or die "copy: $!"; },
	fix => '',
	to => $tls);

# https:// against a server that speaks plain HTTP
mistake(
	name => 'https',
	conf => "sms.api_url = 'https://127.0.0.1:$port'\nsms.ca_file = ''\n",
	reason_prefix => "TLS handshake with https://127.0.0.1:$port failed: ",
	fix => "sms.api_url = '@{[ $emu->url ]}'\n",
	to => $emu);

# a certificate the system does not trust (self-signed, no sms.ca_file)
mistake(
	name => 'untrusted',
	conf => "sms.api_url = '@{[ $tls->url ]}'\nsms.ca_file = ''\n",
	# (libcurl's words after "SSL certificate " differ between 7.88 and 8.17)
	reason_prefix => "cannot verify the certificate of @{[ $tls->url ]}: SSL certificate ",
	reason_like => qr/self-signed certificate/,
	fix => "sms.ca_file = '$crt'\n",
	to => $tls);

# nobody listening
mistake(
	name => 'refused',
	conf => "sms.api_url = 'http://127.0.0.1:$closed'\nsms.ca_file = ''\n",
	reason => "cannot connect to http://127.0.0.1:$closed: Connection refused",
	fix => "sms.api_url = '@{[ $emu->url ]}'\n",
	to => $emu);

ok(!$node->log_contains(qr/\Q$SmsTest::AUTH_TOKEN\E/), 'the token never appears in the log');

$node->stop;
$tls->stop;
$emu->stop;
done_testing();
