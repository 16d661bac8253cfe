
# Credentials replaced under steady load leave the worker's header list:
# the list built with the old ones (Base64 of "user:secret") is zeroed and
# freed once no request in flight uses it, even while other requests are
# always in flight.  (libcurl's own buffers keep copies of requests it sent
# until it reuses them: a header line inside a request, after the line
# before it, is libcurl's; the list's line stands alone.)

use strict;
use warnings;

use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $key_sid = 'SK' . ('b' x 32);
my $key_secret = 'key-secret-one';    # as long as the auth token
my $emu = start_emulator(
	args => [
		'--delay-ms', '20', '--api-key-sid', $key_sid,
		'--api-key-secret', $key_secret
	]);
my $node = sms_node('creds', $emu, conf => qq{
sms.max_concurrency = 8
sms.request_timeout = '60s'
sms.api_key_sid = '$key_sid'
sms.api_key_secret = '$key_secret'
});
my $old_header = 'Authorization: Basic ' . encode_base64("$key_sid:$key_secret", '');

# Does the worker's private memory hold this line, standing alone (not
# inside a request libcurl built)?
sub worker_memory_holds
{
	my ($pid, $needle) = @_;
	open(my $maps, '<', "/proc/$pid/maps") or die "maps: $!";
	open(my $mem, '<:raw', "/proc/$pid/mem") or die "mem: $!";
	my $found = 0;
	while (my $line = <$maps>)
	{
		my ($from, $to, $perms) = $line =~ /^([0-9a-f]+)-([0-9a-f]+) (\S+)/;
		next unless $perms eq 'rw-p';
		my ($start, $len) = (hex($from), hex($to) - hex($from));
		my $buf;
		next unless sysseek($mem, $start, 0);
		next unless defined sysread($mem, $buf, $len) && length($buf) > 0;
		for (my $p = index($buf, $needle); $p >= 0; $p = index($buf, $needle, $p + 1))
		{
			$found = 1 unless $p >= 2 && substr($buf, $p - 2, 2) eq "\r\n";
		}
		last if $found;
	}
	return $found;
}

my $pid = $node->safe_psql('postgres', 'SELECT worker_pid FROM sms_stats');

# One slow request, sent before the change, and one sent after it that is
# still in flight when the first is over: requests are in flight all along,
# yet no request in flight uses the old list once the first is answered.
sub send_slow
{
	my ($to, $delay_ms) = @_;
	$emu->fault(action => 'delay', to => $to, delay_ms => $delay_ms, count => 1);
	$node->safe_psql('postgres',
		"SELECT sms_send('$to', '+15017122661', 'slow $to', priority => 10)");
	wait_until(sub { grep { ($_->{form}{To} // '') eq $to } @{ $emu->requests } },
		"the slow request to $to reached the emulator");
}
sub requests_by
{
	my ($user) = @_;
	return scalar grep { ($_->{auth_user} // '') eq $user } @{ $emu->requests };
}

queue_messages($node, 'cr', 4000, batch => 1000);
$node->poll_query_until('postgres',
	q{SELECT count(*) >= 200 FROM sms_outbox WHERE state = 'sent'})
  or die 'drain did not start';
send_slow('+15559990001', 4000);
ok(worker_memory_holds($pid, $old_header),
	'while the API key is in use, the worker holds its header list');

# the auth token from now on, while the drain goes on
$node->safe_psql('postgres', q{ALTER SYSTEM SET sms.api_key_sid = ''});
$node->safe_psql('postgres', q{ALTER SYSTEM SET sms.api_key_secret = ''});
reload_and_wait($node);
wait_until(sub { requests_by($SmsTest::ACCOUNT_SID) > 0 },
	'requests are made with the auth token');
send_slow('+15559990002', 20000);
wait_for_rows($node, q{SELECT state FROM sms_outbox WHERE to_number = '+15559990001'}, 'sent',
	'the slow request made with the API key is answered');
# more requests set up after that
my $after = requests_by($SmsTest::ACCOUNT_SID);
wait_until(sub { requests_by($SmsTest::ACCOUNT_SID) >= $after + 100 },
	'a hundred more requests made with the auth token');

is($node->safe_psql('postgres', q{SELECT state FROM sms_outbox WHERE to_number = '+15559990002'}),
	'sending', 'a request made with the auth token is still in flight');
ok(!worker_memory_holds($pid, $old_header),
	'the header list of the replaced API key is gone from the worker\'s memory');

wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE state = 'sent'}, 4002,
	'all sent');
exactly_once($emu, 'cr', 4000);

$node->stop;
$emu->stop;
done_testing();
