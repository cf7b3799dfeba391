/*
 * QMP framing.
 *
 * Each message gets a fresh yajl handle.  The callback that closes the
 * top-level value cancels the parse, so yajl stops exactly at the end of
 * the message and whatever follows stays in the caller's evbuffer: a
 * caller that must stop at a bound (a client's pipeline, the event
 * backlog) can stop between two messages without the reader having
 * swallowed a third.  Offsets come from yajl_get_bytes_consumed, which
 * inside a callback is the position just past the current token of the
 * chunk being parsed.
 *
 * The reader keeps its buffers from one message to the next and hands
 * each message an exact-size copy; yajl's few allocations per message
 * come from a small cache of blocks (qmp_pool_*).  An event flood is
 * millions of small messages: per-message malloc and realloc of the
 * working buffers fragmented the heap until RSS was several times the
 * event backlog, and with ASan filled its quarantine.
 *
 * Invariants while a message is being read:
 * - buf[0, len) holds the bytes of the message fed so far; the first is
 *   never whitespace;
 * - base is the offset in buf at which the chunk under yajl begins;
 * - depth counts the containers open; top-level members live at depth 1;
 * - cur holds what is known of the message so far: it belongs to the
 *   reader, not the caller, since a message can span many calls.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <yajl/yajl_parse.h>

#include "log.h"
#include "qmp.h"

#define QMP_BUF_START	512
#define QMP_BUF_KEEP	(16 << 10)	/* larger buffers are not kept */
#define QMP_POOL_MAX	8		/* blocks cached for yajl */
#define QMP_KEY_MARK	SIZE_MAX	/* a qmp_keyref that opens an object */

/* A block handed to yajl, with its capacity in front. */
union qmp_block {
	size_t		 cap;
	max_align_t	 align;
};

/*
 * A key of an object still open, in kbuf; an entry of length
 * QMP_KEY_MARK opens each object, so the keys above the last mark are
 * those of the innermost object.
 */
struct qmp_keyref {
	size_t		 off;
	size_t		 len;
};

struct qmp_reader {
	size_t		 max_size;
	unsigned int	 max_depth;
	int		 flags;

	yajl_handle	 yajl;
	char		*buf;
	size_t		 len;
	size_t		 cap;
	size_t		 base;
	unsigned int	 depth;
	int		 done;		/* top-level value complete */
	int		 toodeep;
	int		 skipping;	/* discarding up to a newline */

	/* QMP_READ_DUPKEYS: the keys of the objects open */
	char		*kbuf;
	size_t		 klen;
	size_t		 kcap;
	struct qmp_keyref *keys;
	size_t		 nkeys;
	size_t		 keyscap;

	yajl_alloc_funcs afs;
	union qmp_block	*pool[QMP_POOL_MAX];
	int		 npool;

	struct qmp_msg	 cur;		/* the message being read */
	struct qmp_msg	*msg;		/* &cur while yajl runs */
	char		 error[256];
};

static const char *qmp_kind_names[] = {
	[QMP_KIND_NONOBJECT] = "non-object",
	[QMP_KIND_OBJECT] = "object",
	[QMP_KIND_GREETING] = "greeting",
	[QMP_KIND_RETURN] = "return",
	[QMP_KIND_ERROR] = "error",
	[QMP_KIND_EVENT] = "event",
	[QMP_KIND_COMMAND] = "command",
};

static int	qmp_null_cb(void *);
static int	qmp_boolean_cb(void *, int);
static int	qmp_number_cb(void *, const char *, size_t);
static int	qmp_string_cb(void *, const unsigned char *, size_t);
static int	qmp_start_map_cb(void *);
static int	qmp_map_key_cb(void *, const unsigned char *, size_t);
static int	qmp_end_map_cb(void *);
static int	qmp_start_array_cb(void *);
static int	qmp_end_array_cb(void *);
static void	qmp_keys_open(struct qmp_reader *);
static void	qmp_keys_close(struct qmp_reader *);

