
# What each kind of reply does to a row: per-message 4xx errors fail it
# after one request; 429 and 5xx-before-create are retried until sent with
# exactly one creation; account-wide errors pause the queue without failing
# anything; a timeout or a 5xx after creating leaves 'unknown' and is then
# reconciled with the provider, never sent twice.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;
use JSON::PP qw(decode_json);

my $emu = start_emulator();
my $node = sms_node('outcomes', $emu, conf => "sms.request_timeout = '1s'\n");

sub send_one
{
	my ($to, $body) = @_;
	return $node->safe_psql('postgres',
		"SELECT sms_send('$to', '+15017122661', '$body')");
}

# --- per-message errors: failed, with the provider's code, one request
my %magic = (
	'+15005550001' => 21211,
	'+15005550004' => 21610,
	'+15005550009' => 21614,
	'+15005550002' => 21612,
	'+15005550003' => 21408,
);
for my $to (sort keys %magic)
{
	$emu->reset;
	my $id = send_one($to, "to $to");
	wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'failed',
		"$to: failed");
	my ($code, $msg, $attempts) = split /\|/, $node->safe_psql('postgres',
		"SELECT error_code, error_message, attempts FROM sms_outbox WHERE id = $id");
	is($code, $magic{$to}, "$to: error_code $magic{$to}");
	ok(length($msg) > 0, "$to: error_message from the provider ($msg)");
	is($attempts, 1, "$to: one attempt");
	is(scalar(@{ $emu->requests }), 1, "$to: exactly one request, not retried");
}

# --- 429 without and with Retry-After, and 500 before creating: retried, then sent once
for my $fault (
	[ '429', {} ],
	[ '429_retry_after', { retry_after => 1 } ],
	[ '500_before', {} ],
	[ 'drop_before', {} ])
{
	my ($action, $extra) = @$fault;
	$emu->reset;
	$emu->fault(action => $action, count => 2, %$extra);
	my $id = send_one('+15558670001', "retry after $action");
	wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'sent',
		"$action twice: then sent");
	my $attempts = $node->safe_psql('postgres', "SELECT attempts FROM sms_outbox WHERE id = $id");
	is_deeply($emu->created_per_body, { "retry after $action" => 1 },
		"$action: exactly one message created");
	my @creates = @{ $emu->creates };
	cmp_ok(scalar(@creates), '>=', 3, "$action: at least three create requests (two refused, one accepted)");
	if ($action eq '429_retry_after')
	{
		# each retry arrived at least the second the reply asked for after
		# the refusal (the emulator's own arrival times)
		my @gaps = map { ($creates[$_]{t_us} - $creates[ $_ - 1 ]{t_us}) / 1e6 } 1 .. 2;
		cmp_ok($gaps[$_], '>=', 1, sprintf('Retry-After: 1 honoured, retry %d came %.2f s later', $_ + 1, $gaps[$_]))
		  for 0 .. 1;
	}
	ok($attempts >= 3, "$action: attempts counted ($attempts)");
}

# --- 500 after creating: unknown, then reconciled to the existing message
$emu->reset;
$emu->fault(action => '500_after', count => 1);
my $id = send_one('+15558670002', 'created then 500');
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'sent',
	'500 after create: reconciled to sent');
my $sid = $node->safe_psql('postgres', "SELECT sid FROM sms_outbox WHERE id = $id");
my $msgs = $emu->messages;
is(scalar(@$msgs), 1, '500 after create: one message at the emulator, not resent');
is($sid, $msgs->[0]{sid}, '500 after create: the row has the SID the provider created');
ok((grep { $_->{method} eq 'GET' } @{ $emu->requests }),
	'500 after create: the provider was asked (list request)');

# --- the connection dropped after creating: same
$emu->reset;
$emu->fault(action => 'drop_after', count => 1);
$id = send_one('+15558670003', 'created then dropped');
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'sent',
	'dropped after create: reconciled to sent');
is(scalar(@{ $emu->messages }), 1, 'dropped after create: one message, not resent');

