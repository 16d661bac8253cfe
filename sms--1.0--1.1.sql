/* sms--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION sms UPDATE TO '1.1'" to load this file. \quit

-- When the workers had applied the configuration, so that whoever reloads it
-- (an administrator, a deployment script, a test) can wait until it is in
-- effect rather than sleep and hope.
CREATE FUNCTION sms_settings_applied_at() RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'sms_settings_applied_at'
	LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION sms_settings_applied_at() IS 'when every running worker had last applied the configuration (at its start or after a reload); NULL if none runs';

REVOKE ALL ON FUNCTION sms_settings_applied_at() FROM PUBLIC;

-- Delivery status: the row follows the provider's status after the create
-- reply (see README, "Delivery status").
ALTER TABLE sms_outbox
	ADD COLUMN status_changed_at timestamptz,
	ADD COLUMN delivered_at timestamptz,
	ADD COLUMN status_poll_at timestamptz;

-- the worker's next look at a sent message's delivery status; NULL once
-- the status is final, or after 72 hours
CREATE INDEX sms_outbox_status_poll_idx ON sms_outbox (status_poll_at)
	WHERE status_poll_at IS NOT NULL;

-- a poll lists a sender's messages and matches them to rows by SID
CREATE INDEX sms_outbox_tracked_sid_idx ON sms_outbox (sid)
	WHERE status_poll_at IS NOT NULL;

-- messages sent in the last 72 hours whose status is not final yet are
-- looked at too, from the worker's next turn on
UPDATE sms_outbox SET status_poll_at = now()
 WHERE state = 'sent' AND sid IS NOT NULL
   AND coalesce(sent_at, updated_at) > now() - interval '72 hours'
   AND (status IS NULL
		OR status NOT IN ('delivered', 'undelivered', 'failed', 'canceled', 'read'));

COMMENT ON COLUMN sms_outbox.status_changed_at IS 'when the provider''s status last changed';
COMMENT ON COLUMN sms_outbox.delivered_at IS 'when the provider reported the message delivered';
COMMENT ON COLUMN sms_outbox.status_poll_at IS 'when the worker next asks the provider for the delivery status; NULL once it is final';

CREATE FUNCTION sms_status_callback(url text, form_body text, signature text)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'sms_status_callback'
	LANGUAGE C STRICT VOLATILE;

COMMENT ON FUNCTION sms_status_callback(text, text, text) IS 'applies a provider''s signed status callback (X-Twilio-Signature) to its message; true if applied, false if older than the row''s status';

REVOKE ALL ON FUNCTION sms_status_callback(text, text, text) FROM PUBLIC;

-- sms_stats counts messages by delivery outcome too.  (CREATE OR REPLACE
-- adds the columns at the end and keeps the grants made on the view.)
CREATE OR REPLACE VIEW sms_stats AS
SELECT s.pending, s.sending, s.unknown, s.sent, s.failed, s.canceled,
	   s.oldest_pending_age, s.sent_last_minute,
	   w.condition AS worker,
	   w.pid AS worker_pid,
	   w.since AS worker_since,
	   s.delivered, s.undelivered, s.delivery_failed, s.awaiting_delivery
  FROM (SELECT count(*) FILTER (WHERE o.state = 'pending') AS pending,
			   count(*) FILTER (WHERE o.state = 'sending') AS sending,
			   count(*) FILTER (WHERE o.state = 'unknown') AS unknown,
			   count(*) FILTER (WHERE o.state = 'sent') AS sent,
			   count(*) FILTER (WHERE o.state = 'failed') AS failed,
			   count(*) FILTER (WHERE o.state = 'canceled') AS canceled,
			   now() - min(o.next_attempt_at)
				   FILTER (WHERE o.state = 'pending' AND o.next_attempt_at <= now())
				   AS oldest_pending_age,
			   count(*) FILTER (WHERE o.state = 'sent'
								AND o.sent_at > now() - interval '1 minute')
				   AS sent_last_minute,
			   count(*) FILTER (WHERE o.state = 'sent'
								AND o.status IN ('delivered', 'read')) AS delivered,
			   count(*) FILTER (WHERE o.state = 'sent'
								AND o.status = 'undelivered') AS undelivered,
			   count(*) FILTER (WHERE o.state = 'sent'
								AND o.status = 'failed') AS delivery_failed,
			   count(*) FILTER (WHERE o.state = 'sent'
								AND o.status NOT IN ('delivered', 'read', 'undelivered',
													 'failed', 'canceled'))
				   AS awaiting_delivery
		  FROM sms_outbox o) s,
	   sms_worker_condition() w;

COMMENT ON VIEW sms_stats IS 'messages per state and per delivery outcome, the age of the oldest due message, sends in the last minute and the worker''s condition';
