
# sms.workers = 2: both workers send, their claims never overlap, a
# restarted worker takes back only its own rows, and the rate limit is the
# sum of the workers' shares.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $emu = start_emulator(args => [ '--delay-ms', '20' ]);
my $node = sms_node('workers', $emu,
	conf => "sms.workers = 2\nsms.max_concurrency = 16\nrestart_after_crash = on\n");

sub worker_pids
{
	return split /\n/, $node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'sms worker' ORDER BY pid});
}

$node->poll_query_until('postgres',
	q{SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'sms worker'})
  or die 'two workers did not start';
my @pids = worker_pids();
is(scalar(@pids), 2, 'two sms workers run');
my $first = $node->safe_psql('postgres', 'SELECT worker_pid FROM sms_stats');
ok((grep { $_ == $first } @pids), 'sms_stats shows the first worker');
# (the first worker notices the extension, created after it started, at
# its next look)
wait_for_rows($node, 'SELECT worker FROM sms_stats', 'running', 'the condition is running');

# --- both send, and together once each
queue_messages($node, 'w', 2000, batch => 500);
wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'w %' AND state = 'sent'},
	2000, 'two workers: all 2,000 sent');
is($node->safe_psql('postgres',
	q{SELECT string_agg(claimed_by::text, ',' ORDER BY claimed_by) FROM
	  (SELECT DISTINCT claimed_by FROM sms_outbox WHERE body LIKE 'w %') d}),
	'0,1', 'both workers claimed messages');
exactly_once($emu, 'w', 2000);

# --- SIGTERM to the second worker mid-drain: it stops and is started again;
# its restart must leave the first worker's rows in flight alone, which would
# otherwise turn 'unknown' and be looked up at the provider
$emu->reset;
queue_messages($node, 't', 3000, batch => 1000);
$node->poll_query_until('postgres',
	q{SELECT count(*) >= 800 FROM sms_outbox WHERE state = 'sent' AND body LIKE 't %'})
  or die 'drain stalled';
my $second = $node->safe_psql('postgres',
	qq{SELECT pid FROM pg_stat_activity WHERE backend_type = 'sms worker' AND pid <> $first});
ok($node->safe_psql('postgres', "SELECT pg_terminate_backend($second)") eq 't',
	'the second worker was signalled');
$node->poll_query_until('postgres',
	qq{SELECT count(*) = 2 FROM pg_stat_activity
	   WHERE backend_type = 'sms worker' AND pid <> $second})
  or die 'the second worker did not come back';
wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 't %' AND state = 'sent'},
	3000, 'second worker restarted: all 3,000 sent');
exactly_once($emu, 't', 3000);
my $lookups = grep { $_->{method} eq 'GET' } @{ $emu->requests };
is($lookups, 0, 'no row of the first worker was taken for one in doubt (no lookups)');
is($node->safe_psql('postgres', 'SELECT worker_pid FROM sms_stats'), $first,
	'the first worker ran on throughout');

# --- kill -9 of the second worker: the server restarts both, each takes
# back its own rows, and reconciliation settles them
$emu->reset;
queue_messages($node, 'k', 3000, batch => 1000);
$node->poll_query_until('postgres',
	q{SELECT count(*) >= 800 FROM sms_outbox WHERE state = 'sent' AND body LIKE 'k %'})
  or die 'drain stalled';
($second) = grep { $_ != $first } worker_pids();
ok(kill('KILL', $second), "kill -9 of the second worker ($second)");
$node->poll_query_until('postgres',
	qq{SELECT count(*) = 2 FROM pg_stat_activity
	   WHERE backend_type = 'sms worker' AND pid NOT IN ($first, $second)})
  or die 'the workers did not come back';
wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'k %' AND state = 'sent'},
	3000, 'kill -9: all 3,000 sent');
is($node->safe_psql('postgres', q{SELECT count(*) FROM sms_outbox WHERE state <> 'sent'}), 0,
	'kill -9: no row left in another state');
exactly_once($emu, 'k', 3000);

# --- a wrong token pauses both workers; fixed and reloaded, both send again
$emu->reset;
my $offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "sms.auth_token = 'wrong-token'\n");
reload_and_wait($node);
queue_messages($node, 'p', 40);
# Whichever worker claims first meets a refusal, pauses and hands its rows
# back, which wakes the other: each pauses on a refusal of its own.  (How
# soon the second follows is a figure of make bench.)
for my $pid (worker_pids())
{
	ok( eval {
			$node->wait_for_log(
				qr/\[$pid\] LOG:  sms: sending paused: authentication failed \(20003\)/, $offset);
			1;
		},
		"wrong token: worker $pid paused");
}
is($node->safe_psql('postgres', 'SELECT worker FROM sms_stats'),
	'paused: authentication failed (20003)', 'wrong token: sms_stats says why');
