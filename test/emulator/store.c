/*-------------------------------------------------------------------------
 *
 * store.c
 *	  The messages the emulator has created, and the log of API requests.
 *
 *	  Messages live in one array in creation order.  Their sids carry a
 *	  per-run random prefix and the creation counter, so a fetch finds its
 *	  message by arithmetic instead of a hash table, and a sid is never
 *	  reused even across /_emulator/reset.  Each message is one allocation
 *	  holding its strings.
 *
 *	  The request log keeps each request's raw URI and its parsed form,
 *	  both taken over from the request (no copies), and writes them as
 *	  JSON only when someone asks for the log.  Sequence numbers are
 *	  taken at arrival but entries are appended when the reply is decided,
 *	  so the report sorts them back into arrival order.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;

static Message **msgs;
static size_t nmsgs;
static size_t capmsgs;
static int64_t next_serial = 1;	/* never reset: sids stay unique */
static int64_t base_serial = 1;	/* serial of msgs[0] */
static char sid_prefix[17];

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n);

	if (p == NULL)
	{
		fprintf(stderr, "twilio-emulator: out of memory\n");
		abort();
	}
	return p;
}

/* A random sid prefix per run, so sids differ between emulator runs. */
static void
init_prefix(void)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[8];
	int			fd = open("/dev/urandom", O_RDONLY);
	int			i;

	if (fd < 0 || read(fd, rnd, sizeof(rnd)) != (ssize_t) sizeof(rnd))
	{
		uint64_t	x = (uint64_t) now_us() ^ ((uint64_t) getpid() << 32);

		memcpy(rnd, &x, sizeof(rnd));
	}
	if (fd >= 0)
		close(fd);
	for (i = 0; i < 8; i++)
	{
		sid_prefix[2 * i] = hex[rnd[i] >> 4];
		sid_prefix[2 * i + 1] = hex[rnd[i] & 15];
	}
	sid_prefix[16] = '\0';
}

static char *
copy_str(char **dst, const char *s, size_t n)
{
	char	   *p = *dst;

	memcpy(p, s, n);
	p[n] = '\0';
	*dst += n + 1;
	return p;
}

/*
 * Build the message (one allocation) and append it.  The caller holds
 * store_lock, so serials are appended in order and msgs[i] has serial
 * base_serial + i.
 */
static Message *append(const NewMessage *nm, int64_t serial, int64_t created_us);

Message *
store_add(const NewMessage *nm, int64_t created_us)
{
	Message    *m;

	if (sid_prefix[0] == '\0')
		init_prefix();
	m = append(nm, next_serial++, created_us);
	/* the inbox page's list of conversations, and the inbox file */
	inbox_note(m);
	inbox_file_add(m);
	return m;
}

/*
 * A message read back from the inbox file (inbox_file.c), with the serial
 * it had; store_lock held.  Serials must follow on from the store's last,
 * as they were written; NULL otherwise.
 */
Message *
store_restore(const NewMessage *nm, int64_t serial, int64_t created_us)
{
	Message    *m;

	if (serial != base_serial + (int64_t) nmsgs)
		return NULL;
	m = append(nm, serial, created_us);
	next_serial = serial + 1;
	inbox_note(m);
	return m;
}

/* A message was canceled, redacted, deleted; store_lock held. */
void
store_changed(const Message *m)
{
	events_publish_message(m->serial);
	inbox_file_change(m);
}

/* The run's sid prefix (made now if need be). */
const char *
store_sid_prefix(void)
{
	if (sid_prefix[0] == '\0')
		init_prefix();
	return sid_prefix;
}

int64_t
store_first_serial(void)
{
	return base_serial;
}

/*
 * Take the sid prefix and first serial the inbox file was written with,
 * before any message exists; false if the prefix is not 16 hex digits.
 */
bool
store_set_sid_prefix(const char *prefix, int64_t first_serial)
{
	if (strlen(prefix) != 16 || strspn(prefix, "0123456789abcdef") != 16 ||
		first_serial < 1 || nmsgs > 0)
		return false;
	memcpy(sid_prefix, prefix, 17);
	base_serial = next_serial = first_serial;
	return true;
}

