/*
 * QMP framing on yajl: a streaming reader that takes bytes as they arrive
 * and yields one whole message at a time, with the few facts the proxy
 * needs (kind, id span, command or event name, top-level members) and no
 * tree.  Byte offsets are relative to the message's first byte.
 */
#ifndef QMPMUX_QMP_H
#define QMPMUX_QMP_H

#include <stddef.h>

struct evbuffer;

#define QMP_NAME_MAX	256	/* command, event and member names kept */
#define QMP_MEMBERS_MAX	8	/* top-level members recorded in order */
#define QMP_MSG_SLACK	3	/* bytes past a message's end: "\r\n" and NUL */

#define QMP_READ_DUPKEYS 0x1	/* find repeated keys at any depth */

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

/* One top-level member: where its key starts and its value lies. */
struct qmp_member {
	enum qmp_key	 key;
	enum qmp_type	 type;
	size_t		 key_off;	/* opening quote of the key */
	size_t		 key_end;	/* just past the key's closing quote */
	size_t		 val_off;
	size_t		 val_end;
};

/*
 * A whole message.  buf holds exactly its bytes, without the whitespace
 * around it, then a NUL, in an allocation of len + QMP_MSG_SLACK bytes;
 * it is owned by the message (qmp_msg_steal hands it over).
 */
struct qmp_msg {
	char		*buf;
	size_t		 len;
	enum qmp_kind	 kind;

	struct qmp_member members[QMP_MEMBERS_MAX];
	int		 nmembers;
	int		 toomany;	/* more members than recorded */
	int		 dupkey;	/* a key repeats in one object */
	int		 m_id;		/* index into members, or -1 */
	int		 m_execute;
	int		 m_exec_oob;
	int		 m_arguments;

	/* execute or exec-oob string, or the event name */
	char		 name[QMP_NAME_MAX];
	int		 name_truncated;
	/* first member that is not a known QMP key, decoded */
	char		 other[QMP_NAME_MAX];
};

enum qmp_status {
	QMP_NEED_MORE,		/* no whole message yet */
	QMP_MESSAGE,		/* *msg is filled */
	QMP_ERR_JSON,		/* invalid JSON; see qmp_reader_error */
	QMP_ERR_DEPTH,		/* nesting deeper than the cap */
	QMP_ERR_SIZE,		/* message larger than the cap */
};

struct qmp_reader;

struct qmp_reader *qmp_reader_new(size_t max_size, unsigned int max_depth,
		    int);
void		 qmp_reader_free(struct qmp_reader *);
enum qmp_status	 qmp_reader_next(struct qmp_reader *, struct evbuffer *,
		    struct qmp_msg *);
const char	*qmp_reader_error(struct qmp_reader *);
void		 qmp_reader_skip_line(struct qmp_reader *);
size_t		 qmp_reader_pending(struct qmp_reader *);

void		 qmp_msg_clear(struct qmp_msg *);
char		*qmp_msg_steal(struct qmp_msg *);
struct qmp_span	 qmp_msg_id(const struct qmp_msg *);
struct qmp_span	 qmp_msg_cut_member(const struct qmp_msg *, int);
const char	*qmp_kind_name(enum qmp_kind);
const char	*qmp_key_name(enum qmp_key);

#endif