# --- a timeout: unknown first, then reconciled (created once)
$emu->reset;
$emu->fault(action => 'delay', delay_ms => 2500, count => 1);
$id = send_one('+15558670004', 'slow reply');
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'unknown',
	'timeout: row is unknown');
like($node->safe_psql('postgres', "SELECT error_message FROM sms_outbox WHERE id = $id"),
	qr/after the request was sent/i, 'timeout: error_message says the request went out');
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'sent',
	'timeout: reconciled to sent');
is(scalar(@{ $emu->messages }), 1, 'timeout: exactly one message created');

# --- 500 before creating, seen as unknown: the lookup finds nothing, sent again once
$emu->reset;
$emu->fault(action => '500_before', count => 1);
$id = send_one('+15558670005', 'nothing was created');
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'sent',
	'5xx before create: sent after the lookup found nothing');
is_deeply($emu->created_per_body, { 'nothing was created' => 1 },
	'5xx before create: exactly one message');
my @kinds = map { $_->{method} } @{ $emu->requests };
is_deeply(\@kinds, [ 'POST', 'GET', 'POST' ],
	'5xx before create: POST, then a lookup (GET), then one POST again');

# --- account-wide: wrong token pauses, nothing failed; fixed and reloaded, all sent
$emu->reset;
$node->append_conf('postgresql.conf', "sms.auth_token = 'wrong-token'\n");
reload_and_wait($node);
my @ids = map { send_one("+1555867010$_", "paused $_") } 1 .. 5;
wait_for_rows($node, q{SELECT worker FROM sms_stats},
	'paused: authentication failed (20003)', 'wrong token: the queue pauses (sms_stats)');
is($node->safe_psql('postgres', q{SELECT count(*) FROM sms_outbox WHERE state = 'failed' AND body LIKE 'paused %'}),
	0, 'wrong token: nothing failed');
is($node->safe_psql('postgres', q{SELECT count(*) FROM sms_outbox WHERE state = 'pending' AND body LIKE 'paused %'}),
	5, 'wrong token: all five still pending');
my $auth_requests = scalar(@{ $emu->requests });
cmp_ok($auth_requests, '<=', 2, "wrong token: the worker stopped sending ($auth_requests requests)");
ok($node->log_contains(qr/sending paused: authentication failed \(20003\)/),
	'wrong token: the pause is logged');
ok(!$node->log_contains(qr/wrong-token/), 'the token never appears in the log');

$node->append_conf('postgresql.conf', "sms.auth_token = '$SmsTest::AUTH_TOKEN'\n");
reload_and_wait($node);
wait_for_rows($node,
	q{SELECT count(*) FROM sms_outbox WHERE state = 'sent' AND body LIKE 'paused %'},
	5, 'token fixed and reloaded: all five sent');
is($node->safe_psql('postgres', q{SELECT worker FROM sms_stats}), 'running', 'running again');
my $per = $emu->created_per_body;
is(scalar(grep { /^paused / } keys %$per), 5, 'five messages created');
ok(!(grep { $per->{$_} != 1 } keys %$per), 'each created exactly once');
is($node->safe_psql('postgres', q{SELECT max(attempts) FROM sms_outbox WHERE body LIKE 'paused %'}),
	1, 'the refused attempt was given back: one attempt each');

# --- 21606 (sender not owned) pauses too; a reload resumes
$emu->reset;
$id = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558670201', '+15005550007', 'not our number')});
wait_for_rows($node, q{SELECT worker FROM sms_stats},
	'paused: sender not owned by the account (21606)', '21606 pauses the queue');
is($node->safe_psql('postgres', "SELECT state FROM sms_outbox WHERE id = $id"), 'pending',
	'21606: the message stays pending');
$node->safe_psql('postgres', "SELECT sms_cancel($id)");
# nothing is left to probe the pause with: only the reload ends it
my $offset = -s $node->logfile;
reload_and_wait($node);
is($node->safe_psql('postgres', q{SELECT worker FROM sms_stats}), 'running', 'reload resumes');
ok($node->log_contains(qr/sms: sending resumed: the configuration was reloaded/, $offset),
	'21606: the reload ended the pause, as the log says');