static Message *
append(const NewMessage *nm, int64_t serial_no, int64_t created_us)
{
	size_t		size = sizeof(Message) + (sizeof(char *) + sizeof(bool)) * nm->num_media;
	Message    *m;
	char	   *p;
	int			i;
	static const char hex[] = "0123456789abcdef";
	uint64_t	serial;

	size += nm->to_len + 1 + nm->body_len + 1;
	if (nm->from)
		size += nm->from_len + 1;
	if (nm->service_sid)
		size += nm->service_len + 1;
	if (nm->callback_url)
		size += nm->callback_len + 1;
	for (i = 0; i < nm->num_media; i++)
		size += nm->media[i]->vlen + 1;

	m = xmalloc(size);
	memset(m, 0, sizeof(Message));
	m->media = (char **) (m + 1);
	m->media_deleted = (bool *) (m->media + nm->num_media);
	memset(m->media_deleted, 0, sizeof(bool) * nm->num_media);
	p = (char *) (m->media_deleted + nm->num_media);
	m->to = copy_str(&p, nm->to, nm->to_len);
	m->body = copy_str(&p, nm->body ? nm->body : "", nm->body_len);
	m->body_len = nm->body_len;
	m->from = nm->from ? copy_str(&p, nm->from, nm->from_len) : NULL;
	m->service_sid = nm->service_sid ? copy_str(&p, nm->service_sid, nm->service_len) : NULL;
	m->callback_url = nm->callback_url ? copy_str(&p, nm->callback_url, nm->callback_len) : NULL;
	m->via_service = (nm->service_sid != NULL);
	m->num_media = nm->num_media;
	for (i = 0; i < nm->num_media; i++)
		m->media[i] = copy_str(&p, nm->media[i]->val, nm->media[i]->vlen);
	m->num_segments = nm->num_segments;
	m->ucs2 = nm->ucs2;
	m->created_us = created_us;
	m->created_v = clock_virtual(created_us);
	m->plan = nm->plan;

	m->serial = serial_no;
	serial = (uint64_t) m->serial;
	m->sid[0] = 'S';
	m->sid[1] = 'M';
	memcpy(m->sid + 2, sid_prefix, 16);
	for (i = 0; i < 16; i++)
		m->sid[2 + 16 + i] = hex[(serial >> (60 - 4 * i)) & 15];
	m->sid[34] = '\0';

	if (nmsgs == capmsgs)
	{
		capmsgs = capmsgs ? capmsgs * 2 : 1024;
		msgs = realloc(msgs, sizeof(Message *) * capmsgs);
		if (msgs == NULL)
		{
			fprintf(stderr, "twilio-emulator: out of memory\n");
			abort();
		}
	}
	msgs[nmsgs++] = m;
	return m;
}

/* Find a message by sid (deleted ones too); caller holds store_lock. */
Message *
store_find(const char *sid, size_t len)
{
	uint64_t	serial = 0;
	size_t		i;
	int64_t		idx;

	if (len != 34 || sid[0] != 'S' || sid[1] != 'M' || sid_prefix[0] == '\0' ||
		memcmp(sid + 2, sid_prefix, 16) != 0)
		return NULL;
	for (i = 18; i < 34; i++)
	{
		char		c = sid[i];

		serial <<= 4;
		if (c >= '0' && c <= '9')
			serial |= c - '0';
		else if (c >= 'a' && c <= 'f')
			serial |= c - 'a' + 10;
		else
			return NULL;
	}
	idx = (int64_t) serial - base_serial;
	if (idx < 0 || (size_t) idx >= nmsgs)
		return NULL;
	return msgs[idx];
}

/* A message by creation counter, NULL once reset; caller holds store_lock. */
Message *
store_by_serial(int64_t serial)
{
	int64_t		idx = serial - base_serial;

	if (idx < 0 || (size_t) idx >= nmsgs)
		return NULL;
	return msgs[idx];
}

size_t
store_count(void)
{
	return nmsgs;
}

