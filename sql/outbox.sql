--
-- The outbox as the worker and users see it: defaults, created_by,
-- send_at, priority, idempotency keys, sms_cancel() and sms_stats.
-- (The worker of this instance has no account configured, so it leaves the
-- rows alone.)
--
TRUNCATE sms_outbox;

SELECT sms_send('+15558675310', '+15017122661', 'first') > 0 AS queued;
SELECT to_number, from_number, body, media_urls, send_at, priority, idempotency_key,
	   state, attempts, sid, status, error_code, error_message, num_segments,
	   price, price_unit, sent_at, created_by = current_user AS by_me,
	   next_attempt_at = created_at AS due_now, updated_at = created_at AS fresh
  FROM sms_outbox;

-- send_at: the row falls due then
SELECT sms_send('+15558675310', '+15017122661', 'later', send_at => now() + interval '1 hour') > 0 AS queued;
SELECT body, next_attempt_at - created_at AS due_in FROM sms_outbox WHERE body = 'later';
-- a time in the past is simply due now
SELECT sms_send('+15558675310', '+15017122661', 'past', send_at => now() - interval '1 hour') > 0 AS queued;
SELECT body, next_attempt_at = created_at AS due_now FROM sms_outbox WHERE body = 'past';
-- direct INSERTs honour send_at too; one by a role that does not own the
-- outbox cannot forge created_by, while the owner's (a restore's) keeps it
CREATE ROLE sms_outbox_writer;
GRANT INSERT ON sms_outbox TO sms_outbox_writer;
SET ROLE sms_outbox_writer;
INSERT INTO sms_outbox (to_number, from_number, body, send_at, created_by)
VALUES ('+15558675310', '+15017122661', 'inserted later', now() + interval '1 day', 'somebody_else');
RESET ROLE;
SELECT body, next_attempt_at - created_at AS due_in, created_by
  FROM sms_outbox WHERE body = 'inserted later';
INSERT INTO sms_outbox (to_number, from_number, body, created_by)
VALUES ('+15558675310', '+15017122661', 'restored', 'somebody_else');
SELECT body, created_by FROM sms_outbox WHERE body = 'restored';
DELETE FROM sms_outbox WHERE body = 'restored';

-- idempotency_key: the first id comes back, nothing more is queued
SELECT sms_send('+15558675310', '+15017122661', 'once', idempotency_key => 'k-1') =
	   sms_send('+15558675310', '+15017122661', 'once again', idempotency_key => 'k-1') AS same_id;
SELECT count(*) FROM sms_outbox WHERE idempotency_key = 'k-1';
-- a direct INSERT with a used key is a unique violation (terse: the
-- detail names the role running the test)
\set VERBOSITY terse
INSERT INTO sms_outbox (to_number, from_number, body, idempotency_key)
VALUES ('+15558675310', '+15017122661', 'dup', 'k-1');
\set VERBOSITY default
-- but another role has keys of its own: the same key queues its message
SET ROLE sms_outbox_writer;
INSERT INTO sms_outbox (to_number, from_number, body, idempotency_key)
VALUES ('+15558675310', '+15017122661', 'same key, other role', 'k-1');
RESET ROLE;
SELECT body, created_by = current_user AS mine FROM sms_outbox WHERE idempotency_key = 'k-1' ORDER BY id;

-- a column the trigger sets, altered by the owner to another type, is
-- refused rather than written as garbage; changed back, it works again
ALTER TABLE sms_outbox ALTER COLUMN created_by TYPE text;
SET ROLE sms_outbox_writer;
INSERT INTO sms_outbox (to_number, from_number, body) VALUES ('+15558675310', '+15017122661', 'retyped');
RESET ROLE;
ALTER TABLE sms_outbox ALTER COLUMN created_by TYPE name;
SET ROLE sms_outbox_writer;
INSERT INTO sms_outbox (to_number, from_number, body) VALUES ('+15558675310', '+15017122661', 'typed again');
RESET ROLE;
SELECT body, created_by FROM sms_outbox WHERE body IN ('retyped', 'typed again');

-- sms_cancel: pending only, once
SELECT sms_cancel(id) FROM sms_outbox WHERE body = 'later';
SELECT sms_cancel(id) FROM sms_outbox WHERE body = 'later';
SELECT state FROM sms_outbox WHERE body = 'later';
SELECT sms_cancel(-1);
UPDATE sms_outbox SET state = 'sent' WHERE body = 'past';
SELECT sms_cancel(id) FROM sms_outbox WHERE body = 'past';

-- claim order: priority, then due time, then id (what the worker's index serves)
TRUNCATE sms_outbox;
SELECT sms_send('+15558675310', '+15017122661', 'p' || p, priority => p) > 0
  FROM unnest(ARRAY[0, 5, -1, 5, 10]) p;
SELECT body, priority FROM sms_outbox WHERE state = 'pending'
 ORDER BY priority DESC, next_attempt_at, id;
EXPLAIN (COSTS OFF)
SELECT id FROM sms_outbox WHERE state = 'pending' AND next_attempt_at <= now()
 ORDER BY priority DESC, next_attempt_at, id LIMIT 10;
-- the same index serves the lookups of rows whose outcome is unknown
EXPLAIN (COSTS OFF)
SELECT id FROM sms_outbox WHERE state = 'unknown' AND next_attempt_at <= now()
 ORDER BY priority DESC, next_attempt_at, id LIMIT 10;
-- and the worker's look for rows in 'sending' it holds no request for
EXPLAIN (COSTS OFF)
SELECT id FROM sms_outbox WHERE state OPERATOR(pg_catalog.=) 'sending'
   AND claimed_by OPERATOR(pg_catalog.=) 0::int2
   AND NOT id OPERATOR(pg_catalog.=) ANY ('{1,2}'::int8[]);

-- sms_stats: one row, counts per state
SELECT pending, sending, unknown, sent, failed, canceled,
	   oldest_pending_age >= '0'::interval AS has_age, sent_last_minute
  FROM sms_stats;
TRUNCATE sms_outbox;
SELECT pending, sent, oldest_pending_age FROM sms_stats;

REVOKE ALL ON sms_outbox FROM sms_outbox_writer;
DROP ROLE sms_outbox_writer;
