/*-------------------------------------------------------------------------
 *
 * twilio_json.h
 *	  The parts of Twilio's JSON replies the worker reads.
 *
 *	  Kept apart from the rest of the provider so that the parser can also
 *	  be built as a frontend program, for fuzzing (test/fuzz/).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_TWILIO_JSON_H
#define SMS_TWILIO_JSON_H

typedef struct TwilioMessage
{
	char	   *sid;
	char	   *status;
	char	   *to;
	char	   *from;
	char	   *messaging_service_sid;
	char	   *body;
	char	   *date_created;
	char	   *date_sent;
	char	   *error_code;		/* a message's delivery error */
	char	   *error_message;
	char	   *num_segments;
	char	   *price;
	char	   *price_unit;
	char	   *code;			/* error replies */
	char	   *message;		/* error replies */
} TwilioMessage;

typedef struct TwilioReply
{
	TwilioMessage top;			/* the top-level object's fields */
	TwilioMessage *messages;	/* a list reply's "messages" */
	int			nmessages;
	char	   *next_page_uri;
} TwilioReply;

extern bool sms_twilio_parse_reply(const char *json, int len, TwilioReply *reply);

#endif							/* SMS_TWILIO_JSON_H */
