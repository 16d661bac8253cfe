--
-- Privileges: nothing for PUBLIC; EXECUTE on sms_send is enough to send,
-- without any right on the table; created_by records the caller; secrets
-- are hidden from non-superusers.
--
CREATE ROLE sms_nobody;
CREATE ROLE sms_sender;
GRANT EXECUTE ON FUNCTION sms_send(text, text, text, text[], timestamptz, int, text) TO sms_sender;

SELECT r AS role, f AS object,
	   has_function_privilege(r, f, 'EXECUTE') AS execute
  FROM unnest(ARRAY['sms_nobody', 'sms_sender']) r,
	   unnest(ARRAY['sms_send(text,text,text,text[],timestamptz,int,text)',
					'sms_cancel(bigint)', 'sms_segments(text)', 'sms_encoding(text)',
					'sms_worker_condition()', 'sms_settings_applied_at()']) f
 ORDER BY 1, 2;
SELECT r AS role, t AS object,
	   has_table_privilege(r, t, 'SELECT') AS select,
	   has_table_privilege(r, t, 'INSERT') AS insert
  FROM unnest(ARRAY['sms_nobody', 'sms_sender']) r,
	   unnest(ARRAY['sms_outbox', 'sms_stats']) t
 ORDER BY 1, 2;

TRUNCATE sms_outbox;

SET ROLE sms_nobody;
SELECT sms_send('+15558675310', '+15017122661', 'from nobody');
INSERT INTO sms_outbox (to_number, from_number, body) VALUES ('+15558675310', '+15017122661', 'x');
SELECT count(*) FROM sms_outbox;
SELECT * FROM sms_stats;
RESET ROLE;

SET ROLE sms_sender;
SELECT sms_send('+15558675310', '+15017122661', 'from sender') > 0 AS queued;
-- validation still applies
SELECT sms_send('+15558675310', '+15017122661', '');
-- but the table itself is not theirs
SELECT count(*) FROM sms_outbox;
UPDATE sms_outbox SET body = 'changed';
-- a sender whose search_path has a decoy sms_outbox still queues into ours
CREATE TEMP TABLE sms_outbox (to_number text, from_number text, body text);
SET search_path = pg_temp, public;
SELECT sms_send('+15558675310', '+15017122661', 'despite the decoy') > 0 AS queued;
RESET search_path;
DROP TABLE pg_temp.sms_outbox;
RESET ROLE;

SELECT body, created_by FROM public.sms_outbox ORDER BY id;

-- granting INSERT lets a role use the outbox directly
GRANT INSERT ON sms_outbox TO sms_nobody;
SET ROLE sms_nobody;
INSERT INTO sms_outbox (to_number, from_number, body) VALUES ('+15558675310', '+15017122661', 'inserted by nobody');
RESET ROLE;
SELECT created_by FROM sms_outbox WHERE body = 'inserted by nobody';

-- secrets: superuser-only
SET ROLE sms_sender;
-- (the error's wording differs between majors: its SQLSTATE, 42501)
\set VERBOSITY sqlstate
SHOW sms.auth_token;
SHOW sms.api_key_secret;
SELECT count(*) FROM pg_settings WHERE name IN ('sms.auth_token', 'sms.api_key_secret', 'sms.account_sid');
SELECT current_setting('sms.auth_token');
\set VERBOSITY default
SET sms.auth_token = 'x';
RESET ROLE;
SELECT count(*) FROM pg_settings WHERE name IN ('sms.auth_token', 'sms.api_key_secret', 'sms.account_sid');
-- a setting of the worker is not a session setting
SET sms.auth_token = 'x';

REVOKE ALL ON sms_outbox FROM sms_nobody;
REVOKE ALL ON FUNCTION sms_send(text, text, text, text[], timestamptz, int, text) FROM sms_sender;
DROP ROLE sms_nobody;
DROP ROLE sms_sender;
