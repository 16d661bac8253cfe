
# Bad input never hurts: thousands of hostile values through sms_send() and
# direct INSERTs.  Each one is either queued, and then valid by every rule,
# or refused with SQLSTATE 22004 or 22023; the server never crashes.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

# no provider: the worker stays paused and the rows stay as queued
my $node = sms_node('hostile', undef, conf => "sms.account_sid = ''\n");

$node->safe_psql('postgres', q{
CREATE TABLE candidates (kind text, v text);
INSERT INTO candidates VALUES
  ('to', NULL), ('to', ''), ('to', '+'), ('to', '+15558675310'), ('to', '+12345678'),
  ('to', '+123456789012345'), ('to', '+1234567890123456'), ('to', '+1234567'),
  ('to', '15558675310'), ('to', '+05558675310'), ('to', '+1 555 867 5310'),
  ('to', E'+15558675310\r\nX-Injected: 1'),
  ('to', repeat('9', 1000000)), ('to', '+' || repeat('1', 100000)), ('to', E'\u202e+15558675310'),
  ('to', '+１５５５８６７５３１０'), ('to', '+15558675310 '), ('to', '%2B15558675310'),
  ('from', NULL), ('from', ''), ('from', ' '), ('from', '+15017122661'), ('from', '123'),
  ('from', '12345678'), ('from', '123456789'), ('from', 'ACME'), ('from', 'ACME Corp 11'),
  ('from', 'ACME Corp 1'), ('from', 'Ünïcode'), ('from', E'AC\nME'), ('from', 'MG9752274e9e519418a7406176694466fa'),
  ('from', 'MG9752274e9e519418a7406176694466f'), ('from', 'MGzzzz274e9e519418a7406176694466fa'),
  ('from', repeat('A', 1000000)), ('from', '../../etc/passwd'), ('from', 'AC00000000000000000000000000000000'),
  ('body', NULL), ('body', ''), ('body', 'hi'), ('body', repeat('a', 1600)), ('body', repeat('a', 1601)),
  ('body', repeat('€', 1600)), ('body', repeat('😀', 1600)), ('body', repeat('😀', 1601)),
  ('body', repeat('ж', 1601)), ('body', repeat('x', 1048576)), ('body', E'\r\n\t\b\f'),
  ('body', E'line\u2028sep'), ('body', repeat(E'\x01', 50)), ('body', '&To=+15005550001&From=x'),
  ('body', '%00%0d%0a'), ('body', '\\u0000'), ('body', repeat('a', 1599) || '😀'),
  ('media', NULL), ('media', '{}'), ('media', '{https://example.com/a.png}'),
  ('media', '{http://example.com/a.png,https://example.com/b.png}'),
  ('media', '{ftp://example.com/a.png}'), ('media', '{javascript:alert(1)}'), ('media', '{NULL}'),
  ('media', '{"https://example.com/a b.png"}'), ('media', '{"https://example.com/\r\n"}'),
  ('media', '{https://}'), ('media', '{https:///x}'),
  ('media', (SELECT array_fill('https://example.com/a.png'::text, ARRAY[11]))::text),
  ('media', (SELECT array_fill('https://example.com/a.png'::text, ARRAY[10]))::text),
  ('media', '{{https://a.example/1},{https://a.example/2}}'),
  ('media', (SELECT ARRAY['https://' || repeat('a', 3000)])::text);
CREATE TABLE outcomes (path text, sqlstate text, n int);
});

my $tries = $node->safe_psql('postgres', q{
DO $$
DECLARE
	t text; f text; b text; m text;
	state text;
	counts jsonb := '{}';
	i int;
BEGIN
	PERFORM setseed(0.42);
	FOR i IN 1 .. 6000 LOOP
		SELECT v INTO t FROM candidates WHERE kind = 'to' ORDER BY random() LIMIT 1;
		SELECT v INTO f FROM candidates WHERE kind = 'from' ORDER BY random() LIMIT 1;
		SELECT v INTO b FROM candidates WHERE kind = 'body' ORDER BY random() LIMIT 1;
		SELECT v INTO m FROM candidates WHERE kind = 'media' ORDER BY random() LIMIT 1;
		BEGIN
			IF i % 2 = 0 THEN
				PERFORM sms_send(t, f, b, m::text[], NULL, (i % 7) - 3,
								 CASE WHEN i % 5 = 0 THEN 'k' || i END);
			ELSE
				INSERT INTO sms_outbox (to_number, from_number, body, media_urls, priority)
				VALUES (t, f, b, m::text[], (i % 7) - 3);
			END IF;
			state := 'queued';
		EXCEPTION WHEN OTHERS THEN
			state := SQLSTATE;
		END;
		INSERT INTO outcomes VALUES (CASE WHEN i % 2 = 0 THEN 'sms_send' ELSE 'INSERT' END, state, 1);
	END LOOP;
END $$;
SELECT count(*) FROM outcomes;
});
is($tries, 6000, '6,000 hostile calls made');

my $summary = $node->safe_psql('postgres',
	q{SELECT path || ' ' || sqlstate || ' ' || sum(n) FROM outcomes GROUP BY path, sqlstate ORDER BY 1});
note $summary;
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM outcomes WHERE sqlstate NOT IN ('queued', '22004', '22023')}),
	0, 'every refusal has SQLSTATE 22004 or 22023') or diag $summary;
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM outcomes WHERE sqlstate = 'queued'}),
	'>', 50, 'some hostile-looking but valid combinations were queued');
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM outcomes WHERE sqlstate <> 'queued'}),
	'>', 1000, 'most were refused');

# every queued row satisfies every rule
is($node->safe_psql('postgres', q{
SELECT count(*) FROM sms_outbox
 WHERE NOT (to_number ~ '^\+[1-9][0-9]{7,14}$')
	OR NOT (from_number ~ '^\+[1-9][0-9]{7,14}$' OR from_number ~ '^[0-9]{3,8}$'
			OR (from_number ~ '^[A-Za-z0-9 ]{1,11}$' AND from_number ~ '[A-Za-z]')
			OR from_number ~ '^MG[0-9a-fA-F]{32}$')
	OR (coalesce(body, '') = '' AND media_urls IS NULL)
	OR length(body) > 1600
	OR (media_urls IS NOT NULL AND (cardinality(media_urls) NOT BETWEEN 1 AND 10
		OR EXISTS (SELECT 1 FROM unnest(media_urls) u WHERE u IS NULL OR u !~ '^[Hh][Tt][Tt][Pp][Ss]?://[!-~]+$')))
}), 0, 'every queued row is valid by every rule');

is($node->safe_psql('postgres', 'SELECT 1'), 1, 'the server is alive');
ok(!$node->log_contains(qr/(PANIC|terminated by signal|server process .* was terminated)/),
	'no backend crashed');
$node->stop;
done_testing();
