
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

# --- a row lock held until a turn has given up on it
queue_messages($node, 'l', 40);
$node->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM sms_outbox WHERE state = 'sending' AND body LIKE 'l %'})
  or die 'nothing was claimed';
my $offset = -s $node->logfile;
my $app = $node->background_psql('postgres');
my $locked = $app->query_safe(q{
BEGIN;
SELECT id FROM sms_outbox WHERE state = 'sending' AND body LIKE 'l %' ORDER BY id LIMIT 1 FOR UPDATE;
});
note "the application locked row $locked";
ok(eval { $node->wait_for_log(qr/canceling statement due to lock timeout/, $offset); 1 },
	'row lock: the turn gave up after lock_timeout, as the log says');
$app->query_safe('COMMIT');
$app->quit;

wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'l %' AND state = 'sent'},
	40, 'row lock: all 40 sent once the lock was released');
exactly_once($emu, 'l', 40);
is($node->safe_psql('postgres', 'SELECT worker_pid FROM sms_stats'), $pid,
	'row lock: the worker carried on (same process)');
my $lookups = grep { $_->{method} eq 'GET' } @{ $emu->requests };
is($lookups, 0, 'row lock: no row was taken for one in doubt (no lookups)');

# --- pg_cancel_backend() of the worker between turns
$emu->reset;
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"), 't',
	'the worker was sent a cancel');
# the messages' commit wakes the worker after the cancel arrived: once they
# are sent, the worker has been through it
queue_messages($node, 'c', 5);
wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'c %' AND state = 'sent'},
	5, 'cancel: messages queued afterwards are sent');
exactly_once($emu, 'c', 5);
is($node->safe_psql('postgres', 'SELECT worker_pid FROM sms_stats'), $pid,
	'cancel: the worker that sent them carried on through the cancel (same process)');

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

# --- turns that fail after they claimed (a deferred trigger of the
# application's refuses the commit): each is rolled back, and the jobs it
# claimed are freed, not kept for good.
$emu->reset;
$emu->config(delay_ms => 0);
$node->safe_psql('postgres', q{
CREATE TABLE refuse_claims (on_ boolean);
INSERT INTO refuse_claims VALUES (true);
CREATE FUNCTION refuse_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF (SELECT on_ FROM public.refuse_claims) THEN
		RAISE EXCEPTION 'claims refused for the test';
	END IF;
	RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER refuse_claim AFTER UPDATE ON sms_outbox
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
	WHEN (NEW.state = 'sending') EXECUTE FUNCTION refuse_claim();
});
$offset = -s $node->logfile;
queue_messages($node, 'd', 50);
# fifteen turns claim and fail (the worker's search_path is pg_catalog:
# the function names its table with the schema)
wait_until(sub { (() = slurp_file($node->logfile, $offset) =~ /claims refused for the test/g) >= 15 },
	'failed turns: fifteen turns claimed and failed');
my $log_from = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
$node->wait_for_log(qr/logging memory contexts of PID $pid/, $log_from);
$node->wait_for_log(qr/Grand total:/, $log_from);
my $jobs = () = slurp_file($node->logfile, $log_from) =~ /\bsms job: /g;
diag "job contexts held after fifteen failed turns: $jobs";
cmp_ok($jobs, '<=', 32, 'failed turns: no more jobs held than one claim (sms job contexts)');
$node->safe_psql('postgres', 'UPDATE refuse_claims SET on_ = false');
wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'd %' AND state = 'sent'},
	50, 'failed turns: all sent once the trigger lets the claims through');
exactly_once($emu, 'd', 50);

$node->stop;
$emu->stop;
done_testing();