# --- attempts exhausted on a transient failure: failed
$emu->reset;
$node->append_conf('postgresql.conf', "sms.max_attempts = 3\n");
reload_and_wait($node);
$emu->fault(action => '429', to => '+15558670301');
$id = send_one('+15558670301', 'always rate limited');
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'failed',
	'429 forever: failed after sms.max_attempts');
is($node->safe_psql('postgres', "SELECT attempts FROM sms_outbox WHERE id = $id"), 3,
	'three attempts');
is(scalar(@{ $emu->creates }), 3, 'three requests made');
is(scalar(@{ $emu->messages }), 0, 'nothing created');

# --- twins: the same text to the same number twice, both unknown, and the
# provider has one of them.  The lookup answers for both: the one message it
# finds settles one row, and the other is sent again, not taken for it.
$emu->reset;
$node->append_conf('postgresql.conf', "sms.max_attempts = 10\n");
reload_and_wait($node);
$emu->fault(action => '500_after', to => '+15558670401', count => 1);
$emu->fault(action => 'drop_before', to => '+15558670401', count => 1);
$node->safe_psql('postgres', q{
SELECT sms_send('+15558670401', '+15017122661', 'your table is ready'),
       sms_send('+15558670401', '+15017122661', 'your table is ready')});
wait_for_rows($node,
	q{SELECT count(DISTINCT sid) FROM sms_outbox WHERE body = 'your table is ready' AND state = 'sent'},
	2, 'twins: both sent, each with a SID of its own');
is(scalar(@{ $emu->messages }), 2, 'twins: the provider has two messages');
is(scalar(grep { $_->{method} eq 'GET' } @{ $emu->requests }), 1,
	'twins: one lookup answered for both rows');

# --- twins claimed a while apart, both unknown, in one lookup: the provider
# has M1 and, 3 seconds later, M2.  Row A's attempt began before both; row
# B's began so late that only M2 can be its.  M2, listed first, must go to
# B (the row claimed last), M1 to A: taking M2 for A would leave B nothing
# and send its text a second time.
$emu->reset;
my $api = $emu->url . "/2010-04-01/Accounts/$SmsTest::ACCOUNT_SID/Messages.json";
sub create_at_provider
{
	my $reply = $emu->_curl('-u', "$SmsTest::ACCOUNT_SID:$SmsTest::AUTH_TOKEN",
		'--data-urlencode', 'To=+15558670501', '--data-urlencode', 'From=+15017122661',
		'--data-urlencode', 'Body=see you at 8', $api);
	return decode_json($reply);
}
my $m1 = create_at_provider();
# M2 three seconds of the provider's clock later
$node->poll_query_until('postgres',
	"SELECT clock_timestamp() >= to_timestamp('$m1->{date_created}', 'Dy, DD Mon YYYY HH24:MI:SS') AT TIME ZONE 'UTC' + interval '3 s'")
  or die 'clock did not advance';
my $m2 = create_at_provider();
$node->safe_psql('postgres', qq{
WITH t AS (SELECT to_timestamp('$m1->{date_created}', 'Dy, DD Mon YYYY HH24:MI:SS') AT TIME ZONE 'UTC' AS m1)
INSERT INTO sms_outbox (to_number, from_number, body, state, attempts, last_attempt_at, next_attempt_at)
SELECT '+15558670501', '+15017122661', 'see you at 8', 'unknown', 1, a, now()
  FROM t, LATERAL (VALUES (m1 - interval '5 s', 1), (m1 + interval '31.5 s', 2)) v(a, o)
 ORDER BY o});
wait_for_rows($node,
	q{SELECT count(*) FROM sms_outbox WHERE body = 'see you at 8' AND state = 'sent'},
	2, 'spaced twins: both settled');
is($node->safe_psql('postgres',
		q{SELECT string_agg(sid, ',' ORDER BY id) FROM sms_outbox WHERE body = 'see you at 8'}),
	"$m1->{sid},$m2->{sid}", 'spaced twins: the earlier row has M1, the later M2');
is(scalar(@{ $emu->creates }), 2, 'spaced twins: nothing sent again');

$node->stop;
$emu->stop;
done_testing();
