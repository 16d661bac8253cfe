/*-------------------------------------------------------------------------
 *
 * identity.h
 *	  Which copy of the extension, and of its outbox, this is (identity.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_IDENTITY_H
#define SMS_IDENTITY_H

#include "sms.h"

typedef struct SmsOutbox
{
	Oid			extoid;			/* the extension */
	Oid			relid;			/* its sms_outbox */
	Oid			nspid;			/* the extension's schema */
	char		nspname[NAMEDATALEN];
	Oid			owner;			/* the outbox's owner, as of now */
	bool		delivery_columns;	/* version 1.1's status_changed_at, ... */

	/*
	 * Changes whenever any of the above but the owner does: statements
	 * prepared for one generation name a table that may be gone, or be
	 * another, in the next.
	 */
	uint32		generation;
} SmsOutbox;

extern const SmsOutbox *sms_outbox(bool missing_ok);
extern char *sms_outbox_table_name(const SmsOutbox *outbox);

#endif							/* SMS_IDENTITY_H */
