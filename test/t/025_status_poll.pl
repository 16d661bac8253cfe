# Delivery status by polling, with no callbacks: the worker asks the
# emulator about sent messages on its schedule, by walking the sender's list
# (DateSent) and, for what the list cannot show, one GET per message.  Each
# of the emulator's delivery outcomes ends in its row; a failing provider
# changes no row; a message the carrier never confirms stays 'sent' until
# its looks run out; sms.status_poll = off schedules none.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $emu = start_emulator();
my $node = sms_node('poll', $emu,
	conf => "sms.status_poll_interval = '1s'\nsms.status_poll_rate = 50\n");
my $from = '+15017122661';

# the pattern the README shows: a trigger of the user's sees each change
# (the worker's search_path is pg_catalog alone: the function sets its own)
$node->safe_psql('postgres', q{
	CREATE TABLE status_history (id bigint, status text, at timestamptz DEFAULT now());
	CREATE FUNCTION note_status() RETURNS trigger LANGUAGE plpgsql
	SET search_path = public AS $$
	BEGIN
		INSERT INTO status_history (id, status) VALUES (NEW.id, NEW.status);
		RETURN NULL;
	END $$;
	CREATE TRIGGER note_status AFTER UPDATE OF status ON sms_outbox
		FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
		EXECUTE FUNCTION note_status();
});

# each magic number and the outcome its message ends with
my %ends = (
	'+15558675310' => [ 'delivered', undef ],
	'+15005553003' => [ 'undelivered', 30003, 'Unreachable destination handset' ],
	'+15005553005' => [ 'undelivered', 30005, 'Unknown destination handset' ],
	'+15005553006' => [ 'undelivered', 30006, 'Landline or unreachable carrier' ],
	'+15005553007' => [ 'undelivered', 30007, 'Message filtered' ],
	'+15005553001' => [ 'failed', 30001, 'Queue overflow' ],);
my $stays = '+15005553000';    # the carrier sends no receipt
for my $to (sort(keys %ends), $stays)
{
	$node->safe_psql('postgres', "SELECT sms_send('$to', '$from', 'to $to')");
}

wait_for_rows($node,
	q{SELECT count(*) FROM sms_outbox
	   WHERE state = 'sent' AND status IN ('delivered', 'undelivered', 'failed')},
	scalar(keys %ends), 'every message reached its final status by polling');

for my $to (sort keys %ends)
{
	my ($status, $code, $text) = @{ $ends{$to} };
	my $row = $node->safe_psql('postgres',
		"SELECT state, status, coalesce(error_code::text, ''), coalesce(error_message, ''),
				status_changed_at IS NOT NULL, delivered_at IS NOT NULL,
				status_poll_at IS NULL
		   FROM sms_outbox WHERE to_number = '$to'");
	is($row,
		join('|', 'sent', $status, $code // '', $text // '', 't',
			$status eq 'delivered' ? 't' : 'f', 't'),
		"$to ends $status" . ($code ? " ($code)" : '') . ', and its looks with it');
}

my $stays_sid = $node->safe_psql('postgres',
	"SELECT sid FROM sms_outbox WHERE to_number = '$stays'");
wait_for_rows($node,
	"SELECT status FROM sms_outbox WHERE to_number = '$stays'",
	'sent', 'the message without a receipt is known to be sent');
is($node->safe_psql('postgres',
		"SELECT state, status_poll_at > now() + interval '2 s'
		   FROM sms_outbox WHERE to_number = '$stays'"),
	'sent|t', 'it stays tracked, its next look further away');

is($node->safe_psql('postgres',
		q{SELECT string_agg(h.status, ',' ORDER BY h.at, h.status)
		    FROM status_history h JOIN sms_outbox o USING (id)
		   WHERE o.to_number = '+15558675310'}) =~ /delivered$/ ? 1 : 0,
	1, 'the user\'s AFTER UPDATE OF status trigger saw the delivery');

# the requests: the list, by sender and day, answered for every message but
# the one that failed while queued (it was never sent: no date sent, not
# listed), which alone was fetched by its SID
my @status_reqs = grep { $_->{method} eq 'GET' } @{ $emu->requests };
my @lists = grep { $_->{path} =~ m{/Messages\.json$} } @status_reqs;
my @gets = grep { $_->{path} =~ m{/Messages/(SM|MM)\w+\.json$} } @status_reqs;
ok(@lists >= 1, 'the worker listed the sender\'s messages');
ok(!(grep { $_->{query} !~ /(^|&)From=%2B15017122661(&|$)/ || $_->{query} !~ /DateSent%3E=\d{4}-\d\d-\d\d/ } @lists),
	'each list names the sender and the day');
my $failed_sid = $node->safe_psql('postgres',
	"SELECT sid FROM sms_outbox WHERE to_number = '+15005553001'");
my %got = map { ($_->{path} =~ m{/Messages/(\w+)\.json$})[0] => 1 } @gets;
is(join(',', sort keys %got), $failed_sid,
	'only the message the list could not show was fetched by its SID');
note sprintf('%d list requests, %d GETs for %d messages',
	scalar @lists, scalar @gets, 1 + keys %ends);

# a provider that fails changes no row: the credentials go wrong, the
# tracked message falls due, the poll fails and is logged once
$emu->config(auth_token => 'not-the-token');
my $log_from = -s $node->logfile;
# (touching next_attempt_at wakes the worker, which then finds the look due)
$node->safe_psql('postgres',
	"UPDATE sms_outbox SET status_poll_at = now(), next_attempt_at = next_attempt_at
	  WHERE to_number = '$stays'");
ok($node->wait_for_log(qr/sms: status poll failed: HTTP 401/, $log_from),
	'the failed poll is logged');
is($node->safe_psql('postgres',
		"SELECT state, status, status_poll_at IS NOT NULL FROM sms_outbox WHERE to_number = '$stays'"),
	'sent|sent|t', 'and changed nothing but when to look again');
$emu->config(auth_token => $SmsTest::AUTH_TOKEN);
ok($node->wait_for_log(qr/sms: status polls succeed again/, $log_from),
	'polls recover once the provider answers');

# 72 hours after the send, no look is left: the last one ends the tracking
$node->safe_psql('postgres',
	"UPDATE sms_outbox SET sent_at = now() - interval '73 hours', status_poll_at = now(),
			next_attempt_at = next_attempt_at
	  WHERE to_number = '$stays'");
wait_for_rows($node,
	"SELECT status_poll_at IS NULL FROM sms_outbox WHERE to_number = '$stays'",
	't', 'no look is left 72 hours after the send');
is($node->safe_psql('postgres',
		"SELECT state, status, sid FROM sms_outbox WHERE to_number = '$stays'"),
	"sent|sent|$stays_sid", 'the message stays sent, as the provider last said');

# sms.status_poll = off: a message sent now is not tracked
$node->append_conf('postgresql.conf', "sms.status_poll = off\n");
reload_and_wait($node);
$node->safe_psql('postgres', "SELECT sms_send('+15558675311', '$from', 'untracked')");
wait_for_rows($node,
	q{SELECT state || ',' || (status_poll_at IS NULL) FROM sms_outbox WHERE body = 'untracked'},
	'sent,true', 'with polling off, a sent message gets no look');

done_testing();
