/*-------------------------------------------------------------------------
 *
 * faults.c
 *	  Fault injection rules for message creates.
 *
 *	  Rules are tried in the order they were added; the first one that
 *	  matches (To filter, a percent draw) and still has count left is
 *	  applied and its count spent.  When no rule exists the fast path is a
 *	  single atomic read, so an unfaulted benchmark never touches the lock.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Rule
{
	int			id;
	FaultAction action;
	char	   *to;				/* NULL: any To */
	size_t		to_len;
	int64_t		remaining;		/* -1: unlimited */
	int			percent;
	int			delay_ms;
	int			retry_after;
	int64_t		applied;
} Rule;

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static Rule *rules;
static int	nrules;
static int	caprules;
static int	next_id = 1;
static atomic_int have_rules;
static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static const char *const names[] = {
	[FAULT_NONE] = NULL,
	[FAULT_500_BEFORE] = "500_before",
	[FAULT_500_AFTER] = "500_after",
	[FAULT_503_AFTER] = "503_after",
	[FAULT_429] = "429",
	[FAULT_429_RETRY_AFTER] = "429_retry_after",
	[FAULT_DELAY] = "delay",
	[FAULT_DROP_AFTER] = "drop_after",
	[FAULT_DROP_BEFORE] = "drop_before",
	[FAULT_AUTH_FAIL] = "auth_fail",
};

FaultAction
fault_parse(const char *s, size_t n)
{
	int			i;

	for (i = 1; i < (int) lengthof(names); i++)
		if (field_eq(s, n, names[i]))
			return (FaultAction) i;
	return FAULT_NONE;
}

const char *
fault_name(int action)
{
	if (action <= 0 || action >= (int) lengthof(names))
		return NULL;
	return names[action];
}

int
fault_add(FaultAction action, const char *to, size_t to_len, int64_t count,
		  int percent, int delay_ms, int retry_after)
{
	Rule	   *r;
	int			id;

	pthread_mutex_lock(&fault_lock);
	if (nrules == caprules)
	{
		caprules = caprules ? caprules * 2 : 16;
		rules = realloc(rules, sizeof(Rule) * caprules);
		if (rules == NULL)
			abort();
	}
	r = &rules[nrules++];
	memset(r, 0, sizeof(Rule));
	r->id = id = next_id++;
	r->action = action;
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
	r->delay_ms = delay_ms;
	r->retry_after = retry_after;
	atomic_store(&have_rules, 1);
	pthread_mutex_unlock(&fault_lock);
	return id;
}

/* xorshift64*: good enough for a percent draw, and cheap under the lock */
static unsigned
draw_percent(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (unsigned) (((rng * 0x2545F4914F6CDD1DULL) >> 33) % 100);
}

bool
fault_match(const char *to, size_t to_len, FaultHit *hit)
{
	int			i;
	bool		found = false;

	if (!atomic_load_explicit(&have_rules, memory_order_relaxed))
		return false;

	pthread_mutex_lock(&fault_lock);
	for (i = 0; i < nrules && !found; i++)
	{
		Rule	   *r = &rules[i];

		if (r->remaining == 0)
			continue;
		if (r->to && (to_len != r->to_len || memcmp(to, r->to, to_len) != 0))
			continue;
		if (r->percent < 100 && (int) draw_percent() >= r->percent)
			continue;
		if (r->remaining > 0)
			r->remaining--;
		r->applied++;
		hit->action = r->action;
		hit->rule_id = r->id;
		hit->delay_ms = r->delay_ms;
		hit->retry_after = r->retry_after;
		found = true;
	}
	pthread_mutex_unlock(&fault_lock);
	return found;
}

int
fault_clear(void)
{
	int			i,
				n;

	pthread_mutex_lock(&fault_lock);
	n = nrules;
	for (i = 0; i < nrules; i++)
		free(rules[i].to);
	free(rules);
	rules = NULL;
	nrules = caprules = 0;
	atomic_store(&have_rules, 0);
	pthread_mutex_unlock(&fault_lock);
	return n;
}

json_t *
fault_list_json(void)
{
	json_t	   *list = json_array();
	int			i;

	pthread_mutex_lock(&fault_lock);
	for (i = 0; i < nrules; i++)
	{
		Rule	   *r = &rules[i];
		json_t	   *o = json_object();

		jv_set(o, "id", json_integer(r->id));
		jv_set(o, "action", jv_ascii(fault_name(r->action)));
		jv_set(o, "to", jv_text(r->to));
		jv_set(o, "remaining", r->remaining < 0 ? json_null() :
			   json_integer(r->remaining));
		jv_set(o, "percent", json_integer(r->percent));
		jv_set(o, "delay_ms", json_integer(r->delay_ms));
		jv_set(o, "retry_after", json_integer(r->retry_after));
		jv_set(o, "applied", json_integer(r->applied));
		json_array_append_new(list, o);
	}
	pthread_mutex_unlock(&fault_lock);
	return list;
}
