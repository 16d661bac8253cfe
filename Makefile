# sms: send SMS from SQL.  PGXS build, plus the project's own targets:
#   make demo    a throwaway cluster and the Twilio emulator, messages sent
#   make test    every test (pg_regress, TAP, Prism conformance)
#   make bench   benchmarks that print figures
#   make test-ha failover under Patroni while messages drain (test/ha/)

MODULE_big = sms
OBJS = \
	src/sms.o \
	src/settings_check.o \
	src/url.o \
	src/enqueue.o \
	src/cancel.o \
	src/callback.o \
	src/status.o \
	src/identity.o \
	src/insert.o \
	src/validate.o \
	src/encoding.o \
	src/job.o \
	src/outbox.o \
	src/outbox_status.o \
	src/poll.o \
	src/http.o \
	src/provider.o \
	src/twilio.o \
	src/twilio_auth.o \
	src/twilio_json.o \
	src/twilio_status.o \
	src/worker.o \
	src/worker_requests.o \
	src/worker_turn.o \
	src/worker_poll.o \
	src/outcome.o \
	src/standby.o \
	src/shared.o \
	src/redact.o

EXTENSION = sms
DATA = sms--1.0.sql sms--1.0--1.1.sql
PGFILEDESC = "sms - send SMS from SQL"

# -Wextra, less unused parameters: PostgreSQL's own inline functions and
# every callback signature (fmgr, GUC hooks, libcurl) have them
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter
SHLIB_LINK = -lcurl

REGRESS = install validate encoding outbox privileges insert callback
REGRESS_OPTS = --temp-config=$(srcdir)/test/regress.conf

# The PostgreSQL major to build for and test on: the one the distribution
# carries (Debian 12: 15, 13: 17, unstable: 18) unless PG=N names another
# (make test PG=17 runs in a chroot of the Debian that carries it: see
# test/matrix/chroot.sh).
DISTRO_PG := $(shell apt-cache show --no-all-versions postgresql 2>/dev/null | \
	sed -n 's/^Depends: postgresql-\([0-9][0-9]*\).*/\1/p' | head -n 1)
ifneq ($(filter command line environment,$(origin PG_CONFIG)),)
# a pg_config named by the user says which major it is
PG_MAJOR := $(shell $(PG_CONFIG) --version | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p')
else
PG_MAJOR := $(or $(PG),$(DISTRO_PG))
PG_CONFIG := $(firstword $(wildcard /usr/lib/postgresql/$(PG_MAJOR)/bin/pg_config) \
	$(shell command -v pg_config))
endif

ifneq ($(filter-out $(DISTRO_PG),$(PG)),)
# a major this distribution does not carry: its own Debian, in a chroot
include test/matrix/matrix.mk
else
PGXS := $(if $(PG_CONFIG),$(shell $(PG_CONFIG) --pgxs))
include $(PGXS)

# PGXS does not track header dependencies
$(OBJS): $(wildcard src/*.h)

include test/test.mk
endif
