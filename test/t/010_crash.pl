
# Nothing lost, nothing sent twice, whatever happens to the worker or the
# server: kill -9 of the worker three times during a drain of 5,000
# messages, then pg_ctl stop -m immediate in the middle of another drain.
# Rolled-back messages are queued alongside and must never be sent.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use SmsTest;

# 20 ms per reply and 16 in flight: a drain of 5,000 lasts several seconds
my $emu = start_emulator(args => [ '--delay-ms', '20' ]);
my $node = sms_node('crash', $emu,
	conf => "sms.max_concurrency = 16\nrestart_after_crash = on\n");

# --- kill -9 three times at random moments
queue_messages($node, 'rb1', 200, rollback => 1);
queue_messages($node, 'k', 5000, batch => 1000);
queue_messages($node, 'rb2', 200, rollback => 1);
for my $round (1 .. 3)
{
	my $target = int(800 * $round + rand(600));
	$node->poll_query_until('postgres',
		"SELECT count(*) >= $target FROM sms_outbox WHERE state = 'sent' AND body LIKE 'k %'")
	  or die "drain stalled before kill $round";
	my $pid = $node->safe_psql('postgres', 'SELECT worker_pid FROM sms_stats');
	kill 'KILL', $pid;
	note "kill -9 of worker $pid with at least $target sent";
	# the postmaster reinitialises; wait for a new worker
	$node->poll_query_until('postgres',
		"SELECT worker_pid IS NOT NULL AND worker_pid <> $pid FROM sms_stats")
	  or die "no worker after kill $round";
}
wait_for_rows($node,
	q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'k %' AND state = 'sent'},
	5000, 'kill -9 x3: all 5,000 sent');
is($node->safe_psql('postgres', q{SELECT count(*) FROM sms_outbox WHERE state NOT IN ('sent')}), 0,
	'kill -9 x3: no row left in another state');
exactly_once($emu, 'k', 5000, rolled_back => 'rb');
# rows in flight at each kill were looked up at the provider, not resent blindly
my $lookups = grep { $_->{method} eq 'GET' } @{ $emu->requests };
cmp_ok($lookups, '>', 0, "rows caught in flight were reconciled ($lookups lookups)");

# --- pg_ctl stop -m immediate in the middle of a drain, then start
$emu->reset;
queue_messages($node, 'i', 5000, batch => 1000);
$node->poll_query_until('postgres',
	q{SELECT count(*) >= 1500 FROM sms_outbox WHERE state = 'sent' AND body LIKE 'i %'})
  or die 'drain stalled';
$node->stop('immediate');
note 'stopped with -m immediate';
$node->start;
wait_for_rows($node,
	q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'i %' AND state = 'sent'},
	5000, 'immediate stop: all 5,000 sent after the restart');
exactly_once($emu, 'i', 5000);

$node->stop;
$emu->stop;
done_testing();
