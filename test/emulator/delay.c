/*-------------------------------------------------------------------------
 *
 * delay.c
 *	  Wake suspended connections when their reply delay has passed.
 *
 *	  A delayed reply must not hold one of the few server threads: the
 *	  handler prepares the reply, suspends the connection and files it
 *	  here; one timer thread keeps a min-heap of wake times and resumes
 *	  each connection when its time comes, and MHD then sends the reply.
 *	  Thousands of concurrent delayed requests cost a heap entry each.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct Sleeper
{
	int64_t		wake_us;		/* CLOCK_MONOTONIC */
	struct MHD_Connection *conn;
} Sleeper;

static pthread_mutex_t delay_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t delay_cond;
static pthread_t delay_thread;
static Sleeper *heap;
static size_t nheap;
static size_t capheap;
static bool stopping;

static void
heap_push(Sleeper s)
{
	size_t		i;

	if (nheap == capheap)
	{
		capheap = capheap ? capheap * 2 : 256;
		heap = realloc(heap, sizeof(Sleeper) * capheap);
		if (heap == NULL)
			abort();
	}
	i = nheap++;
	while (i > 0 && heap[(i - 1) / 2].wake_us > s.wake_us)
	{
		heap[i] = heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	heap[i] = s;
}

static Sleeper
heap_pop(void)
{
	Sleeper		top = heap[0];
	Sleeper		last = heap[--nheap];
	size_t		i = 0;

	for (;;)
	{
		size_t		c = 2 * i + 1;

		if (c >= nheap)
			break;
		if (c + 1 < nheap && heap[c + 1].wake_us < heap[c].wake_us)
			c++;
		if (heap[c].wake_us >= last.wake_us)
			break;
		heap[i] = heap[c];
		i = c;
	}
	if (nheap > 0)
		heap[i] = last;
	return top;
}

static void *
delay_main(void *arg)
{
	(void) arg;
	pthread_mutex_lock(&delay_lock);
	for (;;)
	{
		int64_t		now;

		if (nheap == 0)
		{
			if (stopping)
				break;
			pthread_cond_wait(&delay_cond, &delay_lock);
			continue;
		}
		now = mono_us();
		if (stopping || heap[0].wake_us <= now)
		{
			Sleeper		s = heap_pop();

			/* resume outside our lock: MHD takes its own locks */
			pthread_mutex_unlock(&delay_lock);
			MHD_resume_connection(s.conn);
			pthread_mutex_lock(&delay_lock);
		}
		else
		{
			struct timespec ts;

			ts.tv_sec = heap[0].wake_us / 1000000;
			ts.tv_nsec = (heap[0].wake_us % 1000000) * 1000;
			pthread_cond_timedwait(&delay_cond, &delay_lock, &ts);
		}
	}
	pthread_mutex_unlock(&delay_lock);
	return NULL;
}

void
delay_start(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&delay_cond, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&delay_thread, NULL, delay_main, NULL) != 0)
	{
		fprintf(stderr, "twilio-emulator: could not start timer thread\n");
		exit(1);
	}
}

/*
 * Resume every waiting connection now and stop the thread.  MHD refuses to
 * stop while connections are suspended, so this runs before
 * MHD_stop_daemon; a request delayed after this point is resumed at once.
 */
void
delay_stop(void)
{
	pthread_mutex_lock(&delay_lock);
	stopping = true;
	pthread_cond_signal(&delay_cond);
	pthread_mutex_unlock(&delay_lock);
	pthread_join(delay_thread, NULL);
	free(heap);
	heap = NULL;
	nheap = capheap = 0;
}

/* Called from the access handler right after MHD_suspend_connection. */
void
delay_add(struct MHD_Connection *conn, int64_t wake_mono_us)
{
	Sleeper		s = {wake_mono_us, conn};
	bool		now;

	pthread_mutex_lock(&delay_lock);
	now = stopping;
	if (!now)
	{
		heap_push(s);
		if (heap[0].conn == conn)
			pthread_cond_signal(&delay_cond);
	}
	pthread_mutex_unlock(&delay_lock);
	if (now)
		MHD_resume_connection(conn);
}