/*
 * Numbers go through yajl_number so that they are never converted: an id
 * of 1e400 or 123456789012345678901234567890 is as valid as 1.
 */
static const yajl_callbacks qmp_callbacks = {
	.yajl_null = qmp_null_cb,
	.yajl_boolean = qmp_boolean_cb,
	.yajl_number = qmp_number_cb,
	.yajl_string = qmp_string_cb,
	.yajl_start_map = qmp_start_map_cb,
	.yajl_map_key = qmp_map_key_cb,
	.yajl_end_map = qmp_end_map_cb,
	.yajl_start_array = qmp_start_array_cb,
	.yajl_end_array = qmp_end_array_cb,
};

/* Return the printable name of a kind. */
const char *
qmp_kind_name(enum qmp_kind kind)
{
	return (qmp_kind_names[kind]);
}

static void	*qmp_pool_malloc(void *, size_t);
static void	*qmp_pool_realloc(void *, void *, size_t);
static void	 qmp_pool_free(void *, void *);

/*
 * Make a reader for messages of at most max_size bytes and max_depth.
 * QMP_READ_DUPKEYS in flags checks every object for a repeated key, as
 * QEMU does; messages from QEMU itself need not pay for it.
 */
struct qmp_reader *
qmp_reader_new(size_t max_size, unsigned int max_depth, int flags)
{
	struct qmp_reader	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return (NULL);
	r->max_size = max_size;
	r->max_depth = max_depth;
	r->flags = flags;
	r->afs.malloc = qmp_pool_malloc;
	r->afs.realloc = qmp_pool_realloc;
	r->afs.free = qmp_pool_free;
	r->afs.ctx = r;
	return (r);
}

/*
 * Forget the message being read, keeping the caps and, unless one grew
 * large for a large message, the buffers.
 */
static void
qmp_reader_reset(struct qmp_reader *r)
{
	if (r->yajl != NULL)
		yajl_free(r->yajl);
	r->yajl = NULL;
	if (r->cap > QMP_BUF_KEEP) {
		free(r->buf);
		r->buf = NULL;
		r->cap = 0;
	}
	if (r->kcap > QMP_BUF_KEEP) {
		free(r->kbuf);
		r->kbuf = NULL;
		r->kcap = 0;
	}
	if (r->keyscap * sizeof(*r->keys) > QMP_BUF_KEEP) {
		free(r->keys);
		r->keys = NULL;
		r->keyscap = 0;
	}
	r->len = r->base = r->klen = r->nkeys = 0;
	r->depth = 0;
	r->done = r->toodeep = 0;
	r->msg = NULL;
}

/* Free a reader; NULL is allowed. */
void
qmp_reader_free(struct qmp_reader *r)
{
	if (r == NULL)
		return;
	qmp_reader_reset(r);
	while (r->npool > 0)
		free(r->pool[--r->npool]);
	free(r->buf);
	free(r->kbuf);
	free(r->keys);
	free(r);
}

/*
 * Make room for need elements of size in *p, growing *cap by doubling
 * from start; -1 when memory is short.
 */
static int
qmp_grow(void *p, size_t *cap, size_t need, size_t size, size_t start)
{
	void	**pp = p, *np;
	size_t	  ncap;

	if (need <= *cap)
		return (0);
	ncap = *cap == 0 ? start : *cap;
	while (ncap < need)
		ncap *= 2;
	if ((np = reallocarray(*pp, ncap, size)) == NULL)
		return (-1);
	*pp = np;
	*cap = ncap;
	return (0);
}

