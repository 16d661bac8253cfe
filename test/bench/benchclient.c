/*
 * benchclient: the client side of make bench.
 *
 *   benchclient drain CONNINFO N PREFIX
 *		queue N messages in one transaction (sms_send), then report the
 *		seconds from COMMIT returning until every one is 'sent', polling
 *		with index-only queries so the poll itself costs little
 *   benchclient latency CONNINFO N PREFIX
 *		N single sms_send() commits on an idle worker, 20 ms apart; prints
 *		"body <tab> microseconds since the epoch when COMMIT returned"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static PGresult *
run(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "benchclient: %s: %s", sql, PQerrorMessage(conn));
		exit(1);
	}
	return res;
}

/* Poll query (which returns one boolean) every interval_us until true. */
static int
wait_until(PGconn *conn, double t0, int interval_us, const char *query)
{
	for (;;)
	{
		PGresult   *res = run(conn, query);
		int			finished = strcmp(PQgetvalue(res, 0, 0), "t") == 0;

		PQclear(res);
		if (finished)
			return 0;
		usleep(interval_us);
		if (now_s() - t0 > 600)
		{
			fprintf(stderr, "benchclient: drain did not finish in 600 s\n");
			return 1;
		}
	}
}

static int
drain(PGconn *conn, long n, const char *prefix)
{
	char		sql[512];
	double		t0;
	double		t1;

	snprintf(sql, sizeof(sql),
			 "SELECT count(sms_send('+1555' || lpad((i %% 10000000)::text, 7, '0'), '+15017122661', '%s ' || i))"
			 " FROM generate_series(1, %ld) i", prefix, n);
	PQclear(run(conn, "BEGIN"));
	PQclear(run(conn, sql));
	PQclear(run(conn, "COMMIT"));
	t0 = now_s();

	/*
	 * First wait for the queue to empty (an index probe, every 20 ms: a
	 * tighter poll takes a tenth of this machine's CPU away from what is
	 * measured).  Then note the few rows still under way, with one scan, and
	 * wait for them by primary key every 2 ms: a scan of the whole outbox
	 * every 2 ms would compete with the worker for the CPU.  The figure is
	 * at most 20 ms long (if the tail finished during the first poll's
	 * sleep): under 1 % of a drain here.
	 */
	if (wait_until(conn, t0, 20000,
				   "SELECT NOT EXISTS (SELECT 1 FROM sms_outbox WHERE state = 'pending')") != 0)
		return 1;
	{
		PGresult   *res = run(conn,
							  "SELECT 'SELECT NOT EXISTS (SELECT 1 FROM sms_outbox"
							  " WHERE id = ANY (''{' || coalesce(string_agg(id::text, ','), '') || '}'')"
							  " AND state IN (''pending'', ''sending'', ''unknown''))'"
							  " FROM sms_outbox WHERE state IN ('pending', 'sending', 'unknown')");
		char	   *tail_query = strdup(PQgetvalue(res, 0, 0));

		PQclear(res);
		if (wait_until(conn, t0, 2000, tail_query) != 0)
			return 1;
		free(tail_query);
	}
	t1 = now_s();
	printf("%.3f\n", t1 - t0);
	return 0;
}

static int
latency(PGconn *conn, long n, const char *prefix)
{
	char		sql[512];
	long		i;

	for (i = 1; i <= n; i++)
	{
		double		t;

		snprintf(sql, sizeof(sql),
				 "SELECT sms_send('+15558675310', '+15017122661', '%s %ld')", prefix, i);
		PQclear(run(conn, sql));
		t = now_s();
		printf("%s %ld\t%.0f\n", prefix, i, t * 1e6);
		usleep(20000);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;

	if (argc != 5)
	{
		fprintf(stderr, "usage: benchclient drain|latency CONNINFO N PREFIX\n");
		return 2;
	}
	conn = PQconnectdb(argv[2]);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "benchclient: %s", PQerrorMessage(conn));
		return 1;
	}
	if (strcmp(argv[1], "drain") == 0)
		return drain(conn, atol(argv[3]), argv[4]);
	if (strcmp(argv[1], "latency") == 0)
		return latency(conn, atol(argv[3]), argv[4]);
	fprintf(stderr, "benchclient: unknown mode %s\n", argv[1]);
	return 2;
}
