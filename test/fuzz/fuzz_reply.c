/*
 * fuzz_reply.c
 *	  libFuzzer target for the worker's reader of provider replies
 *	  (src/twilio_json.c), built as a frontend program against PostgreSQL's
 *	  own JSON parser, with AddressSanitizer and UBSan.
 *
 *	  palloc and friends are provided here over malloc, with every block
 *	  freed after each input: AddressSanitizer then sees each allocation on
 *	  its own (with red zones), and a long run does not grow.
 */
#include "postgres_fe.h"

#include <stdint.h>

#include "twilio_json.h"

/* ---- memory: every block of one input, freed together afterwards ---- */

typedef struct Block
{
	size_t		index;			/* in blocks[] */
	size_t		size;
	max_align_t data[];
} Block;

static Block **blocks;
static size_t nblocks;
static size_t maxblocks;

static void *
track(Block *b, size_t size)
{
	if (b == NULL)
		abort();
	if (nblocks == maxblocks)
	{
		maxblocks = maxblocks ? maxblocks * 2 : 1024;
		blocks = realloc(blocks, maxblocks * sizeof(Block *));
		if (blocks == NULL)
			abort();
	}
	b->index = nblocks;
	b->size = size;
	blocks[nblocks++] = b;
	return b->data;
}

void *
palloc(Size size)
{
	return track(malloc(sizeof(Block) + size), size);
}

void *
palloc0(Size size)
{
	void	   *p = palloc(size);

	memset(p, 0, size);
	return p;
}

void *
palloc_extended(Size size, int flags)
{
	return (flags & MCXT_ALLOC_ZERO) ? palloc0(size) : palloc(size);
}

void *
repalloc(void *pointer, Size size)
{
	Block	   *old = (Block *) ((char *) pointer - offsetof(Block, data));
	size_t		index = old->index;
	Block	   *b = realloc(old, sizeof(Block) + size);

	if (b == NULL)
		abort();
	b->size = size;
	blocks[index] = b;
	return b->data;
}

void
pfree(void *pointer)
{
	/* freed with the rest of the input's blocks */
	(void) pointer;
}

char *
pstrdup(const char *in)
{
	size_t		len = strlen(in);
	char	   *out = palloc(len + 1);

	memcpy(out, in, len + 1);
	return out;
}

void *
pg_malloc(size_t size)
{
	return palloc(size);
}

void *
pg_malloc0(size_t size)
{
	return palloc0(size);
}

void *
pg_realloc(void *pointer, size_t size)
{
	return pointer ? repalloc(pointer, size) : palloc(size);
}

char *
pg_strdup(const char *in)
{
	return pstrdup(in);
}

void
pg_free(void *pointer)
{
	(void) pointer;
}

static void
free_all(void)
{
	for (size_t i = 0; i < nblocks; i++)
		free(blocks[i]);
	nblocks = 0;
}

/* ---- the target ---- */

static size_t
touch(const char *s)
{
	return s ? strlen(s) : 0;
}

static size_t
touch_message(const TwilioMessage *m)
{
	return touch(m->sid) + touch(m->status) + touch(m->to) + touch(m->from) +
		touch(m->messaging_service_sid) + touch(m->body) +
		touch(m->date_created) + touch(m->num_segments) + touch(m->price) +
		touch(m->price_unit) + touch(m->code) + touch(m->message);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TwilioReply reply;
	volatile size_t n = 0;

	if (size > 1024 * 1024)
		return 0;
	if (sms_twilio_parse_reply((const char *) data, (int) size, &reply))
	{
		n += touch_message(&reply.top) + touch(reply.next_page_uri);
		for (int i = 0; i < reply.nmessages; i++)
			n += touch_message(&reply.messages[i]);
	}
	free_all();
	return 0;
}
