--
-- sms_status_callback(): a provider's status callback, verified by its
-- X-Twilio-Signature and applied to its row by rank.
--
ALTER SYSTEM SET sms.auth_token = '12345';
ALTER SYSTEM SET sms.account_sid = 'ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
SELECT pg_reload_conf();
-- a backend reads a reloaded file between statements, not within one: wait
-- with statements of their own, up to a minute
\set ECHO none
\o /dev/null
SELECT format('SELECT pg_sleep(0.01) WHERE current_setting(%L) <> %L',
			  'sms.auth_token', '12345')
  FROM generate_series(1, 6000) \gexec
\o
\set ECHO all
SELECT current_setting('sms.auth_token') = '12345' AS reloaded;
\set VERBOSITY terse

-- Twilio's SDK vector (a voice request, not a message's): the signature
-- holds, so the body is judged next
SELECT sms_status_callback('https://mycompany.com/myapp.php?foo=1&bar=2',
	'CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212',
	'RSOYDt4T1cUTdK1PDd93/VVr8B8=');
-- the same signed over the URL with its default port, and the other way
SELECT sms_status_callback('https://mycompany.com/myapp.php?foo=1&bar=2',
	'CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212',
	'kvajT1Ptam85bY51eRf/AJRuM3w=');
SELECT sms_status_callback('https://mycompany.com:443/myapp.php?foo=1&bar=2',
	'CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212',
	'RSOYDt4T1cUTdK1PDd93/VVr8B8=');
-- a character changed in the signature, a value, the URL; a parameter added
SELECT sms_status_callback('https://mycompany.com/myapp.php?foo=1&bar=2',
	'CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212',
	'RSOYDt4T1cUTdK1PDd93/VVr8B8X');
SELECT sms_status_callback('https://mycompany.com/myapp.php?foo=1&bar=2',
	'CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1235&From=%2B14158675309&To=%2B18005551212',
	'RSOYDt4T1cUTdK1PDd93/VVr8B8=');
SELECT sms_status_callback('https://mycompany.com/myapp.php?foo=1&bar=3',
	'CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212',
	'RSOYDt4T1cUTdK1PDd93/VVr8B8=');
SELECT sms_status_callback('https://mycompany.com/myapp.php?foo=1&bar=2',
	'CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212&Extra=1',
	'RSOYDt4T1cUTdK1PDd93/VVr8B8=');

-- A message of the outbox, and callbacks for it signed by pgcrypto's hmac()
-- (an implementation independent of the extension's)
CREATE EXTENSION pgcrypto;
CREATE FUNCTION pg_temp.sign(url text, params text[][]) RETURNS text
LANGUAGE sql AS $$
	SELECT encode(hmac(url || coalesce(string_agg(params[i][1] || params[i][2], ''
												  ORDER BY params[i][1] COLLATE "C",
														   params[i][2] COLLATE "C"), ''),
					   '12345', 'sha1'), 'base64')
	  FROM generate_subscripts(params, 1) i
$$;
CREATE FUNCTION pg_temp.form(params text[][]) RETURNS text
LANGUAGE sql AS $$
	SELECT string_agg(params[i][1] || '=' || replace(params[i][2], '+', '%2B'), '&')
	  FROM generate_subscripts(params, 1) i
$$;
CREATE FUNCTION pg_temp.callback(id bigint, status text, error_code text DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	url text := 'https://example.com/sms/status?sms_id=' || id;
	p text[][] := ARRAY[['AccountSid', 'ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'],
						['ApiVersion', '2010-04-01'],
						['From', '+15017122661'],
						['MessageSid', 'SM' || repeat('a', 32)],
						['MessageStatus', status],
						['SmsSid', 'SM' || repeat('a', 32)],
						['SmsStatus', status],
						['To', '+15558675310']];
BEGIN
	IF error_code IS NOT NULL THEN
		p := p || ARRAY[['ErrorCode', error_code]];
	END IF;
	RETURN sms_status_callback(url, pg_temp.form(p), pg_temp.sign(url, p));
END
$$;

TRUNCATE sms_outbox;
INSERT INTO sms_outbox (id, to_number, from_number, body, state, sid, status, sent_at)
VALUES (7001, '+15558675310', '+15017122661', 'tracked', 'sent',
		'SM' || repeat('a', 32), 'queued', now());
SELECT pg_temp.callback(7001, 'sent');
SELECT status, status_changed_at IS NOT NULL AS changed, delivered_at IS NULL AS not_delivered
  FROM sms_outbox WHERE id = 7001;
-- out of order: a late 'sending' is older than 'sent', and changes nothing
SELECT pg_temp.callback(7001, 'sending');
SELECT status FROM sms_outbox WHERE id = 7001;
SELECT pg_temp.callback(7001, 'undelivered', '30003');
SELECT state, status, error_code, error_message, delivered_at IS NULL AS not_delivered,
	   status_poll_at IS NULL AS polling_ended
  FROM sms_outbox WHERE id = 7001;
-- final is final: a 'delivered' after it is not applied
SELECT pg_temp.callback(7001, 'delivered');
SELECT status FROM sms_outbox WHERE id = 7001;
-- a SID the row does not hold, a row that does not exist, an unknown status
UPDATE sms_outbox SET sid = 'SM' || repeat('b', 32) WHERE id = 7001;
SELECT pg_temp.callback(7001, 'read');
SELECT pg_temp.callback(7999, 'delivered');
SELECT pg_temp.callback(7001, 'teleported');

-- nothing for PUBLIC
SELECT has_function_privilege('public', 'sms_status_callback(text, text, text)', 'EXECUTE');

TRUNCATE sms_outbox;
DROP EXTENSION pgcrypto;
ALTER SYSTEM RESET sms.auth_token;
ALTER SYSTEM RESET sms.account_sid;
SELECT pg_reload_conf();