Message *
store_at(size_t i)
{
	return msgs[i];
}

size_t
store_index_of(const Message *m)
{
	return (size_t) (m->serial - base_serial);
}

void
store_reset(void)
{
	size_t		i;

	pthread_mutex_lock(&store_lock);
	for (i = 0; i < nmsgs; i++)
		free(msgs[i]);
	nmsgs = 0;
	inbox_forget();
	base_serial = next_serial;
	inbox_file_reset();
	/* the progression clock's history and the callbacks still to come */
	clock_reset_locked();
	callback_reset_locked();
	/* under store_lock, so no callback of a gone message slips in */
	sender_reset();
	pthread_mutex_unlock(&store_lock);
}

/* ---------------------------------------------------------------------- */

typedef struct LogEntry
{
	int64_t		seq;
	int64_t		t_us;
	char	   *uri;
	Form		form;
	char	   *hdrs;			/* auth_user, user_agent, content_type, accept */
	uint32_t	path_len;
	int16_t		status;
	int8_t		fault;
	uint8_t		present;		/* bit i: header i of hdrs present */
	char		method[8];
} LogEntry;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static LogEntry *entries;
static size_t nentries;
static size_t capentries;
static atomic_llong seq_counter = 1;

/* summary counters, kept as entries are appended */
static int64_t count_requests;
static int64_t count_kind[KIND_DELETE + 1];
static int64_t count_status[600];

int64_t
log_next_seq(void)
{
	return atomic_fetch_add(&seq_counter, 1);
}

void
log_append(LogInput *in)
{
	const char *h[4] = {NULL, in->user_agent, in->content_type, in->accept};
	size_t		hl[4];
	size_t		total = 0;
	LogEntry	e;
	int			i;
	char	   *p;

	memset(&e, 0, sizeof(e));
	e.seq = in->seq;
	e.t_us = in->t_us;
	e.uri = in->uri;
	e.path_len = (uint32_t) in->path_len;
	e.form = in->form;
	e.status = (int16_t) in->status;
	e.fault = (int8_t) in->fault;
	strncpy(e.method, in->method, sizeof(e.method) - 1);
	in->uri = NULL;
	in->form.f = NULL;
	in->form.n = 0;

	/* pack the four header strings into one allocation */
	hl[0] = in->auth_user ? in->auth_user_len : 0;
	if (in->auth_user)
		e.present |= 1;
	for (i = 1; i < 4; i++)
	{
		hl[i] = h[i] ? strlen(h[i]) : 0;
		if (h[i])
			e.present |= 1 << i;
	}
	for (i = 0; i < 4; i++)
		total += hl[i] + 1;
	p = e.hdrs = xmalloc(total);
	h[0] = in->auth_user;
	for (i = 0; i < 4; i++)
	{
		if (hl[i])
			memcpy(p, h[i], hl[i]);
		p[hl[i]] = '\0';
		p += hl[i] + 1;
	}

	pthread_mutex_lock(&log_lock);
	if (nentries == capentries)
	{
		capentries = capentries ? capentries * 2 : 4096;
		entries = realloc(entries, sizeof(LogEntry) * capentries);
		if (entries == NULL)
		{
			fprintf(stderr, "twilio-emulator: out of memory\n");
			abort();
		}
	}
	entries[nentries++] = e;
	count_requests++;
	if (in->kind >= 0 && in->kind <= KIND_DELETE)
		count_kind[in->kind]++;
	if (in->status >= 0 && in->status < 600)
		count_status[in->status]++;
	pthread_mutex_unlock(&log_lock);
}

