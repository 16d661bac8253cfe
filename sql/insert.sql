--
-- sms_send() inserts its row as an INSERT statement would: what users add
-- to the outbox (triggers, columns with defaults, generated columns,
-- constraints, domains; row-level security as it binds the outbox's owner)
-- applies to it, and a change to any of them applies at the next call.
-- (The worker of this instance has no account configured, so it leaves the
-- rows alone.)
--
TRUNCATE sms_outbox;
CREATE TABLE public.audit (seq serial, what text, n bigint);

-- Triggers run as the outbox's owner with search_path pinned to pg_catalog
-- and pg_temp: they name what they use with its schema, or set their own.
CREATE FUNCTION public.outbox_before() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.body = 'skip me' THEN
		RETURN NULL;
	END IF;
	NEW.priority := NEW.priority + 100;
	RETURN NEW;
END $$;
CREATE FUNCTION public.outbox_after_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.audit (what, n) VALUES ('after row, priority ' || NEW.priority, NEW.id);
	RETURN NULL;
END $$;
CREATE FUNCTION public.outbox_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.audit (what) VALUES (lower(TG_WHEN) || ' statement');
	RETURN NULL;
END $$;
CREATE TRIGGER a_before BEFORE INSERT ON sms_outbox
	FOR EACH ROW EXECUTE FUNCTION public.outbox_before();
CREATE TRIGGER a_after_row AFTER INSERT ON sms_outbox
	FOR EACH ROW EXECUTE FUNCTION public.outbox_after_row();
CREATE TRIGGER a_before_statement BEFORE INSERT ON sms_outbox
	FOR EACH STATEMENT EXECUTE FUNCTION public.outbox_statement();
CREATE TRIGGER a_after_statement AFTER INSERT ON sms_outbox
	FOR EACH STATEMENT EXECUTE FUNCTION public.outbox_statement();

-- a BEFORE trigger changes the row; the AFTER trigger sees the id returned
SELECT sms_send('+15558675310', '+15017122661', 'hello') AS id \gset
SELECT id = :id AS same_id, body, priority, state FROM sms_outbox;
SELECT what, n = :id AS id_seen FROM public.audit ORDER BY seq;
-- a BEFORE trigger that skips the row: nothing queued, and null comes back
TRUNCATE public.audit;
SELECT sms_send('+15558675310', '+15017122661', 'skip me') IS NULL AS skipped;
SELECT count(*) FROM sms_outbox WHERE body = 'skip me';
SELECT what FROM public.audit ORDER BY seq;
-- the same with an idempotency key (a planned INSERT ... ON CONFLICT)
SELECT sms_send('+15558675310', '+15017122661', 'keyed', idempotency_key => 'k-1') AS keyed \gset
SELECT id = :keyed AS same_id, priority FROM sms_outbox WHERE body = 'keyed';
SELECT sms_send('+15558675310', '+15017122661', 'skip me', idempotency_key => 'k-2') IS NULL AS skipped;
DROP TRIGGER a_before ON sms_outbox;
DROP TRIGGER a_after_row ON sms_outbox;
DROP TRIGGER a_before_statement ON sms_outbox;
DROP TRIGGER a_after_statement ON sms_outbox;

-- columns the application adds: a default, and one from a function
CREATE FUNCTION public.tenant_default() RETURNS text LANGUAGE sql AS $$ SELECT 'acme' $$;
ALTER TABLE sms_outbox
	ADD COLUMN tenant text DEFAULT public.tenant_default(),
	ADD COLUMN region text DEFAULT 'eu',
	ADD COLUMN body_length int GENERATED ALWAYS AS (length(body)) STORED;
TRUNCATE sms_outbox;
SELECT sms_send('+15558675310', '+15017122661', 'one') > 0 AS queued;
-- changed defaults, and a function replaced, apply at the next call
ALTER TABLE sms_outbox ALTER COLUMN region SET DEFAULT 'us';
SELECT sms_send('+15558675310', '+15017122661', 'two') > 0 AS queued;
CREATE OR REPLACE FUNCTION public.tenant_default() RETURNS text LANGUAGE sql AS $$ SELECT 'globex' $$;
SELECT sms_send('+15558675310', '+15017122661', 'three') > 0 AS queued;
SELECT body, tenant, region, body_length FROM sms_outbox ORDER BY id;
ALTER TABLE sms_outbox DROP COLUMN tenant, DROP COLUMN region, DROP COLUMN body_length;
DROP FUNCTION public.tenant_default();
-- and a dropped column is gone from the next row
SELECT sms_send('+15558675310', '+15017122661', 'four') > 0 AS queued;
SELECT body, priority, state FROM sms_outbox WHERE body = 'four';

-- constraints: CHECK, NOT NULL, and a domain's constraints on a null
-- (terse: the failing row's details hold times)
\set VERBOSITY terse
TRUNCATE sms_outbox;
ALTER TABLE sms_outbox ADD CONSTRAINT short_body CHECK (length(body) < 10);
SELECT sms_send('+15558675310', '+15017122661', 'a body of more than ten');
ALTER TABLE sms_outbox DROP CONSTRAINT short_body;
ALTER TABLE sms_outbox ADD COLUMN must_have text NOT NULL DEFAULT 'x';
ALTER TABLE sms_outbox ALTER COLUMN must_have DROP DEFAULT;
SELECT sms_send('+15558675310', '+15017122661', 'no value');
ALTER TABLE sms_outbox DROP COLUMN must_have;
CREATE DOMAIN public.not_null_text AS text NOT NULL;
ALTER TABLE sms_outbox ADD COLUMN ref public.not_null_text;
SELECT sms_send('+15558675310', '+15017122661', 'no ref');
ALTER TABLE sms_outbox DROP COLUMN ref;
DROP DOMAIN public.not_null_text;
\set VERBOSITY default

-- a statement trigger with a transition table sees the row
CREATE FUNCTION public.outbox_new_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.audit (what, n) SELECT 'new rows', count(*) FROM new_rows;
	RETURN NULL;
END $$;
CREATE TRIGGER a_new_rows AFTER INSERT ON sms_outbox
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION public.outbox_new_rows();
TRUNCATE public.audit;
SELECT sms_send('+15558675310', '+15017122661', 'in a transition table') > 0 AS queued;
SELECT what, n FROM public.audit ORDER BY seq;
DROP TRIGGER a_new_rows ON sms_outbox;

-- Row-level security.  sms_send() inserts as the outbox's owner, so a
-- policy binds its rows as it would bind the owner's own INSERT, not the
-- caller's: not at all while the owner is a superuser, as the role that
-- created the extension is (a superuser bypasses every policy, FORCE or
-- not); with FORCE ROW LEVEL SECURITY and an owner that is not one,
-- through the policies for the owner, which know the caller only by
-- created_by.  A role's own INSERT is bound by the policies for that role.
CREATE ROLE sms_rls_app;
GRANT EXECUTE ON FUNCTION sms_send(text, text, text, text[], timestamptz, int, text) TO sms_rls_app;
GRANT INSERT, SELECT ON sms_outbox TO sms_rls_app;
TRUNCATE sms_outbox;
SELECT sms_send('+15558675399', '+15017122661', 'queued by a superuser') > 0 AS queued;
ALTER TABLE sms_outbox ENABLE ROW LEVEL SECURITY;
-- the application may queue to +1555 numbers only, and sees its own rows
CREATE POLICY app_writes ON sms_outbox FOR INSERT TO sms_rls_app
	WITH CHECK (to_number LIKE '+1555%');
CREATE POLICY app_reads ON sms_outbox FOR SELECT TO sms_rls_app
	USING (created_by = current_user);
\set VERBOSITY terse
SET ROLE sms_rls_app;
-- its own INSERT: queued or refused, as the policy says
INSERT INTO sms_outbox (to_number, from_number, body)
	VALUES ('+15558675310', '+15017122661', 'insert, allowed');
INSERT INTO sms_outbox (to_number, from_number, body)
	VALUES ('+4915112345678', '+15017122661', 'insert, refused');
-- sms_send(): inserted as the superuser that owns the outbox, whom no
-- policy binds, so the number the policy refuses is queued as well
SELECT sms_send('+15558675310', '+15017122661', 'sms_send, allowed') > 0 AS queued;
SELECT sms_send('+4915112345678', '+15017122661', 'sms_send, past the policy') > 0 AS queued;
-- the role reads its own rows only
SELECT body FROM sms_outbox ORDER BY id;
RESET ROLE;
-- FORCE ROW LEVEL SECURITY: a superuser owner still bypasses every policy
ALTER TABLE sms_outbox FORCE ROW LEVEL SECURITY;
SET ROLE sms_rls_app;
SELECT sms_send('+4915112345678', '+15017122661', 'forced, owned by a superuser') > 0 AS queued;
RESET ROLE;
-- an owner that is not a superuser, with FORCE: the policies for
-- sms_rls_app do not apply to sms_send()'s insert, and with none for the
-- owner nothing is queued
CREATE ROLE sms_rls_owner;
ALTER TABLE sms_outbox OWNER TO sms_rls_owner;
SET ROLE sms_rls_app;
SELECT sms_send('+15558675310', '+15017122661', 'forced, no policy for the owner');
RESET ROLE;
-- a policy for the owner binds sms_send()'s rows, the caller known by
-- created_by; sms_send()'s INSERT returns the id, so an INSERT policy
-- alone is not enough: the owner must be allowed to read the row too
CREATE POLICY owner_writes ON sms_outbox FOR INSERT TO sms_rls_owner
	WITH CHECK (created_by <> 'sms_rls_app' OR to_number LIKE '+1555%');
SET ROLE sms_rls_app;
SELECT sms_send('+15558675310', '+15017122661', 'forced, no SELECT policy for the owner');
RESET ROLE;
CREATE POLICY owner_reads ON sms_outbox FOR SELECT TO sms_rls_owner USING (true);
SET ROLE sms_rls_app;
SELECT sms_send('+15558675310', '+15017122661', 'forced, allowed') > 0 AS queued;
SELECT sms_send('+4915112345678', '+15017122661', 'forced, refused');
SELECT sms_send('+4915112345678', '+15017122661', 'forced, refused', idempotency_key => 'rls-1');
-- and its own INSERT is bound by its own policy still
INSERT INTO sms_outbox (to_number, from_number, body)
	VALUES ('+4915112345678', '+15017122661', 'forced insert, refused');
RESET ROLE;
\set VERBOSITY default
-- without FORCE, the owner (a superuser or not) is bound by no policy
ALTER TABLE sms_outbox NO FORCE ROW LEVEL SECURITY;
SET ROLE sms_rls_app;
SELECT sms_send('+4915112345678', '+15017122661', 'not forced, owned by a role') > 0 AS queued;
RESET ROLE;
SELECT body, to_number, created_by = 'sms_rls_app' AS by_app FROM sms_outbox ORDER BY id;
ALTER TABLE sms_outbox OWNER TO CURRENT_USER;
DROP POLICY app_writes ON sms_outbox;
DROP POLICY app_reads ON sms_outbox;
DROP POLICY owner_writes ON sms_outbox;
DROP POLICY owner_reads ON sms_outbox;
ALTER TABLE sms_outbox DISABLE ROW LEVEL SECURITY;
REVOKE ALL ON sms_outbox FROM sms_rls_app;
REVOKE ALL ON FUNCTION sms_send(text, text, text, text[], timestamptz, int, text) FROM sms_rls_app;
DROP ROLE sms_rls_app;
DROP ROLE sms_rls_owner;

-- a read-only transaction queues nothing
BEGIN READ ONLY;
SELECT sms_send('+15558675310', '+15017122661', 'read only');
ROLLBACK;

-- an ON INSERT rule on the outbox applies (a planned INSERT runs it)
CREATE RULE also_audit AS ON INSERT TO sms_outbox
	DO ALSO INSERT INTO public.audit (what) VALUES ('rule: ' || NEW.body);
TRUNCATE public.audit;
SELECT sms_send('+15558675310', '+15017122661', 'ruled') > 0 AS queued;
SELECT what FROM public.audit;
DROP RULE also_audit ON sms_outbox;

-- a column whose type was changed gets the coercions and checks of an INSERT
ALTER TABLE sms_outbox ALTER COLUMN priority TYPE smallint;
\set VERBOSITY terse
SELECT sms_send('+15558675310', '+15017122661', 'too urgent', priority => 40000);
\set VERBOSITY default
SELECT sms_send('+15558675310', '+15017122661', 'urgent', priority => 300) > 0 AS queued;
ALTER TABLE sms_outbox ALTER COLUMN priority TYPE int;
SELECT body, priority FROM sms_outbox WHERE body LIKE '%urgent';

-- a default that fails fails the call, every time (not a crash the second)
\set VERBOSITY terse
ALTER TABLE sms_outbox ADD COLUMN broken int;
ALTER TABLE sms_outbox ALTER COLUMN broken SET DEFAULT 1 / 0;
SELECT sms_send('+15558675310', '+15017122661', 'broken');
SELECT sms_send('+15558675310', '+15017122661', 'broken');
ALTER TABLE sms_outbox DROP COLUMN broken;
\set VERBOSITY default

-- constraints and generated columns may use tableoid, also on a row a
-- BEFORE trigger replaced
ALTER TABLE sms_outbox ADD CONSTRAINT in_outbox CHECK (tableoid = 'sms_outbox'::regclass);
CREATE TRIGGER a_before BEFORE INSERT ON sms_outbox
	FOR EACH ROW EXECUTE FUNCTION public.outbox_before();
SELECT sms_send('+15558675310', '+15017122661', 'tableoid') > 0 AS queued;
DROP TRIGGER a_before ON sms_outbox;
ALTER TABLE sms_outbox DROP CONSTRAINT in_outbox;

-- sms_send() inserts as whoever owns the outbox now, and that role's own
-- INSERT privilege is checked, as for any INSERT
CREATE ROLE sms_outbox_owner;
ALTER TABLE sms_outbox OWNER TO sms_outbox_owner;
SELECT sms_send('+15558675310', '+15017122661', 'new owner') > 0 AS queued;
REVOKE INSERT ON sms_outbox FROM sms_outbox_owner;
SELECT sms_send('+15558675310', '+15017122661', 'no privilege');
ALTER TABLE sms_outbox OWNER TO CURRENT_USER;
GRANT INSERT ON sms_outbox TO CURRENT_USER;
DROP ROLE sms_outbox_owner;

-- Defaults are evaluated after the BEFORE STATEMENT triggers, as a plan's
-- are; a trigger's own sms_send() (here after a change of a function, which
-- makes the inner call rebuild what the outer one is using) leaves the outer
-- row whole, created_by included.
CREATE ROLE sms_insert_app;
GRANT EXECUTE ON FUNCTION sms_send(text, text, text, text[], timestamptz, int, text) TO sms_insert_app;
GRANT SELECT ON sms_outbox TO sms_insert_app;
ALTER TABLE sms_outbox ADD COLUMN tenant text DEFAULT current_setting('app.tenant', true),
	ADD COLUMN label text DEFAULT 'constant label';
CREATE FUNCTION public.outbox_nested() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_catalog.set_config('app.tenant', 'set by the trigger', true);
	IF pg_catalog.current_setting('app.nest', true) = 'yes' THEN
		PERFORM pg_catalog.set_config('app.nest', 'no', true);
		CREATE OR REPLACE FUNCTION public.outbox_changed() RETURNS int LANGUAGE sql AS 'SELECT 2';
		PERFORM public.sms_send('+15558675310', '+15017122661', 'inner');
	END IF;
	RETURN NULL;
END $$;
CREATE FUNCTION public.outbox_changed() RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION public.outbox_nested_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM public.sms_send('+15558675310', '+15017122661', 'inner row');
	RETURN NEW;
END $$;
CREATE TRIGGER a_nested BEFORE INSERT ON sms_outbox
	FOR EACH STATEMENT EXECUTE FUNCTION public.outbox_nested();
TRUNCATE sms_outbox;
BEGIN;
SET LOCAL app.nest = 'yes';
SET LOCAL ROLE sms_insert_app;
SELECT sms_send('+15558675310', '+15017122661', 'outer') > 0 AS queued;
COMMIT;
SELECT body, tenant, label, created_by FROM sms_outbox ORDER BY id;
DROP TRIGGER a_nested ON sms_outbox;
-- the same from a BEFORE ROW trigger that fires before sms_outbox_validate
CREATE TRIGGER a_nested_row BEFORE INSERT ON sms_outbox
	FOR EACH ROW WHEN (NEW.body = 'outer row') EXECUTE FUNCTION public.outbox_nested_row();
TRUNCATE sms_outbox;
BEGIN;
SET LOCAL ROLE sms_insert_app;
SELECT sms_send('+15558675310', '+15017122661', 'outer row') > 0 AS queued;
COMMIT;
SELECT body, created_by FROM sms_outbox ORDER BY id;
DROP TRIGGER a_nested_row ON sms_outbox;
ALTER TABLE sms_outbox DROP COLUMN tenant, DROP COLUMN label;
DROP FUNCTION public.outbox_nested(), public.outbox_changed(), public.outbox_nested_row();
REVOKE ALL ON sms_outbox FROM sms_insert_app;
REVOKE ALL ON FUNCTION sms_send(text, text, text, text[], timestamptz, int, text) FROM sms_insert_app;
DROP ROLE sms_insert_app;

-- A BEFORE ROW trigger that sorts before sms_outbox_validate and changes
-- the row sms_send() passed: the validation trigger checks the row it is
-- given, whoever inserted it, and the call fails
CREATE FUNCTION public.outbox_mangle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.to_number := 'not a number';
	RETURN NEW;
END $$;
CREATE TRIGGER a_mangle BEFORE INSERT ON sms_outbox
	FOR EACH ROW EXECUTE FUNCTION public.outbox_mangle();
TRUNCATE sms_outbox;
SELECT sms_send('+15558675310', '+15017122661', 'mangled');
SELECT count(*) AS mangled_rows FROM sms_outbox;
DROP TRIGGER a_mangle ON sms_outbox;
DROP FUNCTION public.outbox_mangle();

-- A BEFORE ROW trigger's own INSERT into the outbox, made while
-- sms_send() inserts, is validated as any other, and leaves sms_send()'s row
-- the caller's
CREATE FUNCTION public.outbox_nested_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.body = 'outer' THEN
		INSERT INTO public.sms_outbox (to_number, from_number, body)
			VALUES (pg_catalog.current_setting('app.nested_to'), '+15017122661', 'nested');
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER a_nested_insert BEFORE INSERT ON sms_outbox
	FOR EACH ROW EXECUTE FUNCTION public.outbox_nested_insert();
CREATE ROLE sms_nested_app;
GRANT EXECUTE ON FUNCTION sms_send(text, text, text, text[], timestamptz, int, text) TO sms_nested_app;
TRUNCATE sms_outbox;
SET app.nested_to = 'nonsense';
SET ROLE sms_nested_app;
SELECT sms_send('+15558675310', '+15017122661', 'outer');
RESET ROLE;
SET app.nested_to = '+15558675311';
SET ROLE sms_nested_app;
SELECT sms_send('+15558675310', '+15017122661', 'outer') > 0 AS queued;
RESET ROLE;
SELECT body, to_number, created_by = 'sms_nested_app' AS by_app FROM sms_outbox ORDER BY id;
DROP TRIGGER a_nested_insert ON sms_outbox;
DROP FUNCTION public.outbox_nested_insert();
REVOKE ALL ON FUNCTION sms_send(text, text, text, text[], timestamptz, int, text) FROM sms_nested_app;
DROP ROLE sms_nested_app;
RESET app.nested_to;

-- A trigger's function may set its own search_path, as a function
-- attribute or with SET LOCAL in its body, as in any INSERT; neither
-- reaches the caller's
CREATE SCHEMA sms_app;
CREATE TABLE sms_app.audit_log (body text);
CREATE FUNCTION public.outbox_audit() RETURNS trigger LANGUAGE plpgsql
	SET search_path = sms_app, pg_catalog AS $$
BEGIN
	INSERT INTO audit_log VALUES (NEW.body);
	RETURN NULL;
END $$;
CREATE FUNCTION public.outbox_audit_local() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	SET LOCAL search_path = sms_app, pg_catalog;
	INSERT INTO audit_log VALUES (NEW.body || ', set local');
	RETURN NULL;
END $$;
CREATE TRIGGER a_audit AFTER INSERT ON sms_outbox
	FOR EACH ROW EXECUTE FUNCTION public.outbox_audit();
CREATE TRIGGER a_audit_local AFTER INSERT ON sms_outbox
	FOR EACH ROW EXECUTE FUNCTION public.outbox_audit_local();
BEGIN;
SET LOCAL search_path = public;
SELECT sms_send('+15558675310', '+15017122661', 'audited') > 0 AS queued;
SHOW search_path;
COMMIT;
SELECT body FROM sms_app.audit_log ORDER BY body;
DROP TRIGGER a_audit ON sms_outbox;
DROP TRIGGER a_audit_local ON sms_outbox;
DROP FUNCTION public.outbox_audit(), public.outbox_audit_local();
DROP SCHEMA sms_app CASCADE;

-- The outbox renamed, and a table made with its old name: a session whose
-- saved plans name the outbox refuses rather than insert into that table
TRUNCATE sms_outbox;
SELECT sms_send('+15558675310', '+15017122661', 'before the rename') > 0 AS queued;
ALTER TABLE sms_outbox RENAME TO sms_outbox_renamed;
CREATE TABLE public.sms_outbox (LIKE public.sms_outbox_renamed INCLUDING ALL);
SELECT sms_send('+15558675310', '+15017122661', 'after the rename');
SELECT count(*) AS rows_in_the_impostor FROM public.sms_outbox;
DROP TABLE public.sms_outbox;
ALTER TABLE sms_outbox_renamed RENAME TO sms_outbox;
SELECT sms_send('+15558675310', '+15017122661', 'renamed back') > 0 AS queued;
SELECT body FROM sms_outbox ORDER BY id;

-- the ids returned are the rows' ids, in order
TRUNCATE sms_outbox;
CREATE TEMP TABLE returned AS
	SELECT sms_send('+15558675310', '+15017122661', 'n' || i) AS id
	  FROM generate_series(1, 5) i;
SELECT array_agg(r.id ORDER BY r.id) = array_agg(o.id ORDER BY o.id) AS ids_match,
	   count(*)
  FROM returned r FULL JOIN sms_outbox o ON o.id = r.id;

TRUNCATE sms_outbox;
DROP FUNCTION public.outbox_before(), public.outbox_after_row(),
	public.outbox_statement(), public.outbox_new_rows();
DROP TABLE public.audit;
