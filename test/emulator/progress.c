/*-------------------------------------------------------------------------
 *
 * progress.c
 *	  How a message's status moves on: its plan, the progression clock,
 *	  and the outcome chosen for its destination.
 *
 *	  A message gets its whole future when it is created (a Plan): the
 *	  statuses it will pass through, queued -> sending -> sent -> delivered
 *	  as on Twilio (accepted first with a Messaging Service, or scheduled
 *	  until its SendAt when it was scheduled), or an ending
 *	  in undelivered or failed with an error code, or no ending at all when
 *	  the carrier sends no receipt.  Nothing runs per message to move it:
 *	  its status is worked out whenever it is read, from the plan and the
 *	  clock, so a benchmark creating tens of thousands of messages a second
 *	  pays nothing for progression.  Only messages with a StatusCallback
 *	  are also filed with the callback scheduler (callback.c), which reads
 *	  the same plan and clock, so a callback never tells a status that a
 *	  fetch at that moment would not show.
 *
 *	  The clock is wall time, except that it can be frozen: while frozen no
 *	  message moves on (a test can hold messages queued, or sent, as long as
 *	  it likes) and on thawing everything resumes where it stopped.  Each
 *	  thaw is remembered as a pause, so the real time at which a step began
 *	  (date_sent, date_updated) can still be told afterwards.  The clock's
 *	  state is guarded by store_lock, which every reader already holds.
 *
 *	  The outcome of a message comes from its To number: magic numbers
 *	  first (+1500555300X, see the README), then the outcome rules set
 *	  through /_emulator/outcomes, else delivered.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {
	[ST_ACCEPTED] = "accepted",
	[ST_SCHEDULED] = "scheduled",
	[ST_QUEUED] = "queued",
	[ST_SENDING] = "sending",
	[ST_SENT] = "sent",
	[ST_DELIVERED] = "delivered",
	[ST_UNDELIVERED] = "undelivered",
	[ST_FAILED] = "failed",
	[ST_CANCELED] = "canceled",
};

const char *
status_name(int status)
{
	if (status < 0 || status >= (int) lengthof(status_names))
		return "unknown";
	return status_names[status];
}

/* Twilio's names for the delivery errors the emulator can produce. */
const char *
delivery_error_message(int code)
{
	switch (code)
	{
		case 30001:
			return "Queue overflow";
		case 30002:
			return "Account suspended";
		case 30003:
			return "Unreachable destination handset";
		case 30004:
			return "Message blocked";
		case 30005:
			return "Unknown destination handset";
		case 30006:
			return "Landline or unreachable carrier";
		case 30007:
			return "Message filtered";
		case 30008:
			return "Unknown error";
		case 30009:
			return "Missing segment";
		case 30010:
			return "Message price exceeds max price";
		default:
			return NULL;
	}
}

/* ---------------------------------------------------------------------- */

typedef struct Pause
{
	int64_t		v_start;		/* clock value while it was frozen */
	int64_t		offset_after;	/* wall - clock once it thawed */
} Pause;

static bool frozen;
static int64_t frozen_v;		/* the clock's value while frozen */
static int64_t frozen_real;		/* when it froze */
static int64_t offset;			/* wall - clock while running */
static int64_t base_offset;		/* offset before pauses[0] */
static Pause *pauses;
static int	npauses;
static int	cappauses;

int64_t
clock_virtual(int64_t real_us)
{
	return frozen ? frozen_v : real_us - offset;
}

bool
clock_frozen(void)
{
	return frozen;
}

/*
 * The wall time at which the clock read v.  Only asked about a v the
 * clock has already reached.  A step due exactly when the clock froze
 * happened before the pause; one due later, after it.
 */
