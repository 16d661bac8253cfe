\echo == CREATE EXTENSION sms
CREATE EXTENSION sms;

\echo == 1. sms_send() inside a transaction: sent when it commits
BEGIN;
SELECT sms_send('+15558675310', '+15017122661', 'Your code is 4821') AS id;
COMMIT;

\echo == 2. a rolled-back sms_send() sends nothing
BEGIN;
SELECT sms_send('+15558675311', '+15017122661', 'this is never sent') AS id;
ROLLBACK;

\echo == 3. a trigger on an application table: one message per shipped order
CREATE TABLE orders (id int PRIMARY KEY, phone text NOT NULL, shipped boolean NOT NULL DEFAULT false);
CREATE FUNCTION orders_notify_shipped() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.shipped AND NOT OLD.shipped THEN
		PERFORM sms_send(NEW.phone, '+15017122661',
						 format('Order %s has shipped', NEW.id),
						 idempotency_key => format('order-%s-shipped', NEW.id));
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER orders_shipped AFTER UPDATE OF shipped ON orders
	FOR EACH ROW EXECUTE FUNCTION orders_notify_shipped();
INSERT INTO orders VALUES (1001, '+15558675321'), (1002, '+15558675322'), (1003, '+15558675323');
UPDATE orders SET shipped = true WHERE id IN (1001, 1003);

\echo == 4. a plain INSERT into the outbox (as an ORM would), from an alphanumeric sender
INSERT INTO sms_outbox (to_number, from_number, body)
VALUES ('+15558675331', 'ACME', 'Your table is ready');

\echo == 5. a picture through a Messaging Service, and a number the provider refuses (Twilio test number +15005550009)
SELECT sms_send('+15558675341', 'MG9752274e9e519418a7406176694466fa', 'See you soon',
				media_urls => ARRAY['https://example.com/map.png']) AS id;
SELECT sms_send('+15005550009', '+15017122661', 'To a landline') AS id;

\echo == 6. a bad number is refused before anything is queued
\set ON_ERROR_STOP 0
SELECT sms_send('+1 555 867 5310', '+15017122661', 'spaces are not E.164');
\set ON_ERROR_STOP 1

\echo == waiting for the worker ...
DO $$
BEGIN
	FOR i IN 1 .. 100 LOOP
		EXIT WHEN NOT EXISTS (SELECT 1 FROM sms_outbox WHERE state IN ('pending', 'sending', 'unknown'));
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;

\echo == the outbox: every row with the SID and status the provider returned
SELECT id, to_number, from_number, body, state, sid, status, num_segments AS segs,
	   error_code, error_message
  FROM sms_outbox ORDER BY id;

\echo == sms_stats
\x on
SELECT * FROM sms_stats;