static int
cmp_seq(const void *a, const void *b)
{
	const LogEntry *x = *(const LogEntry *const *) a;
	const LogEntry *y = *(const LogEntry *const *) b;

	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Every logged request with seq > since, in arrival order. */
void
log_requests_json(Buf *b, int64_t since)
{
	static const char *const hname[4] = {"auth_user", "user_agent", "content_type", "accept"};
	LogEntry  **sel;
	size_t		n = 0,
				i;

	pthread_mutex_lock(&log_lock);
	sel = xmalloc(sizeof(LogEntry *) * (nentries + 1));
	for (i = 0; i < nentries; i++)
		if (entries[i].seq > since)
			sel[n++] = &entries[i];
	qsort(sel, n, sizeof(LogEntry *), cmp_seq);

	/* one entry at a time: a long log never becomes one big tree */
	buf_grow(b, n * 400 + 2);
	buf_putc(b, '[');
	for (i = 0; i < n; i++)
	{
		LogEntry   *e = sel[i];
		const char *h = e->hdrs;
		const char *q;
		json_t	   *o = json_object();
		int			k;

		if (i > 0)
			buf_puts(b, ",\n");
		jv_set(o, "seq", json_integer(e->seq));
		jv_set(o, "t_us", json_integer(e->t_us));
		jv_set(o, "method", jv_text(e->method));
		jv_set(o, "path", jv_bytes(e->uri, e->path_len));
		q = e->uri + e->path_len;
		if (*q == '?')
			q++;
		jv_set(o, "query", jv_text(q));
		jv_set(o, "status", json_integer(e->status));
		jv_set(o, "fault", e->fault ? jv_ascii(fault_name(e->fault)) : json_null());
		for (k = 0; k < 4; k++)
		{
			jv_set(o, hname[k], jv_text((e->present & (1 << k)) ? h : NULL));
			h += strlen(h) + 1;
		}
		jv_set(o, "form", jv_form(&e->form));
		buf_json(b, o);
	}
	buf_putc(b, ']');
	pthread_mutex_unlock(&log_lock);
	free(sel);
}

json_t *
log_summary_json(void)
{
	json_t	   *o = json_object();
	json_t	   *by_status = json_object();
	json_t	   *callbacks;
	size_t		messages;
	int			i;

	pthread_mutex_lock(&store_lock);
	messages = nmsgs;
	pthread_mutex_unlock(&store_lock);
	/* taken before log_lock: it takes store_lock itself */
	callbacks = callbacks_summary_json();

	pthread_mutex_lock(&log_lock);
	jv_set(o, "requests", json_integer(count_requests));
	jv_set(o, "creates", json_integer(count_kind[KIND_CREATE]));
	jv_set(o, "lists", json_integer(count_kind[KIND_LIST]));
	jv_set(o, "fetches", json_integer(count_kind[KIND_FETCH]));
	jv_set(o, "updates", json_integer(count_kind[KIND_UPDATE]));
	jv_set(o, "deletes", json_integer(count_kind[KIND_DELETE]));
	jv_set(o, "messages", json_integer((json_int_t) messages));
	for (i = 0; i < 600; i++)
	{
		char		code[12];

		if (count_status[i] == 0)
			continue;
		snprintf(code, sizeof(code), "%d", i);
		json_object_set_new(by_status, code, json_integer(count_status[i]));
	}
	jv_set(o, "by_status", by_status);
	jv_set(o, "callbacks", callbacks);
	pthread_mutex_unlock(&log_lock);
	return o;
}

static void
log_free_entries(void)
{
	size_t		i;

	for (i = 0; i < nentries; i++)
	{
		free(entries[i].uri);
		form_free(&entries[i].form);
		free(entries[i].hdrs);
	}
	nentries = 0;
}

/*
 * Clear the log and its counters.  Sequence numbers keep counting, so a
 * client polling with ?since= never misses what comes after a reset.
 */
void
log_reset(void)
{
	pthread_mutex_lock(&log_lock);
	log_free_entries();
	count_requests = 0;
	memset(count_kind, 0, sizeof(count_kind));
	memset(count_status, 0, sizeof(count_status));
	pthread_mutex_unlock(&log_lock);
}

/* Free everything at exit, so valgrind reports only real leaks. */
void
store_shutdown(void)
{
	store_reset();
	free(msgs);
	msgs = NULL;
	capmsgs = 0;
	pthread_mutex_lock(&log_lock);
	log_free_entries();
	free(entries);
	entries = NULL;
	capentries = 0;
	pthread_mutex_unlock(&log_lock);
}