/* yajl's malloc: a cached block large enough, else a new one. */
static void *
qmp_pool_malloc(void *ctx, size_t size)
{
	struct qmp_reader	*r = ctx;
	union qmp_block		*b;
	int			 i;

	for (i = 0; i < r->npool; i++) {
		b = r->pool[i];
		if (b->cap >= size) {
			r->pool[i] = r->pool[--r->npool];
			return (b + 1);
		}
	}
	if ((b = malloc(sizeof(*b) + size)) == NULL)
		return (NULL);
	b->cap = size;
	return (b + 1);
}

static void *
qmp_pool_realloc(void *ctx, void *p, size_t size)
{
	union qmp_block	*b;

	if (p == NULL)
		return (qmp_pool_malloc(ctx, size));
	b = (union qmp_block *)p - 1;
	if (b->cap >= size)
		return (p);
	if ((b = realloc(b, sizeof(*b) + size)) == NULL)
		return (NULL);
	b->cap = size;
	return (b + 1);
}

/* yajl's free: keep the block for the next message if it is small. */
static void
qmp_pool_free(void *ctx, void *p)
{
	struct qmp_reader	*r = ctx;
	union qmp_block		*b;

	if (p == NULL)
		return;
	b = (union qmp_block *)p - 1;
	if (r->npool < QMP_POOL_MAX && b->cap <= QMP_BUF_KEEP)
		r->pool[r->npool++] = b;
	else
		free(b);
}

/* Return the text of the last QMP_ERR_JSON. */
const char *
qmp_reader_error(struct qmp_reader *r)
{
	return (r->error);
}

/* Bytes of an unfinished message held by the reader. */
size_t
qmp_reader_pending(struct qmp_reader *r)
{
	return (r->len);
}

/*
 * Discard input up to and including the next newline, as QEMU's clients
 * expect after a parse error: the newline is where they resynchronise.
 */
void
qmp_reader_skip_line(struct qmp_reader *r)
{
	r->skipping = 1;
}

/* Offset in the message just past the token yajl is reporting. */
static size_t
qmp_pos(struct qmp_reader *r)
{
	return (r->base + yajl_get_bytes_consumed(r->yajl));
}

/* The member whose value is being parsed, or NULL past the recorded ones. */
static struct qmp_member *
qmp_current(struct qmp_reader *r)
{
	struct qmp_msg	*msg = r->msg;

	if (msg->toomany || msg->nmembers == 0)
		return (NULL);
	return (&msg->members[msg->nmembers - 1]);
}

/* A scalar: at the top level it ends the message, in depth 1 a member. */
static int
qmp_scalar(struct qmp_reader *r, enum qmp_type type, const unsigned char *s,
    size_t len)
{
	struct qmp_msg		*msg = r->msg;
	struct qmp_member	*m;

	if (r->depth == 0) {
		msg->kind = QMP_KIND_NONOBJECT;
		r->done = 1;
		return (0);
	}
	if (r->depth != 1 || (m = qmp_current(r)) == NULL)
		return (1);
	m->type = type;
	m->val_end = qmp_pos(r);
	if (type == QMP_TYPE_STRING && (m->key == QMP_KEY_EXECUTE ||
	    m->key == QMP_KEY_EXEC_OOB || m->key == QMP_KEY_EVENT)) {
		if (len >= sizeof(msg->name)) {
			len = sizeof(msg->name) - 1;
			msg->name_truncated = 1;
		}
		memcpy(msg->name, s, len);
		msg->name[len] = '\0';
	}
	return (1);
}

static int
qmp_null_cb(void *arg)
{
	return (qmp_scalar(arg, QMP_TYPE_NULL, NULL, 0));
}

static int
qmp_boolean_cb(void *arg, int value)
{
	return (qmp_scalar(arg, QMP_TYPE_BOOL, NULL, 0));
}

static int
qmp_number_cb(void *arg, const char *s, size_t len)
{
	return (qmp_scalar(arg, QMP_TYPE_NUMBER, NULL, 0));
}

static int
qmp_string_cb(void *arg, const unsigned char *s, size_t len)
{
	return (qmp_scalar(arg, QMP_TYPE_STRING, s, len));
}