wait_for_rows($node,
	q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'p %' AND state = 'pending' AND attempts = 0},
	40, 'wrong token: all 40 handed back, pending with no attempt counted, none failed');
my $handed_back_us = $node->safe_psql('postgres',
	q{SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint});
# only what was in flight when the refusals came (16 at most), then nothing
my @refused = grep { $_->{method} eq 'POST' } @{ $emu->requests };
cmp_ok(scalar(@refused), '<=', 16,
	'wrong token: the workers stopped sending (' . scalar(@refused) . ' requests)');
is(scalar(grep { $_->{status} != 401 } @refused), 0, 'wrong token: each request refused (401)');

my $reload_us = $node->safe_psql('postgres',
	q{SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint});
$node->append_conf('postgresql.conf', "sms.auth_token = '$SmsTest::AUTH_TOKEN'\n");
reload_and_wait($node);
wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'p %' AND state = 'sent'},
	40, 'token fixed and reloaded: all 40 sent');
exactly_once($emu, 'p', 40);
is( scalar(
		grep { $_->{t_us} > $handed_back_us && $_->{t_us} < $reload_us } @{ $emu->requests }),
	0, 'wrong token: no request from the hand-back until the fixed token was reloaded');
queue_messages($node, 'q', 1000, batch => 500);
wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'q %' AND state = 'sent'},
	1000, 'after the pause: 1,000 more sent');
is($node->safe_psql('postgres',
	q{SELECT count(DISTINCT claimed_by) FROM sms_outbox WHERE body LIKE 'q %'}),
	2, 'after the pause: both workers send again');

# --- a row the second worker leaves 'unknown' (a 500 after creating) is
# reconciled by the first, which alone reconciles, and which the second
# tells at once rather than leaving the row to the first's idle check (how
# soon it settles is a figure of make bench).  The first worker is stopped
# (SIGSTOP) until the second has claimed the message, so that the second
# claims it whichever would have been faster.
$emu->reset;
$emu->fault(action => '500_after', to => '+15558679900', count => 1);
my $first_now = $node->safe_psql('postgres', 'SELECT worker_pid FROM sms_stats');
kill 'STOP', $first_now;
my $id = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558679900', '+15017122661', 'ambiguous')});
my $claimed = $node->poll_query_until('postgres',
	"SELECT claimed_by IS NOT NULL FROM sms_outbox WHERE id = $id");
kill 'CONT', $first_now;
die "message $id was not claimed while the first worker was stopped" unless $claimed;
is($node->safe_psql('postgres', "SELECT claimed_by FROM sms_outbox WHERE id = $id"), '1',
	'ambiguous: the second worker claimed the message');
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'sent',
	'ambiguous: the row the second worker left unknown was reconciled to sent');
is(join(', ', map { "$_->{method} $_->{status}" } @{ $emu->requests }), 'POST 500, GET 200',
	'ambiguous: the create failed after creating, then one lookup found the message');
is_deeply($emu->created_per_body, { 'ambiguous' => 1 }, 'ambiguous: created once');
is($node->safe_psql('postgres', "SELECT sid FROM sms_outbox WHERE id = $id"),
	$emu->messages->[0]{sid}, 'ambiguous: the row has the SID the provider created');

# Set sms.rate_limit, queue $n messages and wait until all are sent.
sub send_at_rate
{
	my ($rate, $prefix, $n) = @_;
	$emu->reset;
	$node->append_conf('postgresql.conf', "sms.rate_limit = $rate\n");
	reload_and_wait($node);
	queue_messages($node, $prefix, $n);
	wait_for_rows($node,
		qq{SELECT count(*) FROM sms_outbox WHERE body LIKE '$prefix %' AND state = 'sent'},
		$n, "rate $rate/s over two workers: all $n sent");
}

# --- the rate limit is shared: 10/s over two workers is 5/s each
send_at_rate(10, 'r', 20);
my @t = sort { $a <=> $b } map { $_->{t_us} } grep { $_->{method} eq 'POST' } @{ $emu->requests };
my $span = ($t[-1] - $t[0]) / 1e6;
# each worker's bucket starts with one token: 5/s each makes about 1.8 s,
# where two unshared buckets of 10/s would take 0.9 s
cmp_ok($span, '>=', 1.4, sprintf('20 messages at 10/s over two workers took %.2f s', $span));

# --- a rate of 1/s cannot be shared: the second worker claims nothing
send_at_rate(1, 'one', 3);
is($node->safe_psql('postgres',
	q{SELECT string_agg(DISTINCT claimed_by::text, ',') FROM sms_outbox WHERE body LIKE 'one %'}),
	'0', 'rate 1/s over two workers: the first worker sent them all');
exactly_once($emu, 'one', 3);

$node->stop;
$emu->stop;
done_testing();
