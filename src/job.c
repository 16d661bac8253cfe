/*-------------------------------------------------------------------------
 *
 * job.c
 *	  Creating and freeing the worker's jobs.
 *
 *-------------------------------------------------------------------------
 */
#include "job.h"

#include "utils/memutils.h"

/*
 * Each job gets a small context of its own; aset.c keeps freed contexts of
 * this size on a free list, so creating one per message is cheap.
 */
SmsJob *
sms_job_create(SmsJobKind kind)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "sms job",
											  ALLOCSET_SMALL_SIZES);
	SmsJob	   *job = MemoryContextAllocZero(cxt, sizeof(SmsJob));

	job->cxt = cxt;
	job->kind = kind;
	job->num_segments = -1;
	job->retry_after_s = -1;
	job->outcome = OUTCOME_NONE;
	return job;
}

void
sms_job_free(SmsJob *job)
{
	MemoryContextDelete(job->cxt);
}
