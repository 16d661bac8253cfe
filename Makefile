# sms: send SMS from SQL.  PGXS build, plus the project's own targets:
#   make demo    a throwaway cluster and the Twilio emulator, messages sent
#   make test    every test (pg_regress, TAP, Prism conformance)
#   make bench   benchmarks that print figures

MODULE_big = sms
OBJS = \
	src/sms.o \
	src/settings_check.o \
	src/url.o \
	src/enqueue.o \
	src/cancel.o \
	src/insert.o \
	src/validate.o \
	src/encoding.o \
	src/job.o \
	src/outbox.o \
	src/http.o \
	src/twilio.o \
	src/twilio_json.o \
	src/worker.o \
	src/redact.o

EXTENSION = sms
DATA = sms--1.0.sql
PGFILEDESC = "sms - send SMS from SQL"

# -Wextra, less unused parameters: PostgreSQL's own inline functions and
# every callback signature (fmgr, GUC hooks, libcurl) have them
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter
SHLIB_LINK = -lcurl

REGRESS = install validate encoding outbox privileges insert
REGRESS_OPTS = --temp-config=$(srcdir)/test/regress.conf

PG_CONFIG ?= $(shell command -v /usr/lib/postgresql/15/bin/pg_config || command -v pg_config)
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track header dependencies
$(OBJS): $(wildcard src/*.h)

include test/test.mk
