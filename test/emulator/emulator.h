/*-------------------------------------------------------------------------
 *
 * emulator.h
 *	  Shared declarations of the Twilio Messages API emulator.
 *
 *	  The emulator is a test fixture: it answers like Twilio's Messages API
 *	  (version 2010-04-01), can be told to misbehave, and remembers every
 *	  request so that tests can prove nothing was lost or sent twice.  It is
 *	  also the far end of the benchmarks, so the per-request path is kept
 *	  short: one parse of the form, one lock for the store, one for the log.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EMULATOR_H
#define EMULATOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define lengthof(a) (sizeof(a) / sizeof((a)[0]))

/* ---------- buf.c: a growable buffer ---------- */

typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

extern void buf_free(Buf *b);
extern void buf_grow(Buf *b, size_t extra);
extern void buf_put(Buf *b, const char *s, size_t n);
extern void buf_puts(Buf *b, const char *s);
extern void buf_printf(Buf *b, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
extern void buf_put_int(Buf *b, int64_t v);
extern char *buf_steal(Buf *b, size_t *len);

static inline void
buf_putc(Buf *b, char c)
{
	if (b->len + 1 > b->cap)
		buf_grow(b, 1);
	b->data[b->len++] = c;
}

/* ---------- dates.c: clocks and Twilio's date formats ---------- */

#define DATE_LEN 31				/* "Thu, 26 Nov 2026 22:20:53 +0000" */

extern size_t format_date(char out[DATE_LEN + 1], int64_t us);
extern bool parse_day(const char *s, size_t n, int64_t *day);
extern bool parse_iso_utc(const char *s, size_t n, int64_t *us);
extern int64_t day_of(int64_t us);
extern int64_t now_us(void);
extern int64_t mono_us(void);

/* ---------- form.c: form parameters, read by libmicrohttpd ---------- */

typedef struct FormField
{
	const char *key;
	size_t		klen;
	const char *val;
	size_t		vlen;
} FormField;

/* fields in the order sent; f and their bytes are one allocation */
typedef struct Form
{
	FormField  *f;
	int			n;
} Form;

/* a Form being built: offsets into bytes until form_finish */
typedef struct FormSpan
{
	size_t		key;
	size_t		klen;
	size_t		val;
	size_t		vlen;
} FormSpan;

typedef struct FormBuilder
{
	Buf			bytes;
	FormSpan   *span;
	int			n;
	int			cap;
	FormSpan	small[16];		/* spares a malloc for ordinary requests */
} FormBuilder;

struct MHD_Connection;
extern void form_begin(FormBuilder *fb);
extern void form_add(FormBuilder *fb, const char *key, size_t klen,
					 const char *val, size_t vlen);
extern void form_finish(FormBuilder *fb, Form *form);
extern void form_read_body(struct MHD_Connection *conn, const Buf *body,
						   Form *form);
extern void form_read_query(struct MHD_Connection *conn, Form *form);
extern void form_free(Form *form);
extern const FormField *form_get(const Form *form, const char *key);
extern int	form_count(const Form *form, const char *key);
extern bool field_eq(const char *s, size_t n, const char *cstr);
extern bool parse_int(const char *s, size_t n, int64_t *out);
extern void url_encode(Buf *b, const char *s, size_t n);
extern void form_encode(Buf *b, const Form *form);

/* ---------- json.c: JSON with jansson, the message resource by hand ---------- */

extern json_t *jv_bytes(const char *s, size_t n);
extern json_t *jv_text(const char *s);
extern json_t *jv_ascii(const char *s);
extern json_t *jv_date(int64_t us);
extern json_t *jv_code(int64_t code);
extern json_t *jv_form(const Form *form);
extern json_t *jv_error(int code, const char *message, int status);
extern void jv_set(json_t *object, const char *key, json_t *value);
extern void buf_json(Buf *b, json_t *value);
extern void buf_json_lines(Buf *b, json_t *array);
extern void buf_json_str(Buf *b, const char *s, size_t n);
extern void buf_json_text(Buf *b, const char *s);
extern void buf_json_date(Buf *b, int64_t us);

/* ---------- config, shared by every thread ---------- */

typedef struct Config
{
	char		account_sid[64];
	bool		quiet;
	const char *bind_addr;		/* --bind */

	/* credentials can be changed at run time through /_emulator/config */
	pthread_mutex_t lock;
	bool		check_credentials;	/* false: any account and token will do */
	char	   *auth_token;
	char	   *api_key_sid;
	char	   *api_key_secret;

	char	   *callback_token; /* signs callbacks; NULL: auth_token */
	char	   *callback_ca_file;	/* CA bundle for https callbacks */

	atomic_int	delay_ms;		/* reply delay of every API request */

	/* how long a new message stays in each status (progress.c) */
	atomic_int	accepted_ms;	/* accepted -> queued (Messaging Service) */
	atomic_int	queued_ms;		/* queued -> sending (or failed) */
	atomic_int	sending_ms;		/* sending -> sent */
	atomic_int	sent_ms;		/* sent -> delivered or undelivered */

	atomic_int	callback_order; /* CallbackOrder */
	atomic_int	callback_drop_percent;
	atomic_int	callback_timeout_ms;
} Config;

extern Config cfg;

extern bool config_check_auth(const char *user, size_t ulen,
							  const char *pass, size_t plen);
extern void config_set_str(char **field, const char *val, size_t len);

/* ---------- a reply, as the handlers build it ---------- */

typedef struct Reply
{
	int			status;			/* HTTP status; 0 = close without reply */
	Buf			body;			/* JSON, may be empty */
	int			retry_after;	/* > 0: send Retry-After */
	bool		www_authenticate;
	int			fault;			/* FaultAction applied, FAULT_NONE if none */
	int			delay_ms;		/* -1: the global delay applies */
	int			kind;			/* ReqKind, for the summary */
} Reply;

extern void reply_error(Reply *r, int status, int code, const char *message);

/* ---------- progress.c: statuses, plans, the progression clock ---------- */

typedef enum MsgStatus
{
	ST_ACCEPTED = 0,
	ST_SCHEDULED,
	ST_QUEUED,
	ST_SENDING,
	ST_SENT,
	ST_DELIVERED,
	ST_UNDELIVERED,
	ST_FAILED,
	ST_CANCELED
} MsgStatus;

#define MAX_STEPS 5				/* accepted or scheduled, queued, sending,
								 * sent, final */

/*
 * What will happen to a message, decided when it is created: its statuses
 * in order and when each begins, in ms after creation on the progression
 * clock.  Fixing it at creation keeps a message's story consistent
 * however the config changes later, and lets both a fetch and the
 * callback scheduler work it out from the clock alone.
 */
typedef struct Plan
{
	uint32_t	at_ms[MAX_STEPS];
	uint8_t		status[MAX_STEPS];	/* MsgStatus */
	uint8_t		nsteps;
	int8_t		sent_step;		/* the step that sets date_sent; -1: none */
	int			error_code;		/* of the last step; 0: none */
} Plan;

typedef enum CallbackOrder
{
	ORDER_INORDER = 0,			/* each callback when its status begins */
	ORDER_SHUFFLE,				/* all at the last status, shuffled */
	ORDER_REVERSE				/* all at the last status, newest first */
} CallbackOrder;

/* ---------- store.c: messages ---------- */

typedef struct Message
{
	int64_t		serial;			/* creation counter, also in the sid */
	char		sid[35];
	bool		via_service;	/* MessagingServiceSid given: "accepted" */
	bool		deleted;
	int			num_segments;
	bool		ucs2;			/* the body needs UCS-2, not GSM-7 */
	int			num_media;
	int64_t		created_us;
	int64_t		canceled_us;	/* 0 unless canceled */
	int64_t		redacted_us;	/* 0 unless the body was redacted */
	char	   *to;
	char	   *from;			/* NULL with a messaging service */
	char	   *service_sid;	/* NULL without one */
	char	   *body;
	size_t		body_len;
	char	  **media;
	bool	   *media_deleted;	/* per media: removed by a Media DELETE */
	char	   *callback_url;	/* StatusCallback; NULL without one */
	int64_t		created_v;		/* progression clock at creation */
	Plan		plan;
	uint8_t		cb_order;		/* CallbackOrder when it was created */
	uint8_t		cb_next;		/* first step whose callback is not out */
} Message;

typedef struct NewMessage
{
	const char *to;
	size_t		to_len;
	const char *from;
	size_t		from_len;
	const char *service_sid;
	size_t		service_len;
	const char *body;
	size_t		body_len;
	int			num_media;
	const FormField **media;
	int			num_segments;
	bool		ucs2;
	const char *callback_url;
	size_t		callback_len;
	Plan		plan;
} NewMessage;

extern pthread_mutex_t store_lock;
extern Message *store_add(const NewMessage *nm, int64_t created_us);
extern Message *store_restore(const NewMessage *nm, int64_t serial,
							  int64_t created_us);
extern void store_changed(const Message *m);
extern const char *store_sid_prefix(void);
extern int64_t store_first_serial(void);
extern bool store_set_sid_prefix(const char *prefix, int64_t first_serial);
extern Message *store_find(const char *sid, size_t len);
extern Message *store_by_serial(int64_t serial);
extern size_t store_count(void);
extern Message *store_at(size_t i);
extern size_t store_index_of(const Message *m);
extern void store_reset(void);
extern void store_shutdown(void);

/* ---------- store.c: request log ---------- */

typedef enum ReqKind
{
	KIND_OTHER = 0,
	KIND_CREATE,
	KIND_LIST,
	KIND_FETCH,
	KIND_UPDATE,
	KIND_DELETE
} ReqKind;

typedef struct LogInput
{
	int64_t		seq;
	int64_t		t_us;
	const char *method;
	char	   *uri;			/* raw path?query; ownership moves to log */
	size_t		path_len;
	Form		form;			/* the body's parameters; moves to log */
	const char *auth_user;
	size_t		auth_user_len;
	const char *user_agent;
	const char *content_type;
	const char *accept;
	int			status;
	int			fault;
	int			kind;
} LogInput;

extern void log_append(LogInput *in);
extern void log_requests_json(Buf *b, int64_t since);
extern json_t *log_summary_json(void);
extern void log_reset(void);
extern int64_t log_next_seq(void);

/* ---------- faults.c ---------- */

typedef enum FaultAction
{
	FAULT_NONE = 0,
	FAULT_500_BEFORE,
	FAULT_500_AFTER,
	FAULT_503_AFTER,
	FAULT_429,
	FAULT_429_RETRY_AFTER,
	FAULT_DELAY,
	FAULT_DROP_AFTER,
	FAULT_DROP_BEFORE,
	FAULT_AUTH_FAIL
} FaultAction;

typedef struct FaultHit
{
	FaultAction action;
	int			rule_id;
	int			delay_ms;
	int			retry_after;
} FaultHit;

extern FaultAction fault_parse(const char *s, size_t n);
extern const char *fault_name(int action);
extern int	fault_add(FaultAction action, const char *to, size_t to_len,
					  int64_t count, int percent, int delay_ms,
					  int retry_after);
extern bool fault_match(const char *to, size_t to_len, FaultHit *hit);
extern int	fault_clear(void);
extern json_t *fault_list_json(void);

/* ---------- segments.c ---------- */

extern int	body_segments(const char *s, size_t len, bool *ucs2);
extern size_t utf8_chars(const char *s, size_t len);

/* ---------- signature.c: X-Twilio-Signature ---------- */

#define SIGNATURE_LEN 28		/* Base64 of a 20-byte SHA-1 digest */

extern void twilio_signature(const char *token, size_t token_len,
							 const char *url, const FormField *params, int n,
							 char out[SIGNATURE_LEN + 1]);

/* ---------- twilio.c: the Messages API ---------- */

typedef struct ApiRequest
{
	const char *method;
	const char *path;			/* decoded path, without query */
	const Form *query;			/* the query string's parameters */
	const Form *form;			/* the body's */
	const char *auth_user;		/* NULL if no usable Basic credentials */
	size_t		auth_user_len;
	const char *auth_pass;
	size_t		auth_pass_len;
} ApiRequest;

extern void twilio_handle(const ApiRequest *req, Reply *reply);

/* ---------- progress.c ---------- */

typedef struct MsgView
{
	const char *status;
	int			step;			/* index into the plan; -1 when canceled */
	int64_t		sent_us;		/* 0: not sent (date_sent null) */
	int64_t		updated_us;
	int			error_code;		/* 0: none */
} MsgView;

extern const char *status_name(int status);
extern const char *delivery_error_message(int code);
extern void progress_plan(const char *to, size_t to_len, bool via_service,
						  int64_t scheduled_ms, Plan *plan);
extern void message_view(const Message *m, int64_t now, bool fresh,
						 MsgView *v);
extern int64_t step_real_us(const Message *m, int step);

/* the progression clock; callers hold store_lock */
extern int64_t clock_virtual(int64_t real_us);
extern bool clock_frozen(void);
extern void clock_reset_locked(void);
extern void clock_set_frozen(bool frozen);	/* takes store_lock */

extern bool outcome_parse(const char *s, size_t n, int *status);
extern int	outcome_add(int status, int error_code, const char *to,
						size_t to_len, int64_t count, int percent);
extern int	outcome_clear(void);
extern json_t *outcome_list_json(void);
extern unsigned percent_draw(void);

/* ---------- callback.c: when to send status callbacks, and what ---------- */

extern bool callback_url_valid(const char *url, size_t len);
extern void callback_schedule(Message *m);	/* store_lock held */
extern void callback_canceled(Message *m);	/* store_lock held */
extern void callback_wake(void);	/* store_lock held */
extern void callback_reset_locked(void);
extern int64_t callback_scheduled(void);
extern bool callback_order_parse(const char *s, size_t n, int *order);
extern const char *callback_order_name(int order);
extern void scheduler_start(void);
extern void scheduler_stop(void);

/* ---------- sender.c: status callbacks over HTTP, and their log ---------- */

typedef enum CallbackResult
{
	CB_PENDING = 0,
	CB_ANSWERED,				/* the receiver answered, whatever the status */
	CB_FAILED,					/* no answer: refused, reset, timed out */
	CB_DROPPED,					/* not sent: callback_drop_percent */
	CB_REFUSED					/* not sent: not a loopback URL */
} CallbackResult;

typedef struct CallbackJob
{
	struct CallbackJob *next;
	int64_t		seq;
	int64_t		t_us;			/* when its status began */
	int64_t		queued_us;		/* when it was handed to the sender */
	int64_t		done_us;
	int64_t		serial;			/* of the message: picks the lane */
	uint64_t	generation;		/* reset generation it belongs to */
	char		sid[35];
	uint8_t		status;			/* MsgStatus it reports */
	uint8_t		result;			/* CallbackResult */
	int			http_status;
	char	   *url;
	Form		params;			/* what it tells, for the log */
	char	   *body;			/* params form-encoded; freed once sent */
	size_t		body_len;
	char		signature[SIGNATURE_LEN + 1];
	char	   *error;			/* why it failed or was refused */
} CallbackJob;

extern int64_t callback_next_seq(void);
extern void sender_enqueue(CallbackJob *job);
extern void sender_reset(void);
extern void sender_start(void);
extern void sender_stop(void);
extern void callbacks_json(Buf *b, int64_t since);
extern json_t *callbacks_summary_json(void);

/* ---------- control.c: /_emulator/ ---------- */

extern void control_handle(const char *method, const char *path,
						   const Form *query, const Form *form,
						   Reply *reply);

/* ---------- delay.c: wake suspended connections later ---------- */

struct MHD_Connection;
extern void delay_start(void);
extern void delay_stop(void);
extern void delay_add(struct MHD_Connection *conn, int64_t wake_mono_us);

/* ---------- events.c: Server-Sent Events for the inbox page ---------- */

struct MHD_Connection;
struct MHD_Response;
extern bool events_listening(void);
extern void events_publish_message(int64_t serial);
extern void events_publish_cleared(void);
extern struct MHD_Response *events_response(struct MHD_Connection *conn);
extern void events_start(void);
extern void events_stop(void);

/* ---------- inbox.c: a message as the inbox page shows it ---------- */

extern json_t *inbox_message_json(const Message *m, int64_t now);
extern void inbox_note(const Message *m);
extern void inbox_forget(void);
extern void inbox_messages_json(Buf *b, const char *to, const char *q,
								int64_t limit);
extern void inbox_conversations_json(Buf *b, const char *q, int64_t limit);

/* ---------- inbox_file.c: the inbox kept in a file ---------- */

extern void inbox_file_open(const char *path);
extern void inbox_file_close(void);
extern void inbox_file_add(const Message *m);
extern void inbox_file_change(const Message *m);
extern void inbox_file_reset(void);

/* ---------- page.c: the inbox page ---------- */

extern struct MHD_Response *page_response(const char *url);

#endif							/* EMULATOR_H */
