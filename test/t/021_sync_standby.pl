
# The worker and a synchronous standby that stops answering.
#
# A claim (pending -> sending) commits before its message goes out, so that
# a promoted standby knows of every message the old primary may have sent.
# PostgreSQL ends a commit's wait for the standby early when the postmaster
# dies and on a cancel; the commit is then local only.  Nothing claimed by
# such a commit may be sent: a standby promoted without the claim would
# send it again.
#
# 1. The standby's WAL sender is stopped just before a batch becomes due, so
#    the worker's claim waits; the primary's postmaster is killed; the
#    standby is promoted and sends the batch.  Each message once.
# 2. The wait is canceled: the claim is held, shown in sms_stats, and sent
#    once synchronous replication no longer asks for the standby.
# 3. pg_terminate_backend() and pg_ctl stop -m fast while the claim waits for
#    a standby that never answers: both are prompt, and every row is sent
#    exactly once in the end.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use SmsTest;

my $emu = start_emulator(args => [ '--delay-ms', '20' ]);
my $primary = sms_node('primary', $emu, init => { allows_streaming => 1 });
$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
# the stalled WAL sender must not be replaced by a new connection
$standby->append_conf('postgresql.conf', "wal_receiver_timeout = 0\n");
$standby->start;
$primary->wait_for_catchup($standby);
$primary->append_conf('postgresql.conf', "synchronous_standby_names = '*'\n");
reload_and_wait($primary);
$primary->poll_query_until('postgres',
	q{SELECT sync_state = 'sync' FROM pg_stat_replication})
  or die 'standby not synchronous';

# the worker is up and has sent something: its connection is warm
queue_messages($primary, 'warm', 5);
wait_for_rows($primary, q{SELECT count(*) FROM sms_outbox WHERE state = 'sent'}, 5,
	'warm-up messages sent');

# Messages due in a few seconds, on the standby before it stalls.
sub queue_due_later
{
	my ($node, $prefix, $n, $secs, $sync) = @_;
	$node->safe_psql('postgres', qq{
SET synchronous_commit = $sync;
SELECT count(sms_send('+1555' || lpad(i::text, 7, '0'), '+15017122661', '$prefix ' || i,
                      send_at => now() + interval '$secs s'))
  FROM generate_series(1, $n) i;
});
}

sub worker_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'sms worker'});
}

sub creates_like
{
	my ($prefix) = @_;
	my $per = $emu->created_per_body;
	return scalar grep { /^\Q$prefix\E / } keys %$per;
}

sub wait_for_sync_rep_wait
{
	my ($node, $what) = @_;
	ok( $node->poll_query_until('postgres',
			q{SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'sms worker'},
			'SyncRep'),
		$what);
}

# --- 1. stalled standby, primary killed ---------------------------------

queue_due_later($primary, 'stall', 32, 4, 'on');
$primary->wait_for_catchup($standby);
my $walsender = $primary->safe_psql('postgres', 'SELECT pid FROM pg_stat_replication');
kill 'STOP', $walsender;
note "WAL sender $walsender stopped";

wait_for_sync_rep_wait($primary, 'the claim waits for the stalled standby');
wait_for_rows($primary, q{SELECT worker FROM sms_stats},
	'waiting for synchronous standby', 'sms_stats says the worker waits for the standby');
my $old_worker = worker_pid($primary);

$primary->kill9;
note 'primary postmaster killed';
# the worker's commit returns as committed locally only; it must exit
# without sending what it claimed
my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
while (kill(0, $old_worker) && time < $deadline)
{
	select(undef, undef, undef, 0.05);
}
ok(!kill(0, $old_worker), 'the old primary\'s worker exited');
kill 'KILL', $walsender;
is(creates_like('stall'), 0, 'nothing claimed after the standby stalled was sent');

$standby->promote;
my $new = $standby;
wait_for_rows($new, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'stall %' AND state = 'sent'},
	32, 'the promoted standby sent the batch');
exactly_once($emu, 'stall', 32);

# --- 2. the wait is canceled ----------------------------------------------

# a standby that never answers: every commit that asks for one waits
$new->append_conf('postgresql.conf', "synchronous_standby_names = 'nosuch'\n");
reload_and_wait($new);
queue_due_later($new, 'cancel', 20, 1, 'local');
wait_for_sync_rep_wait($new, 'the claim waits for a standby that never answers');
my $log_offset = -s $new->logfile;
$new->safe_psql('postgres',
	q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE backend_type = 'sms worker'});
$new->wait_for_log(qr/claimed messages are held until the synchronous standby has the claim/,
	$log_offset);
pass('the worker holds the claim whose wait was canceled');
is($new->safe_psql('postgres', q{SELECT worker FROM sms_stats}),
	'waiting for synchronous standby', 'sms_stats says why nothing is sent');
is(creates_like('cancel'), 0, 'nothing claimed by the canceled commit was sent');

# the operator gives up on the standby: the held claim goes out
$log_offset = -s $new->logfile;
$new->append_conf('postgresql.conf', "synchronous_standby_names = ''\n");
reload_and_wait($new);
$new->wait_for_log(qr/held messages go back to pending: a synchronous standby has their claim, or synchronous replication is off/,
	$log_offset);
wait_for_rows($new, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'cancel %' AND state = 'sent'},
	20, 'the held messages were sent');
exactly_once($emu, 'cancel', 20);

# --- 3. terminate and stop while the claim waits --------------------------

$new->append_conf('postgresql.conf', "synchronous_standby_names = 'nosuch'\n");
reload_and_wait($new);
queue_due_later($new, 'stop', 20, 1, 'local');
wait_for_sync_rep_wait($new, 'the claim waits again');
my $pid = worker_pid($new);
$new->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$deadline = time + $PostgreSQL::Test::Utils::timeout_default;
while (kill(0, $pid) && time < $deadline)
{
	select(undef, undef, undef, 0.05);
}
ok(!kill(0, $pid), 'pg_terminate_backend() ended the worker waiting for the standby');
is(creates_like('stop'), 0, 'nothing was sent at termination');

# the postmaster starts the worker again; its claim waits as well
wait_for_sync_rep_wait($new, 'the restarted worker waits for the standby');
my $t0 = time;
ok($new->stop('fast', fail_ok => 1),
	'pg_ctl stop -m fast succeeded while the worker waited for the standby');
diag(sprintf('pg_ctl stop -m fast took %.1f s', time - $t0));
is(creates_like('stop'), 0, 'nothing was sent at shutdown');

# every row truthful: after a start without the standby, each is sent once
$new->append_conf('postgresql.conf', "synchronous_standby_names = ''\n");
$new->start;
wait_for_rows($new, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'stop %' AND state = 'sent'},
	20, 'after the restart the messages were sent');
exactly_once($emu, 'stop', 20);
is($new->safe_psql('postgres', q{SELECT count(*) FROM sms_outbox WHERE state <> 'sent'}),
	0, 'every row ended sent');

$new->stop;
$emu->stop;
done_testing();