/* Open a container; a member's value if at depth 1. */
static int
qmp_open(struct qmp_reader *r, enum qmp_type type)
{
	struct qmp_member	*m;

	if (r->depth == 0)
		r->msg->kind = type == QMP_TYPE_OBJECT ?
		    QMP_KIND_OBJECT : QMP_KIND_NONOBJECT;
	else if (r->depth == 1 && (m = qmp_current(r)) != NULL)
		m->type = type;
	if (++r->depth > r->max_depth) {
		r->toodeep = 1;
		return (0);
	}
	return (1);
}

/* Close a container; the message ends when the depth returns to zero. */
static int
qmp_close(struct qmp_reader *r)
{
	struct qmp_member	*m;

	r->depth--;
	if (r->depth == 1 && (m = qmp_current(r)) != NULL)
		m->val_end = qmp_pos(r);
	if (r->depth == 0) {
		r->done = 1;
		return (0);
	}
	return (1);
}

static int
qmp_start_map_cb(void *arg)
{
	qmp_keys_open(arg);
	return (qmp_open(arg, QMP_TYPE_OBJECT));
}

static int
qmp_end_map_cb(void *arg)
{
	qmp_keys_close(arg);
	return (qmp_close(arg));
}

static int
qmp_start_array_cb(void *arg)
{
	return (qmp_open(arg, QMP_TYPE_ARRAY));
}

static int
qmp_end_array_cb(void *arg)
{
	return (qmp_close(arg));
}

/* The QMP members by name, for both directions. */
static const struct {
	const char	*name;
	enum qmp_key	 key;
} qmp_keys[] = {
	{ "execute", QMP_KEY_EXECUTE },
	{ "exec-oob", QMP_KEY_EXEC_OOB },
	{ "arguments", QMP_KEY_ARGUMENTS },
	{ "id", QMP_KEY_ID },
	{ "return", QMP_KEY_RETURN },
	{ "error", QMP_KEY_ERROR },
	{ "event", QMP_KEY_EVENT },
	{ "QMP", QMP_KEY_QMP },
};
#define QMP_NKEYS	(sizeof(qmp_keys) / sizeof(qmp_keys[0]))

/* Map a decoded key to the QMP member it names. */
static enum qmp_key
qmp_key_lookup(const unsigned char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < QMP_NKEYS; i++) {
		if (strlen(qmp_keys[i].name) == len &&
		    memcmp(qmp_keys[i].name, s, len) == 0)
			return (qmp_keys[i].key);
	}
	return (QMP_KEY_OTHER);
}

/* The name of a QMP member; NULL for QMP_KEY_OTHER. */
const char *
qmp_key_name(enum qmp_key key)
{
	size_t	 i;

	for (i = 0; i < QMP_NKEYS; i++) {
		if (qmp_keys[i].key == key)
			return (qmp_keys[i].name);
	}
	return (NULL);
}

/* With QMP_READ_DUPKEYS, note that an object opens. */
static void
qmp_keys_open(struct qmp_reader *r)
{
	if (!(r->flags & QMP_READ_DUPKEYS))
		return;
	if (qmp_grow(&r->keys, &r->keyscap, r->nkeys + 1, sizeof(*r->keys),
	    16) == -1)
		fatalx("out of memory reading a QMP message");
	r->keys[r->nkeys].off = r->klen;
	r->keys[r->nkeys].len = QMP_KEY_MARK;
	r->nkeys++;
}

