
# send_at, priority and sms_cancel as the worker honours them.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $emu = start_emulator();
my $node = sms_node('schedule', $emu);

# --- send_at in the future: nothing goes out before it
my $id = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558670401', '+15017122661', 'in three seconds', send_at => now() + interval '3 seconds')});
# another message sent meanwhile proves the worker is awake and looking
my $other = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558670402', '+15017122661', 'right away')});
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $other", 'sent', 'an unscheduled message goes at once');
is($node->safe_psql('postgres', "SELECT state FROM sms_outbox WHERE id = $id"), 'pending',
	'send_at in the future: still pending');
ok(!exists $emu->created_per_body->{'in three seconds'}, 'send_at in the future: nothing at the emulator yet');
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'sent', 'sent once send_at has come');
is($node->safe_psql('postgres', "SELECT sent_at >= send_at FROM sms_outbox WHERE id = $id"), 't',
	'sent_at is not before send_at');

# --- priority: higher first (one request at a time makes the order visible)
$emu->reset;
$node->append_conf('postgresql.conf', "sms.max_concurrency = 1\n");
reload_and_wait($node);
$node->safe_psql('postgres', q{
BEGIN;
SELECT sms_send('+15558670410', '+15017122661', 'priority ' || p, priority => p)
  FROM unnest(ARRAY[0, 5, -1, 7, 10, 1]) p;
COMMIT;
});
wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'priority %' AND state = 'sent'}, 6);
my @order = map { $_->{form}{Body} } @{ $emu->creates };
is_deeply(\@order,
	[ 'priority 10', 'priority 7', 'priority 5', 'priority 1', 'priority 0', 'priority -1' ],
	'messages go out in priority order');

# --- sms_cancel: a canceled message is never sent
$emu->reset;
$id = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558670420', '+15017122661', 'canceled', send_at => now() + interval '1 second')});
is($node->safe_psql('postgres', "SELECT sms_cancel($id)"), 't', 'sms_cancel of a pending message: true');
is($node->safe_psql('postgres', "SELECT sms_cancel($id)"), 'f', 'sms_cancel again: false');
$other = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558670421', '+15017122661', 'after the cancel', send_at => now() + interval '2 seconds')});
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $other", 'sent');
is($node->safe_psql('postgres', "SELECT state FROM sms_outbox WHERE id = $id"), 'canceled', 'still canceled');
is_deeply($emu->created_per_body, { 'after the cancel' => 1 }, 'the canceled message never reached the emulator');
is($node->safe_psql('postgres', "SELECT sms_cancel($other)"), 'f', 'sms_cancel of a sent message: false');

# --- sms.rate_limit: 5 per second
$emu->reset;
$node->append_conf('postgresql.conf', "sms.max_concurrency = 8\nsms.rate_limit = 5\n");
reload_and_wait($node);
$node->safe_psql('postgres', q{
SELECT sms_send('+15558670430', '+15017122661', 'rate ' || i) FROM generate_series(1, 10) i;
});
wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'rate %' AND state = 'sent'}, 10);
my @t = map { $_->{t_us} } @{ $emu->creates };
my $span = ($t[-1] - $t[0]) / 1e6;
cmp_ok($span, '>=', 1.4, sprintf('rate_limit 5/s: 10 messages spread over %.2f s', $span));

$node->stop;
$emu->stop;
done_testing();
