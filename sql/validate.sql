--
-- Every validation rule of sms_send(), and the same rules for rows inserted
-- directly: each bad value is refused with its SQLSTATE, a message naming
-- the argument, and a hint with a valid example; nothing is queued.
--
\set SHOW_CONTEXT never

CREATE FUNCTION attempt(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	msg text;
	hint text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
	RETURN SQLSTATE || ': ' || msg || coalesce(' | hint: ' || nullif(hint, ''), '');
END $$;

CREATE FUNCTION try_send(to_number text, from_number text, body text,
						 media_urls text[] DEFAULT NULL,
						 send_at timestamptz DEFAULT NULL,
						 priority int DEFAULT 0,
						 idempotency_key text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	id bigint;
	msg text;
BEGIN
	id := sms_send(to_number, from_number, body, media_urls, send_at, priority, idempotency_key);
	RETURN 'queued';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
	RETURN SQLSTATE || ': ' || msg;
END $$;

-- what a user sees, in full
SELECT sms_send('+1 555 867 5310', '+15017122661', 'hi');
SELECT sms_send(NULL, '+15017122661', 'hi');
SELECT sms_send('+15558675310', 'not a sender!', 'hi');
SELECT sms_send('+15558675310', '+15017122661', repeat('a', 1601));

-- to_number: E.164
SELECT t, try_send(t, '+15017122661', 'hi') FROM (VALUES
	('+15558675310'), ('+12345678'), ('+123456789012345'),
	('+1234567'), ('+1234567890123456'), ('15558675310'), ('+05558675310'),
	('+1 555 867 5310'), ('+1-555-867-5310'), ('+1555867531O'), (''), ('+'),
	(E'+15558675310\n'), (' +15558675310')) v(t);
SELECT try_send(NULL, '+15017122661', 'hi');

-- from_number: E.164, short code, alphanumeric sender ID, Messaging Service SID
SELECT f, try_send('+15558675310', f, 'hi') FROM (VALUES
	('+15017122661'), ('123'), ('12345678'), ('ACME'), ('ACME Corp'), ('A'),
	('ABCDEFGHIJK'), ('MG9752274e9e519418a7406176694466fa'),
	('MG9752274E9E519418A7406176694466FA'),
	('12'), ('123456789'), ('ABCDEFGHIJKL'), ('12345678901'), ('ACME!'),
	('Café'), ('   '), (''), ('MG9752274e9e519418a7406176694466f'),
	('MG9752274e9e519418a7406176694466fg')) v(f);
SELECT try_send('+15558675310', NULL, 'hi');

-- body: 1 to 1600 characters; NULL or empty only with media
SELECT try_send('+15558675310', '+15017122661', NULL);
SELECT try_send('+15558675310', '+15017122661', '');
SELECT try_send('+15558675310', '+15017122661', repeat('a', 1600));
SELECT try_send('+15558675310', '+15017122661', repeat('a', 1601));
SELECT try_send('+15558675310', '+15017122661', repeat('ж', 1600));
SELECT try_send('+15558675310', '+15017122661', repeat('ж', 1601));
SELECT try_send('+15558675310', '+15017122661', repeat('😀', 1600));
SELECT try_send('+15558675310', '+15017122661', repeat('😀', 1601));
SELECT try_send('+15558675310', '+15017122661', E'line one\nline two\r\n& = + % #');

-- media_urls: 1 to 10 http(s) URLs
SELECT try_send('+15558675310', '+15017122661', NULL, ARRAY['https://example.com/a.png']);
SELECT try_send('+15558675310', '+15017122661', '', ARRAY['http://example.com/a.png?x=1&y=2']);
SELECT try_send('+15558675310', '+15017122661', NULL, '{}');
SELECT try_send('+15558675310', '+15017122661', NULL,
				array_fill('https://example.com/a.png'::text, ARRAY[10]));
SELECT try_send('+15558675310', '+15017122661', NULL,
				array_fill('https://example.com/a.png'::text, ARRAY[11]));
SELECT try_send('+15558675310', '+15017122661', NULL, ARRAY['https://example.com/a.png', NULL]);
SELECT left(u, 40) AS url, try_send('+15558675310', '+15017122661', 'hi', ARRAY[u]) FROM (VALUES
	('ftp://example.com/a.png'), ('https://'), ('https:///a.png'),
	('https://exa mple.com/a.png'), ('example.com/a.png'), ('javascript:alert(1)'),
	(E'https://example.com/\r\nX-Injected: 1'), ('https://example.com/ü.png'),
	('HTTPS://EXAMPLE.COM/A.PNG'), ('https://' || repeat('a', 2041)),
	('https://' || repeat('a', 2040)),
	-- judged on the parts libcurl finds: none of the first six has a host,
	-- the seventh's port is no port, the last is a fine URL with a fragment
	('https://?'), ('https://@/'), ('http:///x'), ('http:/x'), ('https://#'),
	('https://:443/a.png'), ('https://example.com:99999/a.png'),
	('https://example.com/a.png#x')) v(u);
-- in full: the message names the argument, the hint gives a valid URL
SELECT sms_send('+15558675310', '+15017122661', 'hi', ARRAY['https://?']);
SELECT try_send('+15558675310', '+15017122661', 'hi', '{{https://a.example/1},{https://a.example/2}}');

-- send_at, priority, idempotency_key
SELECT try_send('+15558675310', '+15017122661', 'hi', send_at => 'infinity');
SELECT try_send('+15558675310', '+15017122661', 'hi', send_at => '-infinity');
SELECT try_send('+15558675310', '+15017122661', 'hi', priority => NULL);
SELECT try_send('+15558675310', '+15017122661', 'hi', priority => -5);
SELECT try_send('+15558675310', '+15017122661', 'hi', idempotency_key => '');
SELECT try_send('+15558675310', '+15017122661', 'hi', idempotency_key => repeat('k', 255));
SELECT try_send('+15558675310', '+15017122661', 'hi', idempotency_key => repeat('k', 256));

-- a refused call queues nothing: only the 'queued' ones above are here
SELECT count(*) FROM sms_outbox;

-- direct INSERTs are validated the same way
SELECT attempt($$INSERT INTO sms_outbox (to_number, from_number, body) VALUES ('+1 555 867 5310', '+15017122661', 'hi')$$);
SELECT attempt($$INSERT INTO sms_outbox (to_number, from_number, body) VALUES (NULL, '+15017122661', 'hi')$$);
SELECT attempt($$INSERT INTO sms_outbox (to_number, from_number, body) VALUES ('+15558675310', 'bad sender!', 'hi')$$);
SELECT attempt($$INSERT INTO sms_outbox (to_number, from_number, body) VALUES ('+15558675310', '+15017122661', NULL)$$);
SELECT attempt($$INSERT INTO sms_outbox (to_number, from_number, body) VALUES ('+15558675310', '+15017122661', repeat('a', 1601))$$);
SELECT attempt($$INSERT INTO sms_outbox (to_number, from_number, body, media_urls) VALUES ('+15558675310', '+15017122661', NULL, '{ftp://x}')$$);
SELECT attempt($$INSERT INTO sms_outbox (to_number, from_number, body, idempotency_key) VALUES ('+15558675310', '+15017122661', 'hi', '')$$);
SELECT attempt($$INSERT INTO sms_outbox (to_number, from_number, body, send_at) VALUES ('+15558675310', '+15017122661', 'hi', 'infinity')$$);
SELECT attempt($$INSERT INTO sms_outbox (to_number, from_number, body) VALUES ('+15558675310', '+15017122661', 'fine')$$);
-- COPY goes through the same trigger
COPY sms_outbox (to_number, from_number, body) FROM stdin;
+15558675310	+15017122661	copied
\.
COPY sms_outbox (to_number, from_number, body) FROM stdin;
+1 555	+15017122661	bad
\.
-- updates of the message columns are validated too
SELECT attempt($$UPDATE sms_outbox SET to_number = '12345' WHERE body = 'fine'$$);

SELECT count(*) FROM sms_outbox;
-- hostile values are quoted clipped and without control characters
SELECT attempt($$SELECT sms_send(E'+1\x01\x1b[31m' || repeat('9', 100), '+15017122661', 'hi')$$);
