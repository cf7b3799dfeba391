/*
 * QMP framing: a streaming reader that takes bytes as they arrive and
 * yields one whole message at a time, with the few facts the proxy
 * needs (kind, id span, command or event name, the QMP members) and no
 * tree.  It reads bytes exactly as QEMU's JSON lexer, streamer and
 * parser do, so that the proxy and QEMU always see the same messages in
 * the same bytes.  Byte offsets are relative to the message's first
 * byte.
 */
#ifndef QMPMUX_QMP_H
#define QMPMUX_QMP_H

#include <stddef.h>

struct evbuffer;

#define QMP_NAME_MAX	256	/* command, event and member names kept */
#define QMP_MEMBERS_MAX	8	/* one of each QMP member (enum qmp_key) */
#define QMP_MSG_SLACK	3	/* bytes past a message's end: "\r\n" and NUL */

/* QEMU's own limits (qobject/json-streamer.c); see qmp_reader_new. */
#define QMP_DEPTH_MAX	1024
#define QMP_SIZE_MAX	(64 << 20)

/*
 * Read as QEMU reads commands: repeated keys at any depth are an error,
 * the member QEMU would name first in its errors is found (QEMU checks
 * members in its hash table's order, not the input's), and a parse
 * error is told when its message ends, where QEMU's streamer tells it.
 * Without it, for what QEMU itself writes, an error is told at once:
 * a peer that writes invalid JSON is given up, and need not be waited
 * for.
 */
#define QMP_READ_STRICT	0x1
/*
 * Never take the fast path (see qmp_fast): for a test that holds the
 * two readings of the same bytes side by side.
 */
#define QMP_READ_SLOW	0x2

enum qmp_kind {
	QMP_KIND_NONOBJECT,	/* valid JSON, but not an object */
	QMP_KIND_OBJECT,	/* an object of no kind below */
	QMP_KIND_GREETING,	/* has "QMP" */
	QMP_KIND_RETURN,	/* has "return" */
	QMP_KIND_ERROR,		/* has "error" */
	QMP_KIND_EVENT,		/* has "event" */
	QMP_KIND_COMMAND,	/* has "execute" or "exec-oob" */
};

enum qmp_key {
	QMP_KEY_OTHER,
	QMP_KEY_EXECUTE,
	QMP_KEY_EXEC_OOB,
	QMP_KEY_ARGUMENTS,
	QMP_KEY_ID,
	QMP_KEY_RETURN,
	QMP_KEY_ERROR,
	QMP_KEY_EVENT,
	QMP_KEY_QMP,
};

enum qmp_type {
	QMP_TYPE_NULL,
	QMP_TYPE_BOOL,
	QMP_TYPE_NUMBER,
	QMP_TYPE_STRING,
	QMP_TYPE_OBJECT,
	QMP_TYPE_ARRAY,
};

struct qmp_span {
	size_t		 off;
	size_t		 len;
};

/*
 * One top-level member: where its key starts and its value lies, and
 * where its neighbours are, so that it can be cut out with exactly one
 * comma.  bucket and seq place it in QEMU's hash table order
 * (QMP_READ_STRICT): buckets ascending, and in a bucket the member
 * added last first.
 */
struct qmp_member {
	enum qmp_key	 key;
	enum qmp_type	 type;
	size_t		 key_off;	/* opening quote of the key */
	size_t		 key_end;	/* just past the key's closing quote */
	size_t		 val_off;
	size_t		 val_end;
	size_t		 prev_end;	/* end of the value before; 0: first */
	size_t		 next_key;	/* key of the member after; 0: last */
	unsigned int	 bucket;
	unsigned int	 seq;
};

/*
 * A whole message.  buf holds exactly its bytes, without the whitespace
 * around it, then a NUL, in an allocation of len + QMP_MSG_SLACK bytes;
 * it is owned by the message (qmp_msg_steal hands it over).
 *
 * members holds the first member of each QMP key, in input order; other
 * is the first member of any other name (in QEMU's hash order with
 * QMP_READ_STRICT, else in input order), with its decoded name in
 * other_name.
 */
struct qmp_msg {
	char		*buf;
	size_t		 len;
	enum qmp_kind	 kind;

	struct qmp_member members[QMP_MEMBERS_MAX];
	int		 nmembers;
	int		 m_id;		/* index into members, or -1 */
	int		 m_execute;
	int		 m_exec_oob;
	int		 m_arguments;
	int		 has_other;
	struct qmp_member other;

	/* execute or exec-oob string, or the event name, decoded */
	char		 name[QMP_NAME_MAX];
	int		 name_truncated;
	char		 other_name[QMP_NAME_MAX];

	/*
	 * The id as QEMU writes it back, where that differs from its
	 * bytes ('x' is "x", 1.0e2 is 100): made for what is read with
	 * QMP_READ_STRICT, owned by the message; else NULL.
	 */
	char		*id_text;
	size_t		 id_text_len;
};

enum qmp_status {
	QMP_NEED_MORE,		/* no whole message yet */
	QMP_MESSAGE,		/* *msg is filled */
	QMP_ERR_JSON,		/* QEMU's parse error; see qmp_reader_error */
	QMP_ERR_DEPTH,		/* nesting deeper than the cap, likewise */
	QMP_ERR_SIZE,		/* message larger than the cap */
};

struct qmp_reader;

struct qmp_reader *qmp_reader_new(size_t max_size, unsigned int max_depth,
		    int);
void		 qmp_reader_free(struct qmp_reader *);
int		 qmp_reader_idle(const struct qmp_reader *);
enum qmp_status	 qmp_reader_next(struct qmp_reader *, struct evbuffer *,
		    struct qmp_msg *);
const char	*qmp_reader_error(struct qmp_reader *);
size_t		 qmp_reader_pending(struct qmp_reader *);
const char	*qmp_reader_partial(struct qmp_reader *, size_t *);

void		 qmp_msg_clear(struct qmp_msg *);
char		*qmp_msg_steal(struct qmp_msg *);
struct qmp_span	 qmp_msg_id(const struct qmp_msg *);
const char	*qmp_msg_id_text(const struct qmp_msg *, size_t *);
struct qmp_span	 qmp_msg_cut_member(const struct qmp_msg *, int);
const char	*qmp_kind_name(enum qmp_kind);
const char	*qmp_key_name(enum qmp_key);

/* A message already read, walked again (offsets into its bytes). */
size_t		 qmp_value_end(const char *, size_t, size_t);
enum qmp_type	 qmp_value_type(const char *, size_t);
int		 qmp_object_next(const char *, size_t, size_t *,
		    struct qmp_span *, struct qmp_span *);
int		 qmp_array_next(const char *, size_t, size_t *,
		    struct qmp_span *);
char		*qmp_string_decode(const char *, struct qmp_span, size_t *);
void		 qmp_write_string(struct evbuffer *, const char *, size_t);
void		 qmp_write_value(struct evbuffer *, const char *,
		    struct qmp_span);
int		 qmp_value_as_written(const char *, struct qmp_span);
unsigned int	 qmp_qdict_bucket(const char *, size_t);

#endif
