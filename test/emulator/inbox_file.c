/*-------------------------------------------------------------------------
 *
 * inbox_file.c
 *	  The inbox kept in a file (--inbox-file), so that a restart of the
 *	  emulator keeps every message, its sid and what became of it.
 *
 *	  The file is a journal of JSON lines, appended as things happen and
 *	  read back at start: a header (the run's sid prefix and the serial the
 *	  store's first message has), then one line per message created, and
 *	  one per change to a message (canceled, redacted, deleted, a media item
 *	  removed), which carries every field that can change, so the last one
 *	  read wins.  A reset starts the file again.  Lines are written whole
 *	  under store_lock, in the store's order, and flushed one by one: a
 *	  crash loses at most the line being written, and a torn last line is
 *	  skipped on reading (with a warning).
 *
 *	  Keeping the sid prefix and the serials keeps every sid: after a
 *	  restart a worker that polls a message's status finds it, with the
 *	  status its plan gives it by now.  Callbacks not yet sent when the
 *	  emulator stopped are not sent after it: the file keeps messages, not
 *	  the schedule.
 *
 *	  The lines are read with jansson; a file that is not an inbox (no
 *	  header) is refused, never overwritten.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INBOX_FILE_VERSION 1

static FILE *journal;
static const char *journal_path;

static void
write_line(json_t *line)
{
	if (journal == NULL)
	{
		json_decref(line);
		return;
	}
	if (json_dumpf(line, journal, JSON_COMPACT | JSON_ENSURE_ASCII) != 0 ||
		fputc('\n', journal) == EOF || fflush(journal) != 0)
	{
		fprintf(stderr, "twilio-emulator: could not write the inbox file \"%s\": %s; "
				"it is no longer kept\n", journal_path, strerror(errno));
		fclose(journal);
		journal = NULL;
	}
	json_decref(line);
}

static void
write_header(void)
{
	write_line(json_pack("{s:i, s:s, s:I}", "sms_emulator_inbox", INBOX_FILE_VERSION,
						 "sid_prefix", store_sid_prefix(),
						 "first_serial", (json_int_t) store_first_serial()));
}

/* A string field that may be absent (NULL) */
static json_t *
opt_str(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* The fields of a message that change after its creation. */
static json_t *
changes(const Message *m)
{
	json_t	   *media_deleted = json_array();

	for (int i = 0; i < m->num_media; i++)
		json_array_append_new(media_deleted, json_boolean(m->media_deleted[i]));
	return json_pack("{s:s, s:I, s:b, s:I, s:I, s:o}",
					 "op", "change", "serial", (json_int_t) m->serial,
					 "deleted", m->deleted,
					 "canceled_us", (json_int_t) m->canceled_us,
					 "redacted_us", (json_int_t) m->redacted_us,
					 "media_deleted", media_deleted);
}

/* A message was created; store_lock held. */
void
inbox_file_add(const Message *m)
{
	json_t	   *media,
			   *at_ms,
			   *status;

	if (journal == NULL)
		return;
	media = json_array();
	for (int i = 0; i < m->num_media; i++)
		json_array_append_new(media, json_string(m->media[i]));
	at_ms = json_array();
	status = json_array();
	for (int i = 0; i < m->plan.nsteps; i++)
	{
		json_array_append_new(at_ms, json_integer(m->plan.at_ms[i]));
		json_array_append_new(status, json_integer(m->plan.status[i]));
	}
	write_line(json_pack("{s:s, s:I, s:I, s:s, s:o, s:o, s:s%, s:o, s:o, s:i, s:b,"
						 " s:{s:o, s:o, s:i, s:i}}",
						 "op", "message", "serial", (json_int_t) m->serial,
						 "created_us", (json_int_t) m->created_us,
						 "to", m->to,
						 "from", opt_str(m->from),
						 "messaging_service_sid", opt_str(m->service_sid),
						 "body", m->body, m->body_len,
						 "media_urls", media,
						 "status_callback", opt_str(m->callback_url),
						 "num_segments", m->num_segments,
						 "ucs2", m->ucs2,
						 "plan", "at_ms", at_ms, "status", status,
						 "sent_step", m->plan.sent_step,
						 "error_code", m->plan.error_code));
}

/* A message changed (canceled, redacted, deleted, media); store_lock held. */
void
inbox_file_change(const Message *m)
{
	if (journal != NULL)
		write_line(changes(m));
}

/* The store was emptied; store_lock held. */
void
inbox_file_reset(void)
{
	if (journal == NULL)
		return;
	if (ftruncate(fileno(journal), 0) != 0)
		fprintf(stderr, "twilio-emulator: could not empty the inbox file \"%s\": %s\n",
				journal_path, strerror(errno));
	write_header();
}

static const char *
get_str(json_t *o, const char *key, size_t *len)
{
	json_t	   *v = json_object_get(o, key);

	if (!json_is_string(v))
		return NULL;
	if (len)
		*len = json_string_length(v);
	return json_string_value(v);
}

/* Bring back one message line; false if it is not one. */
static bool
restore_message(json_t *line)
{
	NewMessage	nm = {0};
	json_t	   *media = json_object_get(line, "media_urls");
	json_t	   *plan = json_object_get(line, "plan");
	json_t	   *at_ms = json_object_get(plan, "at_ms");
	json_t	   *status = json_object_get(plan, "status");
	size_t		nmedia = json_array_size(media);
	FormField  *fields;
	const FormField **field_ptrs;
	size_t		nsteps = json_array_size(at_ms);
	Message    *m;

	nm.to = get_str(line, "to", &nm.to_len);
	nm.from = get_str(line, "from", &nm.from_len);
	nm.service_sid = get_str(line, "messaging_service_sid", &nm.service_len);
	nm.body = get_str(line, "body", &nm.body_len);
	nm.callback_url = get_str(line, "status_callback", &nm.callback_len);
	if (nm.to == NULL || nm.body == NULL || !json_is_array(media) ||
		nsteps == 0 || nsteps > MAX_STEPS || json_array_size(status) != nsteps)
		return false;
	fields = calloc(nmedia + 1, sizeof(FormField));
	field_ptrs = calloc(nmedia + 1, sizeof(FormField *));
	if (fields == NULL || field_ptrs == NULL)
		abort();
	for (size_t i = 0; i < nmedia; i++)
	{
		fields[i].key = "MediaUrl";
		fields[i].klen = 8;
		fields[i].val = json_string_value(json_array_get(media, i));
		fields[i].vlen = json_string_length(json_array_get(media, i));
		field_ptrs[i] = &fields[i];
	}
	nm.num_media = (int) nmedia;
	nm.media = field_ptrs;
	nm.num_segments = (int) json_integer_value(json_object_get(line, "num_segments"));
	nm.ucs2 = json_is_true(json_object_get(line, "ucs2"));
	nm.plan.nsteps = (uint8_t) nsteps;
	for (size_t i = 0; i < nsteps; i++)
	{
		nm.plan.at_ms[i] = (uint32_t) json_integer_value(json_array_get(at_ms, i));
		nm.plan.status[i] = (uint8_t) json_integer_value(json_array_get(status, i));
	}
	nm.plan.sent_step = (int8_t) json_integer_value(json_object_get(plan, "sent_step"));
	nm.plan.error_code = (int) json_integer_value(json_object_get(plan, "error_code"));
	for (size_t i = 0; i < nmedia; i++)
		if (fields[i].val == NULL)
			nm.plan.nsteps = 0;	/* not a string: refused below */
	m = nm.plan.nsteps == 0 ? NULL :
		store_restore(&nm, json_integer_value(json_object_get(line, "serial")),
					  json_integer_value(json_object_get(line, "created_us")));
	free(fields);
	free(field_ptrs);
	return m != NULL;
}

/* Apply one change line; false if it names no message. */
static bool
restore_change(json_t *line)
{
	Message    *m = store_by_serial(json_integer_value(json_object_get(line, "serial")));
	json_t	   *media_deleted = json_object_get(line, "media_deleted");

	if (m == NULL)
		return false;
	m->deleted = json_is_true(json_object_get(line, "deleted"));
	m->canceled_us = json_integer_value(json_object_get(line, "canceled_us"));
	m->redacted_us = json_integer_value(json_object_get(line, "redacted_us"));
	if (m->redacted_us)
		m->body_len = 0;
	for (int i = 0; i < m->num_media && i < (int) json_array_size(media_deleted); i++)
		m->media_deleted[i] = json_is_true(json_array_get(media_deleted, i));
	return true;
}

/*
 * Read the inbox kept in path (if there is one), then keep it there from
 * now on.  Before the server starts; exits on a file it cannot use.
 */
void
inbox_file_open(const char *path)
{
	FILE	   *f = fopen(path, "a+");
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		len;
	long		lineno = 0,
				messages = 0,
				skipped = 0;
	bool		header = false,
				torn = false;

	if (f == NULL)
	{
		fprintf(stderr, "twilio-emulator: could not open the inbox file \"%s\": %s\n",
				path, strerror(errno));
		exit(1);
	}
	rewind(f);
	pthread_mutex_lock(&store_lock);
	while ((len = getline(&line, &cap, f)) > 0)
	{
		json_error_t err;
		json_t	   *j = json_loadb(line, (size_t) len, JSON_DISABLE_EOF_CHECK, &err);
		const char *op = get_str(j, "op", NULL);
		bool		ok = false;

		lineno++;
		torn = line[len - 1] != '\n';
		if (!header)
		{
			const char *prefix = get_str(j, "sid_prefix", NULL);

			if (json_integer_value(json_object_get(j, "sms_emulator_inbox")) != INBOX_FILE_VERSION ||
				prefix == NULL || !store_set_sid_prefix(prefix,
														json_integer_value(json_object_get(j, "first_serial"))))
			{
				fprintf(stderr, "twilio-emulator: \"%s\" is not an inbox file of this emulator "
						"(its first line is not the header this emulator writes); "
						"name a new file, or an empty one\n", path);
				exit(1);
			}
			header = true;
			json_decref(j);
			continue;
		}
		if (op && strcmp(op, "message") == 0)
			ok = restore_message(j);
		else if (op && strcmp(op, "change") == 0)
			ok = restore_change(j);
		if (ok && strcmp(op, "message") == 0)
			messages++;
		if (!ok)
		{
			skipped++;
			fprintf(stderr, "twilio-emulator: %s:%ld: skipped: %s\n", path, lineno,
					j ? "not a message of this inbox" : err.text);
		}
		json_decref(j);
	}
	free(line);
	journal = f;
	journal_path = path;
	/* what comes next starts a line of its own, even after a torn one */
	if (torn)
		fputc('\n', journal);
	/* a new file, or one that was empty: its header */
	if (!header)
		write_header();
	pthread_mutex_unlock(&store_lock);
	if (!cfg.quiet)
		fprintf(stderr, "twilio-emulator: inbox kept in %s: %ld messages read%s\n",
				path, messages, skipped ? " (some lines skipped)" : "");
}

void
inbox_file_close(void)
{
	if (journal)
		fclose(journal);
	journal = NULL;
}
