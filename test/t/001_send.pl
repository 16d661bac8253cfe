
# The end-to-end path: sms_send, a trigger and a plain INSERT each send, the
# SID and status come back into the row, a rollback sends nothing, and what
# arrives at the emulator is exactly what was queued.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $emu = start_emulator();
my $node = sms_node('send', $emu);

# --- sms_send, committed: SID and status written back
my $id = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558675310', '+15017122661', 'Your code is 4821')});
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'sent',
	'sms_send: message sent');

my $row = $node->safe_psql('postgres',
	"SELECT sid, status, attempts, num_segments, sent_at IS NOT NULL, error_code IS NULL FROM sms_outbox WHERE id = $id");
my ($sid, $status, $attempts, $segments, $has_sent_at, $no_error) = split /\|/, $row;
like($sid, qr/^SM[0-9a-f]{32}$/, 'the provider SID is written back');
is($status, 'queued', 'the provider status is written back');
is($attempts, 1, 'one attempt');
is($segments, 1, 'num_segments from the reply');
is($has_sent_at, 't', 'sent_at set');
is($no_error, 't', 'no error recorded');

my $msgs = $emu->messages;
is(scalar(@$msgs), 1, 'the emulator created one message');
is($msgs->[0]{sid}, $sid, 'the SID in the row is the one the emulator created');

my $req = $emu->requests->[0];
is($req->{method}, 'POST', 'POST');
is($req->{path}, "/2010-04-01/Accounts/$SmsTest::ACCOUNT_SID/Messages.json", 'Messages API path');
is($req->{form}{To}, '+15558675310', 'To');
is($req->{form}{From}, '+15017122661', 'From');
is($req->{form}{Body}, 'Your code is 4821', 'Body');
is($req->{auth_user}, $SmsTest::ACCOUNT_SID, 'Basic auth with the account SID');
like($req->{content_type}, qr{^application/x-www-form-urlencoded}, 'form-encoded');
is($req->{accept}, 'application/json', 'Accept: application/json');
like($req->{user_agent}, qr{^pg-sms/1\.1}, 'User-Agent names the extension and version');

# --- a rollback sends nothing
$emu->reset;
$node->safe_psql('postgres', q{
BEGIN;
SELECT sms_send('+15558675311', '+15017122661', 'rolled back');
ROLLBACK;
});
# a committed message after it proves the worker has looked since
my $after = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558675311', '+15017122661', 'after the rollback')});
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $after", 'sent');
is_deeply($emu->created_per_body, { 'after the rollback' => 1 },
	'rollback: the emulator saw only the committed message');
is($node->safe_psql('postgres', q{SELECT count(*) FROM sms_outbox WHERE body = 'rolled back'}),
	0, 'rollback: no row');

# --- a trigger on an application table sends one message per row
$emu->reset;
$node->safe_psql('postgres', q{
CREATE TABLE orders (id int PRIMARY KEY, phone text, shipped bool DEFAULT false);
CREATE FUNCTION notify_shipped() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.shipped AND NOT OLD.shipped THEN
		PERFORM sms_send(NEW.phone, '+15017122661', 'Order ' || NEW.id || ' has shipped');
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER orders_shipped AFTER UPDATE ON orders
	FOR EACH ROW EXECUTE FUNCTION notify_shipped();
INSERT INTO orders VALUES (1, '+15558675321'), (2, '+15558675322'), (3, '+15558675323');
UPDATE orders SET shipped = true WHERE id IN (1, 3);
});
wait_for_rows($node,
	q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'Order % has shipped' AND state = 'sent'},
	2, 'trigger: two rows sent');
is_deeply($emu->created_per_body,
	{ 'Order 1 has shipped' => 1, 'Order 3 has shipped' => 1 },
	'trigger: one message per updated row, at the emulator');

# --- a plain INSERT is sent too
$emu->reset;
$node->safe_psql('postgres', q{
INSERT INTO sms_outbox (to_number, from_number, body) VALUES ('+15558675331', 'ACME', 'inserted directly');
});
wait_for_rows($node, q{SELECT state FROM sms_outbox WHERE body = 'inserted directly'}, 'sent',
	'plain INSERT: sent');
is($emu->requests->[0]{form}{From}, 'ACME', 'alphanumeric sender sent as From');

# --- reserved characters, newlines and emoji arrive byte for byte
$emu->reset;
my $tricky = "a&b=c+d%20e%\nline two\r\nline three \x{1F600} caf\x{e9} \x{20AC}";
my $tricky_sql = "SELECT sms_send('+15558675341', '+15017122661', \$b\$$tricky\$b\$)";
utf8::encode($tricky_sql);
$node->safe_psql('postgres', $tricky_sql);
wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE to_number = '+15558675341' AND state = 'sent'}, 1);
my $got = $emu->messages->[0]{body};
is($got, $tricky, 'body with & = + %, CR/LF and emoji arrives byte for byte');
is($node->safe_psql('postgres',
	q{SELECT num_segments FROM sms_outbox WHERE to_number = '+15558675341'}),
	1, 'UCS-2 body of under 70 units: one segment');

# --- media: MediaUrl repeated; Messaging Service: MessagingServiceSid
$emu->reset;
$node->safe_psql('postgres', q{
SELECT sms_send('+15558675351', 'MG9752274e9e519418a7406176694466fa', NULL,
				ARRAY['https://example.com/a.png', 'https://example.com/b.png']);
});
wait_for_rows($node, q{SELECT state FROM sms_outbox WHERE to_number = '+15558675351'}, 'sent');
$req = $emu->requests->[0];
is_deeply($req->{form}{MediaUrl}, [ 'https://example.com/a.png', 'https://example.com/b.png' ],
	'MediaUrl repeated, in order');
is($req->{form}{MessagingServiceSid}, 'MG9752274e9e519418a7406176694466fa',
	'Messaging Service SID sent as MessagingServiceSid');
ok(!exists $req->{form}{From}, 'no From with a Messaging Service');
ok(!exists $req->{form}{Body}, 'no Body for a media-only message');
is($node->safe_psql('postgres', q{SELECT status FROM sms_outbox WHERE to_number = '+15558675351'}),
	'accepted', 'Messaging Service messages come back accepted');

# --- idempotency_key: the second call returns the first id, sends nothing
$emu->reset;
my $k1 = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558675361', '+15017122661', 'once', idempotency_key => 'order-9-shipped')});
my $k2 = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558675361', '+15017122661', 'once', idempotency_key => 'order-9-shipped')});
is($k2, $k1, 'idempotency_key: same id returned');
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $k1", 'sent');
is_deeply($emu->created_per_body, { once => 1 }, 'idempotency_key: one message at the emulator');

# --- sms_stats tells the story
my $stats = $node->safe_psql('postgres',
	q{SELECT worker, pending, sent > 0, sent_last_minute > 0, worker_pid IS NOT NULL FROM sms_stats});
is($stats, 'running|0|t|t|t', 'sms_stats: worker running, nothing pending, sends counted');

# --- the worker is visible in pg_stat_activity
wait_for_rows($node,
	q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sms worker' AND wait_event_type = 'Extension'},
	1, 'pg_stat_activity shows the sms worker waiting on its event loop');

$node->stop;
$emu->stop;
done_testing();
