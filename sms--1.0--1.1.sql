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