static int64_t
clock_real(int64_t v)
{
	int			lo = 0,
				hi = npauses;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (pauses[mid].v_start < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return v + (lo == 0 ? base_offset : pauses[lo - 1].offset_after);
}

void
clock_set_frozen(bool on)
{
	int64_t		now = now_us();

	pthread_mutex_lock(&store_lock);
	if (on && !frozen)
	{
		frozen_v = now - offset;
		frozen_real = now;
		frozen = true;
	}
	else if (!on && frozen)
	{
		offset += now - frozen_real;
		if (npauses == cappauses)
		{
			cappauses = cappauses ? cappauses * 2 : 16;
			pauses = realloc(pauses, sizeof(Pause) * cappauses);
			if (pauses == NULL)
				abort();
		}
		pauses[npauses].v_start = frozen_v;
		pauses[npauses].offset_after = offset;
		npauses++;
		frozen = false;
	}
	/* the scheduler sleeps while frozen, or until a due time now moved */
	callback_wake();
	pthread_mutex_unlock(&store_lock);
}

/*
 * On reset every message is gone, and every message made from now on was
 * created after each pause so far: the pauses collapse into one offset.
 */
void
clock_reset_locked(void)
{
	base_offset = offset;
	npauses = cappauses = 0;
	free(pauses);
	pauses = NULL;
}

/* ---------------------------------------------------------------------- */

/* Wall time at which the message's step began (never before creation). */
int64_t
step_real_us(const Message *m, int step)
{
	int64_t		t;

	if (step <= 0)
		return m->created_us;
	t = clock_real(m->created_v + (int64_t) m->plan.at_ms[step] * 1000);
	return t > m->created_us ? t : m->created_us;
}

/*
 * A message's status as of now (wall time); store_lock held.  fresh gives
 * the state at creation, which is what a create reply shows whatever the
 * delays are.
 */
void
message_view(const Message *m, int64_t now, bool fresh, MsgView *v)
{
	const Plan *p = &m->plan;
	int			k = 0;

	if (!fresh)
	{
		int64_t		age = clock_virtual(now) - m->created_v;

		while (k + 1 < p->nsteps && (int64_t) p->at_ms[k + 1] * 1000 <= age)
			k++;
	}
	v->step = k;
	v->status = status_names[p->status[k]];
	v->updated_us = step_real_us(m, k);
	v->sent_us = (p->sent_step >= 0 && p->sent_step <= k) ?
		step_real_us(m, p->sent_step) : 0;
	v->error_code = (k == p->nsteps - 1) ? p->error_code : 0;
	if (m->canceled_us)
	{
		v->step = -1;
		v->status = status_names[ST_CANCELED];
		v->updated_us = m->canceled_us;
		v->sent_us = 0;
		v->error_code = 0;
	}
	if (m->redacted_us > v->updated_us)
		v->updated_us = m->redacted_us;
}

/* ---------------------------------------------------------------------- */

typedef struct OutcomeRule
{
	int			id;
	int			status;			/* ST_DELIVERED, _UNDELIVERED, _FAILED, _SENT */
	int			error_code;
	char	   *to;				/* NULL: any To */
	size_t		to_len;
	int64_t		remaining;		/* -1: unlimited */
	int			percent;
	int64_t		applied;
} OutcomeRule;

static pthread_mutex_t outcome_lock = PTHREAD_MUTEX_INITIALIZER;
static OutcomeRule *orules;
static int	norules;
static int	caporules;
static int	next_rule_id = 1;
static atomic_int have_orules;
static uint64_t rng = 0x2545F4914F6CDD1DULL;
static pthread_mutex_t rng_lock = PTHREAD_MUTEX_INITIALIZER;

/* xorshift64*: a percent draw for outcome rules and callback drops */
unsigned
percent_draw(void)
{
	uint64_t	x;

	pthread_mutex_lock(&rng_lock);
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	x = rng;
	pthread_mutex_unlock(&rng_lock);
	return (unsigned) (((x * 0x2545F4914F6CDD1DULL) >> 33) % 100);
}

/* The final statuses a rule may ask for; "sent" means no receipt ever. */
bool
outcome_parse(const char *s, size_t n, int *status)
{
	static const int allowed[] = {ST_DELIVERED, ST_UNDELIVERED, ST_FAILED, ST_SENT};
	size_t		i;

	for (i = 0; i < lengthof(allowed); i++)
		if (field_eq(s, n, status_names[allowed[i]]))
		{
			*status = allowed[i];
			return true;
		}
	return false;
}

int
outcome_add(int status, int error_code, const char *to, size_t to_len,
			int64_t count, int percent)
{
	OutcomeRule *r;
	int			id;

	pthread_mutex_lock(&outcome_lock);
	if (norules == caporules)
	{
		caporules = caporules ? caporules * 2 : 16;
		orules = realloc(orules, sizeof(OutcomeRule) * caporules);
		if (orules == NULL)
			abort();
	}
	r = &orules[norules++];
	memset(r, 0, sizeof(OutcomeRule));
	r->id = id = next_rule_id++;
	r->status = status;
	r->error_code = error_code;
	if (to)
	{
		r->to = malloc(to_len + 1);
		if (r->to == NULL)
			abort();
		memcpy(r->to, to, to_len);
		r->to[to_len] = '\0';
		r->to_len = to_len;
	}
	r->remaining = count;
	r->percent = percent;
	atomic_store(&have_orules, 1);
	pthread_mutex_unlock(&outcome_lock);
	return id;
}

int
outcome_clear(void)
{
	int			i,
				n;

	pthread_mutex_lock(&outcome_lock);
	n = norules;
	for (i = 0; i < norules; i++)
		free(orules[i].to);
	free(orules);
	orules = NULL;
	norules = caporules = 0;
	atomic_store(&have_orules, 0);
	pthread_mutex_unlock(&outcome_lock);
	return n;
}

json_t *
outcome_list_json(void)
{
	json_t	   *list = json_array();
	int			i;

	pthread_mutex_lock(&outcome_lock);
	for (i = 0; i < norules; i++)
	{
		OutcomeRule *r = &orules[i];
		json_t	   *o = json_object();

		jv_set(o, "id", json_integer(r->id));
		jv_set(o, "status", jv_ascii(status_names[r->status]));
		jv_set(o, "error_code", jv_code(r->error_code));
		jv_set(o, "to", jv_text(r->to));
		jv_set(o, "remaining", r->remaining < 0 ? json_null() :
			   json_integer(r->remaining));
		jv_set(o, "percent", json_integer(r->percent));
		jv_set(o, "applied", json_integer(r->applied));
		json_array_append_new(list, o);
	}
	pthread_mutex_unlock(&outcome_lock);
	return list;
}

static bool
outcome_match(const char *to, size_t to_len, int *status, int *error_code)
{
	int			i;
	bool		found = false;

	if (!atomic_load_explicit(&have_orules, memory_order_relaxed))
		return false;
	pthread_mutex_lock(&outcome_lock);
	for (i = 0; i < norules && !found; i++)
	{
		OutcomeRule *r = &orules[i];

		if (r->remaining == 0)
			continue;
		if (r->to && (to_len != r->to_len || memcmp(to, r->to, to_len) != 0))
			continue;
		if (r->percent < 100 && (int) percent_draw() >= r->percent)
			continue;
		if (r->remaining > 0)
			r->remaining--;
		r->applied++;
		*status = r->status;
		*error_code = r->error_code;
		found = true;
	}
	pthread_mutex_unlock(&outcome_lock);
	return found;
}

/*
 * Magic To numbers for delivery outcomes (not Twilio's: its test
 * credentials never deliver anything).  +1500555300X ends with error
 * 3000X, so a test reads as what it expects; +15005553000 never gets a
 * receipt and stays sent.
 */
static bool
magic_outcome(const char *to, size_t to_len, int *status, int *error_code)
{
	if (to_len != 12 || memcmp(to, "+1500555300", 11) != 0)
		return false;
	switch (to[11])
	{
		case '0':
			*status = ST_SENT;
			*error_code = 0;
			return true;
		case '1':
			*status = ST_FAILED;
			*error_code = 30001;
			return true;
		case '3':
		case '5':
		case '6':
		case '7':
			*status = ST_UNDELIVERED;
			*error_code = 30000 + (to[11] - '0');
			return true;
		default:
			return false;
	}
}

static void
add_step(Plan *p, int status, int64_t at_ms)
{
	p->status[p->nsteps] = (uint8_t) status;
	p->at_ms[p->nsteps] = (uint32_t) at_ms;
	p->nsteps++;
}

/*
 * The plan of a new message to this number; scheduled_ms >= 0 for one
 * scheduled that far ahead.  The delays are read once, here: a config
 * change applies to messages created after it.
 */
void
progress_plan(const char *to, size_t to_len, bool via_service,
			  int64_t scheduled_ms, Plan *p)
{
	int			outcome = ST_DELIVERED;
	int			error_code = 0;
	int64_t		t = 0;

	if (!magic_outcome(to, to_len, &outcome, &error_code))
		outcome_match(to, to_len, &outcome, &error_code);

	memset(p, 0, sizeof(Plan));
	p->sent_step = -1;
	if (scheduled_ms >= 0)
	{
		add_step(p, ST_SCHEDULED, 0);
		t += scheduled_ms;
	}
	else if (via_service)
	{
		add_step(p, ST_ACCEPTED, 0);
		t += atomic_load(&cfg.accepted_ms);
	}
	add_step(p, ST_QUEUED, t);
	t += atomic_load(&cfg.queued_ms);
	if (outcome == ST_FAILED)
	{
		/* Twilio's 30001: it never left the queue */
		add_step(p, ST_FAILED, t);
		p->error_code = error_code ? error_code : 30001;
		return;
	}
	add_step(p, ST_SENDING, t);
	t += atomic_load(&cfg.sending_ms);
	p->sent_step = p->nsteps;
	add_step(p, ST_SENT, t);
	if (outcome == ST_SENT)
		return;
	t += atomic_load(&cfg.sent_ms);
	add_step(p, outcome, t);
	if (outcome == ST_UNDELIVERED)
		p->error_code = error_code ? error_code : 30003;
}