/* With QMP_READ_DUPKEYS, keep a key of the innermost object. */
static void
qmp_keys_add(struct qmp_reader *r, const unsigned char *s, size_t len)
{
	if (!(r->flags & QMP_READ_DUPKEYS))
		return;
	/* one spare byte, so that kbuf is not NULL even for a key "" */
	if (qmp_grow(&r->kbuf, &r->kcap, r->klen + len + 1, 1, 256) == -1 ||
	    qmp_grow(&r->keys, &r->keyscap, r->nkeys + 1, sizeof(*r->keys),
	    16) == -1)
		fatalx("out of memory reading a QMP message");
	memcpy(r->kbuf + r->klen, s, len);
	r->keys[r->nkeys].off = r->klen;
	r->keys[r->nkeys].len = len;
	r->nkeys++;
	r->klen += len;
}

static int
qmp_keyref_cmp(const void *a, const void *b, void *arg)
{
	const struct qmp_keyref	*ka = a, *kb = b;
	const char		*kbuf = arg;

	if (ka->len != kb->len)
		return (ka->len < kb->len ? -1 : 1);
	return (memcmp(kbuf + ka->off, kbuf + kb->off, ka->len));
}

/*
 * With QMP_READ_DUPKEYS, the innermost object closes: sorting its keys
 * finds a repeated one in n log n, where comparing each key with those
 * before it would be quadratic in a message of a million keys.
 */
static void
qmp_keys_close(struct qmp_reader *r)
{
	size_t	 mark, n, i;

	if (!(r->flags & QMP_READ_DUPKEYS))
		return;
	mark = r->nkeys;
	while (r->keys[--mark].len != QMP_KEY_MARK)
		;
	n = r->nkeys - mark - 1;
	if (n > 1) {
		qsort_r(r->keys + mark + 1, n, sizeof(*r->keys),
		    qmp_keyref_cmp, r->kbuf);
		for (i = mark + 2; i < r->nkeys; i++) {
			if (qmp_keyref_cmp(&r->keys[i - 1], &r->keys[i],
			    r->kbuf) == 0)
				r->msg->dupkey = 1;
		}
	}
	r->klen = r->keys[mark].off;
	r->nkeys = mark;
}

/* A key: at depth 1 it starts a new top-level member. */
static int
qmp_map_key_cb(void *arg, const unsigned char *s, size_t len)
{
	struct qmp_reader	*r = arg;
	struct qmp_msg		*msg = r->msg;
	struct qmp_member	*m;

	qmp_keys_add(r, s, len);
	if (r->depth != 1)
		return (1);
	if (msg->nmembers == QMP_MEMBERS_MAX) {
		msg->toomany = 1;
		return (1);
	}
	m = &msg->members[msg->nmembers++];
	memset(m, 0, sizeof(*m));
	m->key = qmp_key_lookup(s, len);
	m->key_end = qmp_pos(r);
	if (m->key == QMP_KEY_OTHER && msg->other[0] == '\0') {
		if (len >= sizeof(msg->other))
			len = sizeof(msg->other) - 1;
		memcpy(msg->other, s, len);
		msg->other[len] = '\0';
	}
	return (1);
}

/* Skip JSON whitespace and the given separator from off onwards. */
static size_t
qmp_skip(const char *buf, size_t len, size_t off, char sep)
{
	while (off < len && (buf[off] == ' ' || buf[off] == '\t' ||
	    buf[off] == '\n' || buf[off] == '\r' || buf[off] == sep))
		off++;
	return (off);
}

/*
 * Fill in what the callbacks could not see: where each member's key and
 * value begin (yajl reports token ends only), the message's kind, and
 * the indexes of the members the proxy uses.
 */
