--
-- Installing the extension: what it creates, and that nothing is granted
-- to PUBLIC.
--
CREATE EXTENSION sms;

SELECT pg_describe_object(classid, objid, objsubid) AS object
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'sms')
   AND deptype = 'e'
   -- since 17 a table's row type and every array type are members too
   AND NOT (classid = 'pg_type'::regclass AND objid IN
            (SELECT oid FROM pg_type WHERE typrelid <> 0 OR typelem <> 0))
 ORDER BY 1;

-- an outbox of version 1.0 updated in place: its messages and the grants an
-- administrator made are kept
SELECT extversion FROM pg_extension WHERE extname = 'sms';
DROP EXTENSION sms;
CREATE EXTENSION sms VERSION '1.0';
CREATE ROLE sms_monitor;
GRANT SELECT ON sms_stats TO sms_monitor;
GRANT EXECUTE ON FUNCTION sms_worker_condition() TO sms_monitor;
SELECT sms_send('+15558675310', '+15017122661', 'queued under 1.0') > 0 AS queued;
SELECT to_regprocedure('sms_settings_applied_at()') IS NULL AS not_in_1_0;
ALTER EXTENSION sms UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'sms';
SELECT body, state FROM sms_outbox;
SELECT has_table_privilege('sms_monitor', 'sms_stats', 'SELECT') AS monitor_reads_stats,
	   has_function_privilege('sms_monitor', 'sms_settings_applied_at()', 'EXECUTE')
	   AS monitor_runs_new_function,
	   has_function_privilege('public', 'sms_settings_applied_at()', 'EXECUTE')
	   AS public_runs_new_function;
-- the worker (paused, with no account) applies a reload: wait until it
-- has, up to a minute (it may still be starting: pg_regress has just
-- created the database it serves)
CREATE TEMP TABLE reloaded AS SELECT clock_timestamp() AS at, pg_reload_conf();
DO $$
BEGIN
	FOR i IN 1..6000 LOOP
		EXIT WHEN sms_settings_applied_at() > (SELECT at FROM reloaded);
		PERFORM pg_sleep(0.01);
	END LOOP;
END
$$;
SELECT sms_settings_applied_at() > at AS reload_applied FROM reloaded;
DROP TABLE reloaded;
DROP EXTENSION sms;
DROP ROLE sms_monitor;
CREATE EXTENSION sms;

-- the outbox's columns, as DESIGN.md names them
SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull
  FROM pg_attribute
 WHERE attrelid = 'sms_outbox'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;

SELECT enum_range(NULL::sms_state);

-- no PUBLIC grants on anything
SELECT p.oid::regprocedure AS function, p.proacl
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'sms')
   AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))
 ORDER BY 1;
SELECT c.relname, c.relacl
  FROM pg_class c
 WHERE c.relname IN ('sms_outbox', 'sms_stats')
   AND (c.relacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 0));

-- installing twice, or in another database, is refused
CREATE EXTENSION sms;
CREATE DATABASE sms_elsewhere;
\c sms_elsewhere
-- (18 adds the extension script's line as CONTEXT)
\set SHOW_CONTEXT never
CREATE EXTENSION sms;
\set SHOW_CONTEXT errors
\c contrib_regression
DROP DATABASE sms_elsewhere;

-- the settings exist with DESIGN.md's defaults
SELECT name, setting, unit, context
  FROM pg_settings WHERE name LIKE 'sms.%' ORDER BY name;

-- credentials never travel unencrypted: plain http only to this machine
ALTER SYSTEM SET sms.api_url = 'http://api.twilio.com';
ALTER SYSTEM SET sms.api_url = 'ftp://127.0.0.1';
ALTER SYSTEM SET sms.api_url = 'http://127.0.0.1:8080';
ALTER SYSTEM SET sms.api_url = 'http://localhost.example.com';
-- judged on the parsed URL: the host here is example.com, not 127.0.0.1
ALTER SYSTEM SET sms.api_url = 'http://127.0.0.1:x@example.com/';
ALTER SYSTEM RESET sms.api_url;
-- a CA file must be readable when it is set
ALTER SYSTEM SET sms.ca_file = '/nonexistent/ca.pem';
ALTER SYSTEM SET sms.account_sid = 'AC123';
