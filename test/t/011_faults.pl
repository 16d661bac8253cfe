
# A fault mix on 5,000 messages: 500 after creating, 500 before creating,
# 429 with and without Retry-After, the connection dropped after creating,
# and replies slower than sms.request_timeout.  Every committed message is
# created exactly once, every rolled-back one never.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use SmsTest;

my $emu = start_emulator();
my $node = sms_node('faults', $emu,
	conf => "sms.request_timeout = '1s'\nsms.max_attempts = 20\n");

# Rules are tried in order and a request that loses one rule's draw goes on
# to the next, so each percent is of what is left: about 5, 5, 5, 2, 2, 2 %
# of all requests.
$emu->fault(action => '500_after', percent => 5);
$emu->fault(action => '500_before', percent => 5);
$emu->fault(action => '429', percent => 6);
$emu->fault(action => '429_retry_after', percent => 2, retry_after => 1);
$emu->fault(action => 'drop_after', percent => 2);
$emu->fault(action => 'delay', percent => 2, delay_ms => 1500);

queue_messages($node, 'rb', 300, rollback => 1);
queue_messages($node, 'f', 5000, batch => 500);

wait_for_rows($node,
	q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'f %' AND state = 'sent'},
	5000, 'fault mix: all 5,000 sent');
is($node->safe_psql('postgres', q{SELECT count(*) FROM sms_outbox WHERE state <> 'sent'}), 0,
	'fault mix: nothing failed or stuck');

my $rules = $emu->get_json('/_emulator/faults');
$rules = $rules->{rules} if ref $rules eq 'HASH';
my $requests = $emu->summary->{requests};
for my $r (@$rules)
{
	my $applied = $r->{applied} // 0;
	note sprintf('%-16s applied %5d times (%.1f%% of %d requests)',
		$r->{action}, $applied, 100 * $applied / ($requests || 1), $requests);
	cmp_ok($applied, '>', 0, "fault $r->{action} happened");
}
diag(sprintf('requests=%d messages_with_more_than_one_attempt=%d', $requests,
	$node->safe_psql('postgres', q{SELECT count(*) FROM sms_outbox WHERE attempts > 1})));
exactly_once($emu, 'f', 5000, rolled_back => 'rb');

$node->stop;
$emu->stop;
done_testing();