static void
qmp_finish(struct qmp_msg *msg)
{
	struct qmp_member	*m;
	size_t			 off = 1;
	int			 i;

	msg->m_id = msg->m_execute = msg->m_exec_oob = msg->m_arguments = -1;
	if (msg->kind == QMP_KIND_NONOBJECT)
		return;
	for (i = 0; i < msg->nmembers; i++) {
		m = &msg->members[i];
		m->key_off = qmp_skip(msg->buf, msg->len, off, ',');
		m->val_off = qmp_skip(msg->buf, msg->len, m->key_end, ':');
		off = m->val_end;
		switch (m->key) {
		case QMP_KEY_ID:
			msg->m_id = i;
			break;
		case QMP_KEY_EXECUTE:
			msg->m_execute = i;
			msg->kind = QMP_KIND_COMMAND;
			break;
		case QMP_KEY_EXEC_OOB:
			msg->m_exec_oob = i;
			msg->kind = QMP_KIND_COMMAND;
			break;
		case QMP_KEY_ARGUMENTS:
			msg->m_arguments = i;
			break;
		case QMP_KEY_QMP:
			if (msg->kind == QMP_KIND_OBJECT)
				msg->kind = QMP_KIND_GREETING;
			break;
		case QMP_KEY_RETURN:
			if (msg->kind == QMP_KIND_OBJECT)
				msg->kind = QMP_KIND_RETURN;
			break;
		case QMP_KEY_ERROR:
			if (msg->kind == QMP_KIND_OBJECT)
				msg->kind = QMP_KIND_ERROR;
			break;
		case QMP_KEY_EVENT:
			if (msg->kind == QMP_KIND_OBJECT)
				msg->kind = QMP_KIND_EVENT;
			break;
		case QMP_KEY_OTHER:
			break;
		}
	}
}

/* Append n bytes to the message buffer; the caller has checked the cap. */
static void
qmp_append(struct qmp_reader *r, const void *p, size_t n)
{
	if (qmp_grow(&r->buf, &r->cap, r->len + n, 1, QMP_BUF_START) == -1)
		fatalx("out of memory reading a QMP message");
	memcpy(r->buf + r->len, p, n);
	r->len += n;
}

/*
 * Give the whole message to msg, in a buffer of its own size plus
 * QMP_MSG_SLACK: exact, so that a million of them queued cost what they
 * hold, with room for a caller to end the line without a realloc.
 */
static void
qmp_take(struct qmp_reader *r, struct qmp_msg *msg)
{
	*msg = r->cur;
	if ((msg->buf = malloc(r->len + QMP_MSG_SLACK)) == NULL)
		fatalx("out of memory reading a QMP message");
	memcpy(msg->buf, r->buf, r->len);
	msg->buf[r->len] = '\0';
	msg->len = r->len;
	qmp_finish(msg);
}

/*
 * Point vec at the first non-empty chunk of in.  An evbuffer may hold
 * empty chains (an add of zero bytes makes one), which evbuffer_peek
 * reports like any other.
 */
static int
qmp_chunk(struct evbuffer *in, struct evbuffer_iovec *vec)
{
	struct evbuffer_iovec	 v[4];
	int			 i, n;

	if (evbuffer_get_length(in) == 0)
		return (0);
	n = evbuffer_peek(in, -1, NULL, v, 4);
	if (n > 4)
		n = 4;
	for (i = 0; i < n; i++) {
		if (v[i].iov_len > 0) {
			*vec = v[i];
			return (1);
		}
	}
	/* more than four empty chains in a row: make the front whole */
	vec->iov_len = evbuffer_get_length(in);
	vec->iov_base = evbuffer_pullup(in, -1);
	return (vec->iov_base != NULL);
}

/* Drop leading whitespace, or everything up to a newline when skipping. */
static int
qmp_reader_discard(struct qmp_reader *r, struct evbuffer *in)
{
	struct evbuffer_iovec	 vec;
	const char		*p;
	size_t			 i;

	while (qmp_chunk(in, &vec)) {
		p = vec.iov_base;
		for (i = 0; i < vec.iov_len; i++) {
			if (r->skipping) {
				if (p[i] == '\n')
					r->skipping = 0;
				continue;
			}
			if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' &&
			    p[i] != '\r')
				break;
		}
		evbuffer_drain(in, i);
		if (i < vec.iov_len)
			return (1);
	}
	return (0);
}

