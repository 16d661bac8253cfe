
# The application holds a row lock on a row the worker must write back: the
# worker's turn gives up after its one-second lock_timeout and is retried,
# while the worker itself, and its requests in flight, carry on.  A
# pg_cancel_backend() of the worker cancels at most a turn.  A message
# whose last attempt failed while its row was locked is failed with its
# error written once, whatever the turns that failed before.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $emu = start_emulator(args => [ '--delay-ms', '300' ]);
my $node = sms_node('locks', $emu,
	conf => "sms.max_concurrency = 4\nsms.max_attempts = 1\n");
my $pid = $node->safe_psql('postgres', 'SELECT worker_pid FROM sms_stats');

# --- a row lock held for three seconds
queue_messages($node, 'l', 40);
$node->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM sms_outbox WHERE state = 'sending' AND body LIKE 'l %'})
  or die 'nothing was claimed';
my $app = $node->background_psql('postgres');
my $locked = $app->query_safe(q{
BEGIN;
SELECT id FROM sms_outbox WHERE state = 'sending' AND body LIKE 'l %' ORDER BY id LIMIT 1 FOR UPDATE;
});
note "the application locked row $locked";
$app->query_safe('SELECT pg_sleep(3)');
$app->query_safe('COMMIT');
$app->quit;

wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'l %' AND state = 'sent'},
	40, 'row lock: all 40 sent once the lock was released');
exactly_once($emu, 'l', 40);
is($node->safe_psql('postgres', 'SELECT worker_pid FROM sms_stats'), $pid,
	'row lock: the worker carried on (same process)');
my $lookups = grep { $_->{method} eq 'GET' } @{ $emu->requests };
is($lookups, 0, 'row lock: no row was taken for one in doubt (no lookups)');
ok($node->log_contains(qr/canceling statement due to lock timeout/),
	'row lock: the turn gave up after lock_timeout, as the log says');

# --- pg_cancel_backend() of the worker between turns
$emu->reset;
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"), 't',
	'the worker was sent a cancel');
sleep 1;
is($node->safe_psql('postgres', 'SELECT worker_pid FROM sms_stats'), $pid,
	'cancel: the worker carried on (same process)');
queue_messages($node, 'c', 5);
wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'c %' AND state = 'sent'},
	5, 'cancel: messages queued afterwards are sent');
exactly_once($emu, 'c', 5);

# --- the last attempt fails (a 429) while the application holds the row:
# the write-back that makes it 'failed' times out, and is retried
$emu->reset;
$emu->config(delay_ms => 3000);
$emu->fault(action => '429', to => '+15558670601');
my $id = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558670601', '+15017122661', 'locked and limited')});
$node->poll_query_until('postgres', "SELECT state = 'sending' FROM sms_outbox WHERE id = $id")
  or die 'not claimed';
$app = $node->background_psql('postgres');
$app->query_safe("BEGIN; SELECT id FROM sms_outbox WHERE id = $id FOR UPDATE;");
# two turns fail on the lock: the write-back was planned twice
for (1 .. 2)
{
	my $offset = -s $node->logfile;
	$node->wait_for_log(qr/canceling statement due to lock timeout/, $offset);
}
$app->query_safe('COMMIT');
$app->quit;
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'failed',
	'exhausted under a lock: failed once the lock is gone');
my $error = $node->safe_psql('postgres', "SELECT error_message FROM sms_outbox WHERE id = $id");
like($error, qr/^gave up after 1 attempts: /, 'exhausted under a lock: says why');
unlike($error, qr/gave up.*gave up/s, 'exhausted under a lock: said once');
note "error_message: $error";

$node->stop;
$emu->stop;
done_testing();