/*
 * Take the next whole message from the front of in.  On QMP_MESSAGE the
 * message's bytes are drained from in and msg owns a copy; on
 * QMP_NEED_MORE every byte of in has been taken into the reader; on an
 * error the reader is reset and the bytes yajl read are drained.
 */
enum qmp_status
qmp_reader_next(struct qmp_reader *r, struct evbuffer *in,
    struct qmp_msg *msg)
{
	struct evbuffer_iovec	 vec;
	yajl_status		 st;
	size_t			 n, used;
	unsigned char		*text;
	enum qmp_status		 err;

	if (r->yajl == NULL) {
		if (!qmp_reader_discard(r, in))
			return (QMP_NEED_MORE);
		memset(&r->cur, 0, sizeof(r->cur));
		if ((r->yajl = yajl_alloc(&qmp_callbacks, &r->afs, r)) == NULL)
			fatalx("yajl_alloc failed");
	}
	r->msg = &r->cur;
	while (qmp_chunk(in, &vec)) {
		if (r->len == r->max_size) {
			err = QMP_ERR_SIZE;
			goto fail;
		}
		n = vec.iov_len;
		if (n > r->max_size - r->len)
			n = r->max_size - r->len;
		r->base = r->len;
		st = yajl_parse(r->yajl, vec.iov_base, n);
		used = yajl_get_bytes_consumed(r->yajl);
		if (st == yajl_status_error) {
			text = yajl_get_error(r->yajl, 0, NULL, 0);
			snprintf(r->error, sizeof(r->error), "%s",
			    (const char *)text);
			yajl_free_error(r->yajl, text);
			/* yajl ends its text with a newline; a desc must not */
			r->error[strcspn(r->error, "\r\n")] = '\0';
			evbuffer_drain(in, used);
			err = QMP_ERR_JSON;
			goto fail;
		}
		if (st == yajl_status_client_canceled && r->toodeep) {
			evbuffer_drain(in, used);
			err = QMP_ERR_DEPTH;
			goto fail;
		}
		qmp_append(r, vec.iov_base, used);
		evbuffer_drain(in, used);
		if (r->done) {
			qmp_take(r, msg);
			qmp_reader_reset(r);
			return (QMP_MESSAGE);
		}
	}
	return (QMP_NEED_MORE);

fail:
	qmp_reader_reset(r);
	memset(msg, 0, sizeof(*msg));
	return (err);
}

/* Free a message's bytes; the struct itself belongs to the caller. */
void
qmp_msg_clear(struct qmp_msg *msg)
{
	free(msg->buf);
	msg->buf = NULL;
	msg->len = 0;
}

/* Hand the message's bytes (NUL-terminated) to the caller. */
char *
qmp_msg_steal(struct qmp_msg *msg)
{
	char	*buf = msg->buf;

	msg->buf = NULL;
	return (buf);
}

/* The span of the id's value; len 0 when there is none. */
struct qmp_span
qmp_msg_id(const struct qmp_msg *msg)
{
	struct qmp_span		 span = { 0, 0 };
	const struct qmp_member	*m;

	if (msg->m_id == -1)
		return (span);
	m = &msg->members[msg->m_id];
	span.off = m->val_off;
	span.len = m->val_end - m->val_off;
	return (span);
}

/*
 * The bytes to cut to remove member i with exactly one comma: from the
 * end of the previous value, or up to the next key when it is first.
 */
struct qmp_span
qmp_msg_cut_member(const struct qmp_msg *msg, int i)
{
	struct qmp_span		 span;
	const struct qmp_member	*m = &msg->members[i];

	if (i > 0) {
		span.off = msg->members[i - 1].val_end;
		span.len = m->val_end - span.off;
	} else if (msg->nmembers > 1) {
		span.off = m->key_off;
		span.len = msg->members[1].key_off - span.off;
	} else {
		span.off = m->key_off;
		span.len = m->val_end - span.off;
	}
	return (span);
}
