/*
 * QMP framing: one reading of every byte.
 *
 * The proxy checks a client's command and forwards its bytes, which QEMU
 * then reads itself.  Were the two readings ever different, a client
 * could hide a command from an access list, wedge the monitor with an
 * object that never closes, or take another client's replies.  So this
 * reader is not a general JSON parser: it reads as QEMU does, in the
 * three layers of QEMU's own reader, kept in step byte by byte.
 *
 * - The lexer (QEMU's qobject/json-lexer.c).  Whitespace is space, tab,
 *   CR and LF, nothing else; strings may be single-quoted; keywords are
 *   [a-z]+.  A byte that cannot start or continue a token is "stray": it
 *   is an error, and input is then skipped up to a structural character
 *   or a control character other than tab, where QEMU starts again.
 * - The streamer (json-streamer.c).  A message ends at the token that
 *   brings the counts of open braces and brackets both back to zero, or
 *   either below; nesting and the number of tokens are bounded as QEMU
 *   bounds them.
 * - The parser (json-parser.c).  The grammar, string escapes, UTF-8 and
 *   repeated keys are checked token by token, and the first error found
 *   is the one QEMU's recursive parser reports, with its text.
 *
 * A message is exactly its tokens and the whitespace between them; what
 * the caller forwards is those bytes.  The reader stops right after the
 * last token of a message and leaves what follows in the caller's
 * evbuffer, so a caller that must stop at a bound (a client's pipeline,
 * the event backlog) can stop between two messages.
 *
 * The reader keeps its buffers from one message to the next and hands
 * each message an exact-size copy: an event flood is millions of small
 * messages, and per-message working buffers fragment the heap.
 */
#include "config.h"

#include <sys/random.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"
#include "qmp.h"
#include "utf8.h"

#define QMP_BUF_START	512
#define QMP_BUF_KEEP	(16 << 10)	/* larger buffers are not kept */
#define QMP_TOKENS_MAX	(2 << 20)	/* QEMU's MAX_TOKEN_COUNT */
#define QMP_PARSE_ERR	1024		/* QEMU's parse_error buffer */
#define QMP_QDICT_BUCKETS 512		/* QEMU's QDICT_BUCKET_MAX */

/* Where the lexer is: between tokens, skipping, or inside one. */
enum qmp_lex {
	LEX_START,
	LEX_RECOVER,	/* after a stray byte */
	LEX_DQ,		/* "string */
	LEX_DQ_ESC,
	LEX_SQ,		/* 'string */
	LEX_SQ_ESC,
	LEX_ZERO,	/* 0 or -0 */
	LEX_SIGN,	/* - */
	LEX_INT,	/* digits, not starting with 0 */
	LEX_DOT,	/* 1. */
	LEX_FRAC,	/* 1.5 */
	LEX_E,		/* 1e */
	LEX_ESIGN,	/* 1e- */
	LEX_EXP,	/* 1e5 */
	LEX_WORD,	/* true, false, null or not */
};

enum qmp_tok {
	TOK_LCURLY,
	TOK_RCURLY,
	TOK_LSQUARE,
	TOK_RSQUARE,
	TOK_COLON,
	TOK_COMMA,
	TOK_STRING,
	TOK_NUMBER,
	TOK_WORD,
};

/* What the parser expects next, in a container or at the top. */
enum qmp_expect {
	EXP_VALUE,		/* the top, an array's item, a pair's value */
	EXP_FIRST_KEY,		/* after '{': a key, or '}' */
	EXP_KEY,		/* after ',' in an object: any value */
	EXP_COLON,
	EXP_OBJ_NEXT,		/* after a pair: ',' or '}' */
	EXP_FIRST_ITEM,		/* after '[': a value, or ']' */
	EXP_ARR_NEXT,		/* after an item: ',' or ']' */
	EXP_DONE,
};

/* An open container; id and the pending key serve repeated keys. */
struct qmp_frame {
	int		 obj;
	enum qmp_expect	 expect;
	unsigned int	 id;
	size_t		 koff;		/* the key of the pair, in kbuf */
	size_t		 klen;
};

/* A key of an object, for QMP_READ_STRICT; obj 0 marks a free slot. */
struct qmp_seen {
	unsigned int	 obj;
	uint32_t	 hash;
	size_t		 off;
	size_t		 len;
};

/*
 * Invariants while a message is read (active):
 * - buf[0, len) holds the message so far: its tokens and the whitespace
 *   between them, the current token last; tok is where that token
 *   starts when lex is inside one;
 * - braces and brackets count as QEMU's streamer counts; frames and top
 *   are the parser's state, which stops changing once failed is set;
 * - kbuf holds the decoded keys of the message (QMP_READ_STRICT), seen
 *   those of every object, by object id.
 */
struct qmp_reader {
	size_t		 max_size;
	unsigned int	 max_depth;
	int		 flags;
	uint32_t	 seed;

	enum qmp_lex	 lex;
	int		 active;
	char		*buf;
	size_t		 len;
	size_t		 cap;
	size_t		 tok;
	int		 str_plain;	/* the string token is ASCII, unescaped */

	long		 braces;
	long		 brackets;
	size_t		 ntokens;

	struct qmp_frame *frames;
	size_t		 depth;
	size_t		 framescap;
	enum qmp_expect	 top;
	int		 failed;
	unsigned int	 nobjects;

	/* the string just decoded */
	char		*sbuf;
	size_t		 slen;
	size_t		 scap;

	char		*kbuf;
	size_t		 klen;
	size_t		 kcap;
	struct qmp_seen	*seen;
	size_t		 nseen;
	size_t		 seencap;

	/* the top-level member being read */
	struct qmp_member pending;
	size_t		 last_end;	/* end of the last member's value */
	struct qmp_member *last;	/* where it was recorded, or NULL */
	unsigned int	 nmembers;

	struct qmp_msg	 cur;
	char		*error;
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

/* The QMP members by name, for both directions. */
static const struct {
	const char	*name;
	size_t		 len;
	enum qmp_key	 key;
} qmp_keys[] = {
	{ "execute", 7, QMP_KEY_EXECUTE },
	{ "exec-oob", 8, QMP_KEY_EXEC_OOB },
	{ "arguments", 9, QMP_KEY_ARGUMENTS },
	{ "id", 2, QMP_KEY_ID },
	{ "return", 6, QMP_KEY_RETURN },
	{ "error", 5, QMP_KEY_ERROR },
	{ "event", 5, QMP_KEY_EVENT },
	{ "QMP", 3, QMP_KEY_QMP },
};
#define QMP_NKEYS	(sizeof(qmp_keys) / sizeof(qmp_keys[0]))

/*
 * The bytes a string token takes in a run, as the lexer's LEX_DQ and
 * LEX_SQ do: all from 0x20 to 0xfd but the backslash (the quotes are
 * told apart by the caller).  QMP_SB_HIGH marks those past ASCII.
 */
#define QMP_SB_ASCII	1
#define QMP_SB_HIGH	2
#define QMP_SB_R16(b)	b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b
static const unsigned char qmp_strbyte[256] = {
	QMP_SB_R16(0), QMP_SB_R16(0),			/* 0x00-0x1f */
	QMP_SB_R16(1), QMP_SB_R16(1),			/* 0x20-0x3f */
	QMP_SB_R16(1),					/* 0x40-0x4f */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,	/* 0x5c '\\' */
	QMP_SB_R16(1), QMP_SB_R16(1),			/* 0x60-0x7f */
	QMP_SB_R16(2), QMP_SB_R16(2), QMP_SB_R16(2), QMP_SB_R16(2),
	QMP_SB_R16(2), QMP_SB_R16(2), QMP_SB_R16(2),	/* 0x80-0xef */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0,	/* 0xfe, 0xff */
};

static void	qmp_fail(struct qmp_reader *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* Return the printable name of a kind. */
const char *
qmp_kind_name(enum qmp_kind kind)
{
	return (qmp_kind_names[kind]);
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

/* Map a decoded key to the QMP member it names. */
static enum qmp_key
qmp_key_lookup(const char *s, size_t len)
{
	size_t	 i;

	/* no QMP name is longer than 9 or shorter than 2 */
	if (len < 2 || len > 9)
		return (QMP_KEY_OTHER);
	for (i = 0; i < QMP_NKEYS; i++) {
		if (qmp_keys[i].len == len && qmp_keys[i].name[0] == s[0] &&
		    memcmp(qmp_keys[i].name, s, len) == 0)
			return (qmp_keys[i].key);
	}
	return (QMP_KEY_OTHER);
}

/*
 * Make a reader for messages of at most max_size bytes and max_depth
 * open braces and brackets.  For what QEMU will read (QMP_READ_STRICT)
 * neither may exceed QEMU's own limits, QMP_SIZE_MAX and QMP_DEPTH_MAX:
 * past them QEMU cuts a message in two and reads its tail as new input,
 * where the proxy would have checked one message.
 */
struct qmp_reader *
qmp_reader_new(size_t max_size, unsigned int max_depth, int flags)
{
	struct qmp_reader	*r;

	if ((flags & QMP_READ_STRICT) &&
	    (max_size > QMP_SIZE_MAX || max_depth > QMP_DEPTH_MAX))
		return (NULL);
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return (NULL);
	r->max_size = max_size;
	r->max_depth = max_depth;
	r->flags = flags;
	/* keys are the client's to choose: keep their hashes unguessable */
	if ((flags & QMP_READ_STRICT) &&
	    getrandom(&r->seed, sizeof(r->seed), GRND_NONBLOCK) !=
	    sizeof(r->seed))
		r->seed = (uint32_t)(uintptr_t)r;
	r->top = EXP_VALUE;
	return (r);
}

/*
 * Forget the message being read, keeping the caps and, unless one grew
 * large for a large message, the buffers.
 */
static void
qmp_reader_reset(struct qmp_reader *r)
{
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
	if (r->scap > QMP_BUF_KEEP) {
		free(r->sbuf);
		r->sbuf = NULL;
		r->scap = 0;
	}
	if (r->seencap * sizeof(*r->seen) > QMP_BUF_KEEP) {
		free(r->seen);
		r->seen = NULL;
		r->seencap = 0;
	} else if (r->nseen > 0)
		memset(r->seen, 0, r->seencap * sizeof(*r->seen));
	r->active = 0;
	r->len = r->tok = r->klen = r->slen = r->nseen = 0;
	r->braces = r->brackets = 0;
	r->ntokens = r->depth = 0;
	r->top = EXP_VALUE;
	r->failed = 0;
	r->nobjects = r->nmembers = 0;
	r->last_end = 0;
	r->last = NULL;
}

/* Free a reader; NULL is allowed. */
void
qmp_reader_free(struct qmp_reader *r)
{
	if (r == NULL)
		return;
	free(r->buf);
	free(r->frames);
	free(r->sbuf);
	free(r->kbuf);
	free(r->seen);
	free(r->error);
	free(r);
}

/* Return the text of the last error, as QEMU words it. */
const char *
qmp_reader_error(struct qmp_reader *r)
{
	return (r->error != NULL ? r->error : "");
}

/* Bytes of an unfinished message held by the reader. */
size_t
qmp_reader_pending(struct qmp_reader *r)
{
	return (r->active ? r->len : 0);
}

/*
 * The bytes of the message being read, for a restart to read again
 * from the start; *len 0 between messages.
 */
const char *
qmp_reader_partial(struct qmp_reader *r, size_t *len)
{
	*len = r->active ? r->len : 0;
	return (r->buf);
}

/*
 * Make room for need elements of size in *p, growing *cap by doubling
 * from start.
 */
static void
qmp_grow(void *p, size_t *cap, size_t need, size_t size, size_t start)
{
	void	**pp = p, *np;
	size_t	  ncap;

	if (need <= *cap)
		return;
	ncap = *cap == 0 ? start : *cap;
	while (ncap < need)
		ncap *= 2;
	if ((np = reallocarray(*pp, ncap, size)) == NULL)
		fatalx("out of memory reading a QMP message");
	*pp = np;
	*cap = ncap;
}

/* Set the error text; a new error replaces the last one. */
static void
qmp_set_error(struct qmp_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
qmp_set_error(struct qmp_reader *r, const char *fmt, ...)
{
	va_list	 ap;

	free(r->error);
	va_start(ap, fmt);
	if (vasprintf(&r->error, fmt, ap) == -1)
		fatalx("out of memory reading a QMP message");
	va_end(ap);
}

/*
 * A parse error.  Only the first counts, as in QEMU, whose message
 * buffer also cuts the text at QMP_PARSE_ERR bytes.
 */
static void
qmp_fail(struct qmp_reader *r, const char *fmt, ...)
{
	char	 text[QMP_PARSE_ERR];
	va_list	 ap;

	if (r->failed)
		return;
	r->failed = 1;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	qmp_set_error(r, "JSON parse error, %s", text);
}

/* Whether QEMU takes cp from a \u escape (its is_valid_codepoint). */
static int
qmp_valid_codepoint(long cp)
{
	return (cp >= 0 && cp <= 0x10ffff && !(cp >= 0xfdd0 && cp <= 0xfdef) &&
	    (cp & 0xfffe) != 0xfffe && !(cp >= 0xd800 && cp <= 0xdfff));
}

/* Four hex digits at s, as QEMU's cvt4hex: -1 unless all four are. */
static long
qmp_hex4(const char *s, const char *end)
{
	long	 cp = 0;
	int	 i, c;

	for (i = 0; i < 4; i++) {
		if (s + i >= end)
			return (-1);
		c = (unsigned char)s[i];
		if (c >= '0' && c <= '9')
			cp = cp << 4 | (c - '0');
		else if (c >= 'a' && c <= 'f')
			cp = cp << 4 | (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			cp = cp << 4 | (c - 'A' + 10);
		else
			return (-1);
	}
	return (cp);
}

/* Append a code point in QEMU's modified UTF-8 (NUL as C0 80). */
static void
qmp_put_codepoint(struct qmp_reader *r, long cp)
{
	unsigned char	 u[4];
	size_t		 n;

	if (cp > 0 && cp < 0x80) {
		u[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (unsigned char)(0xc0 | cp >> 6);
		u[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (unsigned char)(0xe0 | cp >> 12);
		u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (unsigned char)(0xf0 | cp >> 18);
		u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		u[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	qmp_grow(&r->sbuf, &r->scap, r->slen + n + 1, 1, 64);
	memcpy(r->sbuf + r->slen, u, n);
	r->slen += n;
}

/*
 * Decode the string token buf[off, end) into sbuf, checking it as QEMU's
 * parse_string does; -1 (the error set) if QEMU refuses it.  The lexer
 * has already refused control characters and the bytes FE and FF.
 */
static int
qmp_string(struct qmp_reader *r, size_t off, size_t end)
{
	const char	*p = r->buf + off + 1, *tend = r->buf + end;
	const char	*last = tend - 1, *u;
	const char	*plain;
	size_t		 used;
	long		 cp, trail;
	char		 c;

	r->slen = 0;
	qmp_grow(&r->sbuf, &r->scap, end - off, 1, 64);
	if (r->str_plain) {
		/* ASCII without an escape is itself: most strings */
		memcpy(r->sbuf, p, (size_t)(last - p));
		r->slen = (size_t)(last - p);
		r->sbuf[r->slen] = '\0';
		return (0);
	}
	while (p < last) {
		/*
		 * A run of ASCII is itself, as utf8_codepoint would
		 * take it byte by byte: names, keys and most values are
		 * all ASCII, and an event flood is millions of them.
		 */
		for (plain = p; p < last && *p != '\\' &&
		    (unsigned char)*p - 1 < 0x7f; p++)
			;
		if (p > plain) {
			memcpy(r->sbuf + r->slen, plain, (size_t)(p - plain));
			r->slen += (size_t)(p - plain);
			continue;
		}
		if (*p != '\\') {
			plain = p;
			if (utf8_codepoint((const unsigned char *)p,
			    (size_t)(tend - p), &used) < 0) {
				qmp_fail(r, "invalid UTF-8 sequence in string");
				return (-1);
			}
			p += used;
			memcpy(r->sbuf + r->slen, plain, used);
			r->slen += used;
			continue;
		}
		p++;
		switch ((c = *p++)) {
		case '"':
		case '\'':
		case '\\':
		case '/':
			break;
		case 'b':
			c = '\b';
			break;
		case 'f':
			c = '\f';
			break;
		case 'n':
			c = '\n';
			break;
		case 'r':
			c = '\r';
			break;
		case 't':
			c = '\t';
			break;
		case 'u':
			u = p;
			cp = qmp_hex4(p, tend);
			p += 4;
			if (cp >= 0xd800 && cp <= 0xdbff && p + 1 < tend &&
			    p[0] == '\\' && p[1] == 'u') {
				trail = qmp_hex4(p + 2, tend);
				if (trail >= 0xdc00 && trail <= 0xdfff) {
					cp = 0x10000 + ((cp & 0x3ff) << 10 |
					    (trail & 0x3ff));
					p += 6;
				}
			}
			if (!qmp_valid_codepoint(cp)) {
				qmp_fail(r, "\\u%.*s is not a valid Unicode "
				    "character", (int)(tend - u < 4 ?
				    tend - u : 4), u);
				return (-1);
			}
			qmp_put_codepoint(r, cp);
			continue;
		default:
			qmp_fail(r, "invalid escape sequence in string");
			return (-1);
		}
		qmp_grow(&r->sbuf, &r->scap, r->slen + 2, 1, 64);
		r->sbuf[r->slen++] = c;
	}
	qmp_grow(&r->sbuf, &r->scap, r->slen + 1, 1, 64);
	r->sbuf[r->slen] = '\0';
	return (0);
}

/* QEMU's hash of a QDict key (tdb_hash), reduced to its bucket. */
unsigned int
qmp_qdict_bucket(const char *s, size_t len)
{
	uint32_t	 value = 0x238f13afU * (uint32_t)len;
	size_t		 i;

	for (i = 0; i < len; i++)
		value += (uint32_t)(unsigned char)s[i] << (i * 5 % 24);
	return ((1103515243U * value + 12345U) % QMP_QDICT_BUCKETS);
}

/* Whether a comes before b when QEMU walks its QDict. */
static int
qmp_qdict_before(const struct qmp_member *a, const struct qmp_member *b)
{
	if (a->bucket != b->bucket)
		return (a->bucket < b->bucket);
	return (a->seq > b->seq);
}

/* A seeded FNV-1a of a key, for the table of keys seen. */
static uint32_t
qmp_key_hash(struct qmp_reader *r, const char *s, size_t len,
    unsigned int obj)
{
	uint32_t	 h = 2166136261U ^ r->seed ^ obj * 16777619U;
	size_t		 i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619U;
	}
	return (h);
}

/*
 * Add the key kbuf[off, off + len) of object obj to the keys seen; 1 if
 * that object already had it.  The table is open addressing, at most
 * half full.
 */
static int
qmp_key_seen(struct qmp_reader *r, unsigned int obj, size_t off, size_t len)
{
	struct qmp_seen	*old, *e;
	uint32_t	 h = qmp_key_hash(r, r->kbuf + off, len, obj);
	size_t		 i, oldcap, mask;

	if ((r->nseen + 1) * 2 > r->seencap) {
		old = r->seen;
		oldcap = r->seencap;
		r->seencap = oldcap == 0 ? 16 : oldcap * 2;
		if ((r->seen = calloc(r->seencap, sizeof(*r->seen))) == NULL)
			fatalx("out of memory reading a QMP message");
		mask = r->seencap - 1;
		for (i = 0; i < oldcap; i++) {
			if (old[i].obj == 0)
				continue;
			e = &r->seen[old[i].hash & mask];
			while (e->obj != 0)
				e = &r->seen[(size_t)(e - r->seen + 1) & mask];
			*e = old[i];
		}
		free(old);
	}
	mask = r->seencap - 1;
	for (i = h & mask; r->seen[i].obj != 0; i = (i + 1) & mask) {
		e = &r->seen[i];
		if (e->obj == obj && e->hash == h && e->len == len &&
		    memcmp(r->kbuf + e->off, r->kbuf + off, len) == 0)
			return (1);
	}
	e = &r->seen[i];
	e->obj = obj;
	e->hash = h;
	e->off = off;
	e->len = len;
	r->nseen++;
	return (0);
}

/* A top-level key has been read: start its member. */
static void
qmp_member_key(struct qmp_reader *r, size_t off, size_t end)
{
	struct qmp_member	*m = &r->pending;

	memset(m, 0, sizeof(*m));
	m->key = qmp_key_lookup(r->sbuf, r->slen);
	m->key_off = off;
	m->key_end = end;
	m->prev_end = r->last_end;
	m->seq = r->nmembers++;
	if (r->flags & QMP_READ_STRICT)
		m->bucket = qmp_qdict_bucket(r->sbuf, r->slen);
	if (r->last != NULL)
		r->last->next_key = off;
	r->last = NULL;
}

/* Copy a decoded string into one of the message's name fields. */
static void
qmp_set_name(struct qmp_reader *r, char *name, const char *s, size_t len)
{
	if (len >= QMP_NAME_MAX) {
		len = QMP_NAME_MAX - 1;
		if (name == r->cur.name)
			r->cur.name_truncated = 1;
	}
	/*
	 * Names are a few bytes: a loop, where the memcpy of a length
	 * unknown to the compiler became a rep movsq, whose start-up
	 * was a sixth of qmpmuxd's time in an event flood (perf).
	 */
	if (len < 32) {
		while (len-- > 0)
			*name++ = *s++;
		*name = '\0';
		return;
	}
	memcpy(name, s, len);
	name[len] = '\0';
}

/*
 * A top-level member's value has been read: keep the member if it is
 * the first of its QMP key, or the first of the others.
 */
static void
qmp_member_value(struct qmp_reader *r, enum qmp_type type, size_t end,
    const char *key, size_t klen)
{
	struct qmp_msg		*msg = &r->cur;
	struct qmp_member	*m = &r->pending;
	int			 i;

	m->type = type;
	m->val_end = end;
	r->last_end = end;
	if (m->key == QMP_KEY_OTHER) {
		if (msg->has_other && !((r->flags & QMP_READ_STRICT) &&
		    qmp_qdict_before(m, &msg->other)))
			return;
		msg->has_other = 1;
		msg->other = *m;
		qmp_set_name(r, msg->other_name, key, klen);
		r->last = &msg->other;
		return;
	}
	for (i = 0; i < msg->nmembers; i++) {
		if (msg->members[i].key == m->key)
			return;
	}
	msg->members[msg->nmembers] = *m;
	r->last = &msg->members[msg->nmembers++];
	if (type == QMP_TYPE_STRING && (m->key == QMP_KEY_EXECUTE ||
	    m->key == QMP_KEY_EXEC_OOB || m->key == QMP_KEY_EVENT))
		qmp_set_name(r, msg->name, r->sbuf, r->slen);
}

/*
 * A value has been read whole (a scalar, or a container just closed):
 * the container around it moves on.  A key must be a string, and with
 * QMP_READ_STRICT must not repeat; both are checked once the value is
 * whole, as QEMU's parse_pair does, so its first error is ours.
 */
static void
qmp_value_done(struct qmp_reader *r, enum qmp_type type, size_t off,
    size_t end)
{
	struct qmp_frame	*f;

	if (r->depth == 0) {
		r->top = EXP_DONE;
		return;
	}
	f = &r->frames[r->depth - 1];
	switch (f->expect) {
	case EXP_FIRST_KEY:
	case EXP_KEY:
		if (type != QMP_TYPE_STRING) {
			qmp_fail(r, "key is not a string in object");
			return;
		}
		/*
		 * The key is kept for the check of repeated keys and for a
		 * top-level member's name; QEMU's own nested keys need
		 * neither.
		 */
		if ((r->flags & QMP_READ_STRICT) || r->depth == 1) {
			qmp_grow(&r->kbuf, &r->kcap, r->klen + r->slen + 1, 1,
			    256);
			memcpy(r->kbuf + r->klen, r->sbuf, r->slen);
			f->koff = r->klen;
			f->klen = r->slen;
			r->klen += r->slen;
		}
		if (r->depth == 1)
			qmp_member_key(r, off, end);
		f->expect = EXP_COLON;
		return;
	case EXP_VALUE:
		if (!f->obj) {
			f->expect = EXP_ARR_NEXT;
			return;
		}
		if ((r->flags & QMP_READ_STRICT) &&
		    qmp_key_seen(r, f->id, f->koff, f->klen)) {
			qmp_fail(r, "duplicate key");
			return;
		}
		if (r->depth == 1)
			qmp_member_value(r, type, end, r->kbuf + f->koff,
			    f->klen);
		f->expect = EXP_OBJ_NEXT;
		return;
	default:
		f->expect = f->obj ? EXP_OBJ_NEXT : EXP_ARR_NEXT;
		return;
	}
}

/* A container opens where a value is expected. */
static void
qmp_open(struct qmp_reader *r, int obj)
{
	struct qmp_frame	*f;

	qmp_grow(&r->frames, &r->framescap, r->depth + 1, sizeof(*f), 8);
	f = &r->frames[r->depth++];
	memset(f, 0, sizeof(*f));
	f->obj = obj;
	f->expect = obj ? EXP_FIRST_KEY : EXP_FIRST_ITEM;
	if (obj)
		f->id = ++r->nobjects;
}

/* A container closes where its closer is allowed. */
static void
qmp_close(struct qmp_reader *r, size_t end)
{
	int	 obj = r->frames[--r->depth].obj;

	qmp_value_done(r, obj ? QMP_TYPE_OBJECT : QMP_TYPE_ARRAY, 0, end);
}

/* A token where a value is expected: QEMU's parse_value. */
static void
qmp_value(struct qmp_reader *r, enum qmp_tok t, size_t off, size_t end)
{
	const char	*w = r->buf + off;
	size_t		 n = end - off;

	/* the value of a top-level member, or the top itself */
	if (r->depth == 1 && r->frames[0].expect == EXP_VALUE)
		r->pending.val_off = off;
	else if (r->depth == 0)
		r->cur.kind = t == TOK_LCURLY ? QMP_KIND_OBJECT :
		    QMP_KIND_NONOBJECT;

	switch (t) {
	case TOK_LCURLY:
		qmp_open(r, 1);
		break;
	case TOK_LSQUARE:
		qmp_open(r, 0);
		break;
	case TOK_STRING:
		if (qmp_string(r, off, end) == 0)
			qmp_value_done(r, QMP_TYPE_STRING, off, end);
		break;
	case TOK_NUMBER:
		qmp_value_done(r, QMP_TYPE_NUMBER, off, end);
		break;
	case TOK_WORD:
		if ((n == 4 && memcmp(w, "true", 4) == 0) ||
		    (n == 5 && memcmp(w, "false", 5) == 0))
			qmp_value_done(r, QMP_TYPE_BOOL, off, end);
		else if (n == 4 && memcmp(w, "null", 4) == 0)
			qmp_value_done(r, QMP_TYPE_NULL, off, end);
		else
			qmp_fail(r, "invalid keyword '%.*s'", (int)n, w);
		break;
	default:
		qmp_fail(r, "expecting value");
		break;
	}
}

/* One token through the parser, until its first error. */
static void
qmp_parse(struct qmp_reader *r, enum qmp_tok t, size_t off, size_t end)
{
	enum qmp_expect	*e;

	if (r->failed)
		return;
	e = r->depth > 0 ? &r->frames[r->depth - 1].expect : &r->top;
	switch (*e) {
	case EXP_FIRST_KEY:
		if (t == TOK_RCURLY) {
			qmp_close(r, end);
			break;
		}
		/* FALLTHROUGH */
	case EXP_KEY:
		qmp_value(r, t, off, end);
		break;
	case EXP_FIRST_ITEM:
		if (t == TOK_RSQUARE) {
			qmp_close(r, end);
			break;
		}
		/* FALLTHROUGH */
	case EXP_VALUE:
		qmp_value(r, t, off, end);
		break;
	case EXP_COLON:
		if (t == TOK_COLON)
			*e = EXP_VALUE;
		else
			qmp_fail(r, "missing : in object pair");
		break;
	case EXP_OBJ_NEXT:
		if (t == TOK_RCURLY)
			qmp_close(r, end);
		else if (t == TOK_COMMA)
			*e = EXP_KEY;
		else
			qmp_fail(r, "expected separator in dict");
		break;
	case EXP_ARR_NEXT:
		if (t == TOK_RSQUARE)
			qmp_close(r, end);
		else if (t == TOK_COMMA)
			*e = EXP_VALUE;
		else
			qmp_fail(r, "expected separator in list");
		break;
	case EXP_DONE:
		/* the streamer ends the message with its value */
		qmp_fail(r, "expecting value");
		break;
	}
}

/*
 * A whole token, through QEMU's streamer: count, bound, parse, and say
 * whether the message ends here.
 */
static enum qmp_status
qmp_token(struct qmp_reader *r, enum qmp_tok t, size_t off, size_t end)
{
	switch (t) {
	case TOK_LCURLY:
		r->braces++;
		break;
	case TOK_RCURLY:
		r->braces--;
		break;
	case TOK_LSQUARE:
		r->brackets++;
		break;
	case TOK_RSQUARE:
		r->brackets--;
		break;
	default:
		break;
	}
	if (r->ntokens + 1 > QMP_TOKENS_MAX) {
		qmp_set_error(r, "JSON token count limit exceeded");
		qmp_reader_reset(r);
		return (QMP_ERR_JSON);
	}
	if (r->braces + r->brackets > (long)r->max_depth) {
		qmp_set_error(r, "JSON nesting depth limit exceeded");
		qmp_reader_reset(r);
		return (QMP_ERR_DEPTH);
	}
	r->ntokens++;
	qmp_parse(r, t, off, end);
	/* QEMU's own output: a peer that writes that is given up at once */
	if (r->failed && !(r->flags & QMP_READ_STRICT)) {
		qmp_reader_reset(r);
		return (QMP_ERR_JSON);
	}
	if ((r->braces > 0 || r->brackets > 0) && r->braces >= 0 &&
	    r->brackets >= 0)
		return (QMP_NEED_MORE);
	if (r->failed) {
		qmp_reader_reset(r);
		return (QMP_ERR_JSON);
	}
	return (QMP_MESSAGE);
}

/* Append one byte of the message; -1 past the size cap. */
static inline int
qmp_put(struct qmp_reader *r, unsigned char c)
{
	if (r->len == r->max_size)
		return (-1);
	if (r->len == r->cap)
		qmp_grow(&r->buf, &r->cap, r->len + 1, 1, QMP_BUF_START);
	r->buf[r->len++] = (char)c;
	return (0);
}

/* Append n bytes of the message at once; -1 past the size cap. */
static inline int
qmp_put_run(struct qmp_reader *r, const unsigned char *p, size_t n)
{
	if (n > r->max_size - r->len)
		return (-1);
	qmp_grow(&r->buf, &r->cap, r->len + n, 1, QMP_BUF_START);
	memcpy(r->buf + r->len, p, n);
	r->len += n;
	return (0);
}

/*
 * A byte that no token takes: QEMU's "stray" error, naming the token
 * so far with the byte; then skip to where QEMU starts again.
 */
static enum qmp_status
qmp_stray(struct qmp_reader *r, unsigned char c)
{
	size_t	 n = r->lex == LEX_START ? 0 : r->len - r->tok;
	char	*t;

	if ((t = malloc(n + 2)) == NULL)
		fatalx("out of memory reading a QMP message");
	if (n > 0)
		memcpy(t, r->buf + r->tok, n);
	t[n] = (char)c;
	t[n + 1] = '\0';
	/* as QEMU's %s, a NUL byte ends the text */
	qmp_set_error(r, "JSON parse error, stray '%s'", t);
	free(t);
	qmp_reader_reset(r);
	r->lex = LEX_RECOVER;
	return (QMP_ERR_JSON);
}

/* Whether c is one of QEMU's structural characters. */
static int
qmp_structural(unsigned char c)
{
	return (c == '{' || c == '}' || c == '[' || c == ']' || c == ':' ||
	    c == ',');
}

/* The token a structural character is. */
static enum qmp_tok
qmp_structural_token(unsigned char c)
{
	switch (c) {
	case '{':
		return (TOK_LCURLY);
	case '}':
		return (TOK_RCURLY);
	case '[':
		return (TOK_LSQUARE);
	case ']':
		return (TOK_RSQUARE);
	case ':':
		return (TOK_COLON);
	default:
		return (TOK_COMMA);
	}
}

/*
 * Start a message empty.  Only what a message without those members
 * reads is cleared: the members and names are a kilobyte, which a
 * memset per message of a flood would spend more on than the message.
 */
static void
qmp_msg_start(struct qmp_msg *msg)
{
	msg->buf = NULL;
	msg->len = 0;
	msg->kind = QMP_KIND_NONOBJECT;
	msg->nmembers = 0;
	msg->m_id = msg->m_execute = msg->m_exec_oob = -1;
	msg->m_arguments = -1;
	msg->has_other = 0;
	memset(&msg->other, 0, sizeof(msg->other));
	msg->name[0] = '\0';
	msg->name_truncated = 0;
	msg->other_name[0] = '\0';
}

/*
 * Feed bytes to the lexer until a message ends or an error; *used is
 * how many were taken.  A token that ends on a byte it does not include
 * (a number or keyword, by lookahead) leaves that byte for the next
 * round, as QEMU's lexer does.
 */
static enum qmp_status
qmp_feed(struct qmp_reader *r, const unsigned char *p, size_t n,
    size_t *used)
{
	enum qmp_status	 st;
	enum qmp_tok	 t;
	unsigned char	 c, quote, k, high = 0;
	size_t		 i = 0, run;

	while (i < n) {
		c = p[i];
		switch (r->lex) {
		case LEX_RECOVER:
			if (c == '\t' || (c >= 0x20 && c <= 0xfd &&
			    !qmp_structural(c))) {
				i++;
				continue;
			}
			r->lex = LEX_START;
			continue;
		case LEX_START:
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
				for (run = i + 1; run < n && (p[run] == ' ' ||
				    p[run] == '\t' || p[run] == '\r' ||
				    p[run] == '\n'); run++)
					;
				if (r->active && qmp_put_run(r, p + i,
				    run - i) == -1)
					goto toolarge;
				i = run;
				continue;
			}
			if (!r->active) {
				qmp_msg_start(&r->cur);
				r->active = 1;
			}
			r->tok = r->len;
			if (qmp_structural(c)) {
				if (qmp_put(r, c) == -1)
					goto toolarge;
				i++;
				t = qmp_structural_token(c);
				if ((st = qmp_token(r, t, r->tok, r->len)) !=
				    QMP_NEED_MORE)
					goto out;
				continue;
			}
			if (c == '"' || c == '\'') {
				r->lex = c == '"' ? LEX_DQ : LEX_SQ;
				r->str_plain = 1;
			}
			else if (c == '0')
				r->lex = LEX_ZERO;
			else if (c >= '1' && c <= '9')
				r->lex = LEX_INT;
			else if (c == '-')
				r->lex = LEX_SIGN;
			else if (c >= 'a' && c <= 'z')
				r->lex = LEX_WORD;
			else {
				i++;
				st = qmp_stray(r, c);
				goto out;
			}
			break;
		case LEX_DQ:
		case LEX_SQ:
			quote = r->lex == LEX_DQ ? '"' : '\'';
			/*
			 * The bulk of a message: take plain runs at once, and
			 * note a byte past ASCII, which only qmp_string's
			 * full decoding checks.
			 */
			for (run = i; run < n && (k = qmp_strbyte[p[run]]) !=
			    0 && p[run] != quote; run++)
				high |= k;
			if (high & QMP_SB_HIGH)
				r->str_plain = 0;
			high = 0;
			if (run > i) {
				if (qmp_put_run(r, p + i, run - i) == -1)
					goto toolarge;
				i = run;
				continue;
			}
			if (c == quote) {
				if (qmp_put(r, c) == -1)
					goto toolarge;
				i++;
				r->lex = LEX_START;
				if ((st = qmp_token(r, TOK_STRING, r->tok,
				    r->len)) != QMP_NEED_MORE)
					goto out;
				continue;
			}
			if (c == '\\') {
				r->lex = r->lex == LEX_DQ ? LEX_DQ_ESC :
				    LEX_SQ_ESC;
				r->str_plain = 0;
				break;
			}
			i++;
			st = qmp_stray(r, c);
			goto out;
		case LEX_DQ_ESC:
		case LEX_SQ_ESC:
			if (c < 0x20 || c > 0xfd) {
				i++;
				st = qmp_stray(r, c);
				goto out;
			}
			r->lex = r->lex == LEX_DQ_ESC ? LEX_DQ : LEX_SQ;
			break;
		case LEX_ZERO:
			if (c >= '0' && c <= '9') {
				i++;
				st = qmp_stray(r, c);
				goto out;
			}
			if (c == '.') {
				r->lex = LEX_DOT;
				break;
			}
			goto number;
		case LEX_SIGN:
			if (c == '0')
				r->lex = LEX_ZERO;
			else if (c >= '1' && c <= '9')
				r->lex = LEX_INT;
			else {
				i++;
				st = qmp_stray(r, c);
				goto out;
			}
			break;
		case LEX_INT:
			if (c >= '0' && c <= '9') {
				/* a number's digits, at once */
				for (run = i + 1; run < n && p[run] >= '0' &&
				    p[run] <= '9'; run++)
					;
				if (qmp_put_run(r, p + i, run - i) == -1)
					goto toolarge;
				i = run;
				continue;
			}
			if (c == 'e' || c == 'E') {
				r->lex = LEX_E;
				break;
			}
			if (c == '.') {
				r->lex = LEX_DOT;
				break;
			}
			goto number;
		case LEX_DOT:
		case LEX_ESIGN:
			if (c < '0' || c > '9') {
				i++;
				st = qmp_stray(r, c);
				goto out;
			}
			r->lex = r->lex == LEX_DOT ? LEX_FRAC : LEX_EXP;
			break;
		case LEX_FRAC:
			if (c >= '0' && c <= '9')
				break;
			if (c == 'e' || c == 'E') {
				r->lex = LEX_E;
				break;
			}
			goto number;
		case LEX_E:
			if (c == '+' || c == '-')
				r->lex = LEX_ESIGN;
			else if (c >= '0' && c <= '9')
				r->lex = LEX_EXP;
			else {
				i++;
				st = qmp_stray(r, c);
				goto out;
			}
			break;
		case LEX_EXP:
			if (c >= '0' && c <= '9')
				break;
			goto number;
		case LEX_WORD:
			if (c >= 'a' && c <= 'z') {
				for (run = i + 1; run < n && p[run] >= 'a' &&
				    p[run] <= 'z'; run++)
					;
				if (qmp_put_run(r, p + i, run - i) == -1)
					goto toolarge;
				i = run;
				continue;
			}
			/* the byte after a word or number is not its own */
			r->lex = LEX_START;
			if ((st = qmp_token(r, TOK_WORD, r->tok, r->len)) !=
			    QMP_NEED_MORE)
				goto out;
			continue;
		}
		/* the byte continues the token */
		if (qmp_put(r, c) == -1)
			goto toolarge;
		i++;
		continue;
number:
		r->lex = LEX_START;
		if ((st = qmp_token(r, TOK_NUMBER, r->tok, r->len)) !=
		    QMP_NEED_MORE)
			goto out;
	}
	*used = n;
	return (QMP_NEED_MORE);

toolarge:
	qmp_reader_reset(r);
	r->lex = LEX_RECOVER;
	st = QMP_ERR_SIZE;
out:
	*used = i;
	return (st);
}

/*
 * Fill in what is known only at the end: the message's kind and the
 * indexes of the members the proxy uses.
 */
static void
qmp_finish(struct qmp_msg *msg)
{
	int	 i;

	msg->m_id = msg->m_execute = msg->m_exec_oob = msg->m_arguments = -1;
	for (i = 0; i < msg->nmembers; i++) {
		switch (msg->members[i].key) {
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

/*
 * Write the client's id as QEMU will write it back, unless its bytes
 * already are that: QEMU parses an id and writes the value it parsed.
 */
static void
qmp_msg_write_id(struct qmp_msg *msg)
{
	struct qmp_span	 span = qmp_msg_id(msg);
	struct evbuffer	*b;

	if (qmp_value_as_written(msg->buf, span))
		return;
	if ((b = evbuffer_new()) == NULL)
		fatalx("out of memory reading a QMP message");
	qmp_write_value(b, msg->buf, span);
	msg->id_text_len = evbuffer_get_length(b);
	if ((msg->id_text = malloc(msg->id_text_len + 1)) == NULL)
		fatalx("out of memory reading a QMP message");
	evbuffer_remove(b, msg->id_text, msg->id_text_len);
	msg->id_text[msg->id_text_len] = '\0';
	evbuffer_free(b);
}

/*
 * Give the whole message to msg, in a buffer of its own size plus
 * QMP_MSG_SLACK: exact, so that a million of them queued cost what they
 * hold, with room for a caller to end the line without a realloc.
 */
static void
qmp_take_bytes(struct qmp_reader *r, struct qmp_msg *msg, const char *bytes,
    size_t len)
{
	const struct qmp_msg	*cur = &r->cur;

	/* what the message holds, not the whole kilobyte of the struct */
	msg->kind = cur->kind;
	memcpy(msg->members, cur->members, (size_t)cur->nmembers *
	    sizeof(msg->members[0]));
	msg->nmembers = cur->nmembers;
	msg->has_other = cur->has_other;
	msg->other = cur->other;
	memcpy(msg->name, cur->name, strlen(cur->name) + 1);
	msg->name_truncated = cur->name_truncated;
	memcpy(msg->other_name, cur->other_name, strlen(cur->other_name) + 1);
	if ((msg->buf = malloc(len + QMP_MSG_SLACK)) == NULL)
		fatalx("out of memory reading a QMP message");
	memcpy(msg->buf, bytes, len);
	msg->buf[len] = '\0';
	msg->len = len;
	qmp_finish(msg);
	msg->id_text = NULL;
	msg->id_text_len = 0;
	if ((r->flags & QMP_READ_STRICT) && msg->m_id != -1)
		qmp_msg_write_id(msg);
}

/* The same, for the message qmp_feed has gathered in the reader. */
static void
qmp_take(struct qmp_reader *r, struct qmp_msg *msg)
{
	qmp_take_bytes(r, msg, r->buf, r->len);
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

/*
 * The fast path: QEMU's own output, and nearly every command a client
 * sends, are objects of ASCII strings without escapes, numbers and
 * keywords, and an event flood is millions of them.  qmp_fast reads one
 * such message whole from one contiguous chunk, in one pass, and yields
 * exactly what qmp_feed would: the same bytes, members, names and kind.
 * Anything else, a byte it does not expect, an escape, a byte past
 * ASCII, a message not whole in the chunk, an error, or a bound
 * reached, makes it give up having taken nothing, and the message is
 * read by qmp_feed from its first byte, errors and all.
 */
#define QMP_FAST_KEYS	16	/* keys of an object checked for repeats */

struct qmp_fast {
	struct qmp_reader	*r;
	const unsigned char	*p;
	size_t			 n;
	size_t			 i;
	unsigned int		 depth;
};

/* Skip QEMU's whitespace. */
static inline void
qmp_fast_ws(struct qmp_fast *f)
{
	while (f->i < f->n && (f->p[f->i] == ' ' || f->p[f->i] == '\n' ||
	    f->p[f->i] == '\r' || f->p[f->i] == '\t'))
		f->i++;
}

/* A plain string at i: its end, just past the closing quote, or 0. */
static inline size_t
qmp_fast_string(struct qmp_fast *f)
{
	size_t	 i = f->i + 1;

	while (i < f->n && qmp_strbyte[f->p[i]] == QMP_SB_ASCII &&
	    f->p[i] != '"')
		i++;
	if (i == f->n || f->p[i] != '"')
		return (0);
	return (i + 1);
}

static int	qmp_fast_value(struct qmp_fast *, enum qmp_type *);

/* The digits of a number from i; how many. */
static inline size_t
qmp_fast_digits(struct qmp_fast *f)
{
	size_t	 start = f->i;

	while (f->i < f->n && f->p[f->i] >= '0' && f->p[f->i] <= '9')
		f->i++;
	return (f->i - start);
}

/* A number as QEMU's lexer takes it; 0 to give up. */
static int
qmp_fast_number(struct qmp_fast *f)
{
	if (f->p[f->i] == '-')
		f->i++;
	if (f->i == f->n)
		return (0);
	if (f->p[f->i] == '0') {
		f->i++;
		/* QEMU's lexer takes no exponent right after a 0 */
		if (f->i < f->n && (f->p[f->i] == 'e' || f->p[f->i] == 'E' ||
		    (f->p[f->i] >= '0' && f->p[f->i] <= '9')))
			return (0);
	} else if (qmp_fast_digits(f) == 0)
		return (0);
	if (f->i < f->n && f->p[f->i] == '.') {
		f->i++;
		if (qmp_fast_digits(f) == 0)
			return (0);
	}
	if (f->i < f->n && (f->p[f->i] == 'e' || f->p[f->i] == 'E')) {
		f->i++;
		if (f->i < f->n && (f->p[f->i] == '+' || f->p[f->i] == '-'))
			f->i++;
		if (qmp_fast_digits(f) == 0)
			return (0);
	}
	/* a token must not go on: the lexer would take more */
	return (f->i < f->n);
}

/* An object or array whose opener is at i; 0 to give up. */
static int
qmp_fast_container(struct qmp_fast *f, int obj)
{
	struct qmp_reader	*r = f->r;
	struct qmp_msg		*msg = &r->cur;
	struct qmp_member	 m;
	struct qmp_span		 keys[QMP_FAST_KEYS];
	enum qmp_type		 type;
	unsigned char		 close = obj ? '}' : ']';
	size_t			 kend, klen;
	int			 top = f->depth == 0, i, nkeys = 0;
	int			 strict = r->flags & QMP_READ_STRICT;

	/* the streamer's bound, before any token past it */
	if (++f->depth > r->max_depth)
		return (0);
	f->i++;
	qmp_fast_ws(f);
	if (f->i < f->n && f->p[f->i] == close) {
		f->i++;
		f->depth--;
		return (1);
	}
	for (;;) {
		if (obj) {
			if (f->i == f->n || f->p[f->i] != '"' ||
			    (kend = qmp_fast_string(f)) == 0)
				return (0);
			klen = kend - f->i - 2;
			/*
			 * A client's keys must not repeat, at any depth: a
			 * plain string is its own decoding, so the bytes
			 * compare.  A repeat, or more keys than kept here,
			 * is for qmp_feed, which tells the error.
			 */
			if (strict) {
				if (nkeys == QMP_FAST_KEYS)
					return (0);
				for (i = 0; i < nkeys; i++)
					if (keys[i].len == klen &&
					    memcmp(f->p + keys[i].off,
					    f->p + f->i + 1, klen) == 0)
						return (0);
				keys[nkeys].off = f->i + 1;
				keys[nkeys++].len = klen;
			}
			if (top) {
				memset(&m, 0, sizeof(m));
				m.key = qmp_key_lookup((const char *)f->p +
				    f->i + 1, klen);
				if (strict)
					m.bucket = qmp_qdict_bucket(
					    (const char *)f->p + f->i + 1,
					    klen);
				m.key_off = f->i;
				m.key_end = kend;
				m.prev_end = r->last_end;
				m.seq = r->nmembers++;
				if (r->last != NULL)
					r->last->next_key = f->i;
				r->last = NULL;
			}
			f->i = kend;
			qmp_fast_ws(f);
			if (f->i == f->n || f->p[f->i] != ':')
				return (0);
			f->i++;
			qmp_fast_ws(f);
			if (top)
				m.val_off = f->i;
		}
		if (!qmp_fast_value(f, &type))
			return (0);
		if (top) {
			/* as qmp_member_value, in input order */
			m.type = type;
			m.val_end = f->i;
			r->last_end = f->i;
			if (m.key == QMP_KEY_OTHER) {
				/* the first, in QEMU's hash order if strict */
				if (!msg->has_other || (strict &&
				    qmp_qdict_before(&m, &msg->other))) {
					msg->has_other = 1;
					msg->other = m;
					qmp_set_name(r, msg->other_name,
					    (const char *)f->p + m.key_off + 1,
					    m.key_end - m.key_off - 2);
					r->last = &msg->other;
				}
			} else {
				for (i = 0; i < msg->nmembers; i++)
					if (msg->members[i].key == m.key)
						break;
				if (i == msg->nmembers) {
					msg->members[msg->nmembers] = m;
					r->last =
					    &msg->members[msg->nmembers++];
					if (type == QMP_TYPE_STRING &&
					    (m.key == QMP_KEY_EXECUTE ||
					    m.key == QMP_KEY_EXEC_OOB ||
					    m.key == QMP_KEY_EVENT))
						qmp_set_name(r, msg->name,
						    (const char *)f->p +
						    m.val_off + 1,
						    m.val_end - m.val_off - 2);
				}
			}
		}
		qmp_fast_ws(f);
		if (f->i == f->n)
			return (0);
		if (f->p[f->i] == close) {
			f->i++;
			f->depth--;
			return (1);
		}
		if (f->p[f->i] != ',')
			return (0);
		f->i++;
		qmp_fast_ws(f);
	}
}

/* A value at i, whitespace before it skipped; 0 to give up. */
static int
qmp_fast_value(struct qmp_fast *f, enum qmp_type *type)
{
	const unsigned char	*w;
	size_t			 end;

	if (f->i == f->n)
		return (0);
	switch (f->p[f->i]) {
	case '{':
		*type = QMP_TYPE_OBJECT;
		return (qmp_fast_container(f, 1));
	case '[':
		*type = QMP_TYPE_ARRAY;
		return (qmp_fast_container(f, 0));
	case '"':
		*type = QMP_TYPE_STRING;
		if ((end = qmp_fast_string(f)) == 0)
			return (0);
		f->i = end;
		return (1);
	case 't':
	case 'f':
	case 'n':
		w = f->p + f->i;
		if (f->n - f->i > 4 && memcmp(w, "true", 4) == 0)
			*type = QMP_TYPE_BOOL, f->i += 4;
		else if (f->n - f->i > 4 && memcmp(w, "null", 4) == 0)
			*type = QMP_TYPE_NULL, f->i += 4;
		else if (f->n - f->i > 5 && memcmp(w, "false", 5) == 0)
			*type = QMP_TYPE_BOOL, f->i += 5;
		else
			return (0);
		/* a keyword is the whole run of letters */
		return (!(f->p[f->i] >= 'a' && f->p[f->i] <= 'z'));
	default:
		*type = QMP_TYPE_NUMBER;
		if (f->p[f->i] != '-' &&
		    !(f->p[f->i] >= '0' && f->p[f->i] <= '9'))
			return (0);
		return (qmp_fast_number(f));
	}
}

/*
 * Read one message of QEMU's whole from p[0, n), which starts with its
 * first byte: 1 with msg filled and *used its length, or 0, having
 * changed nothing the slow path reads, to leave it to qmp_feed.
 */
static int
qmp_fast(struct qmp_reader *r, const unsigned char *p, size_t n,
    struct qmp_msg *msg, size_t *used)
{
	struct qmp_fast	 f;

	if (n == 0 || p[0] != '{')
		return (0);
	/*
	 * A token is a byte at least: a message shorter than the streamer's
	 * token bound cannot pass it, and a longer one is qmp_feed's.
	 */
	if (n > QMP_TOKENS_MAX)
		n = QMP_TOKENS_MAX;
	f.r = r;
	f.p = p;
	f.n = n;
	f.i = 0;
	f.depth = 0;
	qmp_msg_start(&r->cur);
	r->cur.kind = QMP_KIND_OBJECT;
	if (!qmp_fast_container(&f, 1) || f.i > r->max_size) {
		qmp_reader_reset(r);
		return (0);
	}
	qmp_take_bytes(r, msg, (const char *)p, f.i);
	qmp_reader_reset(r);
	*used = f.i;
	return (1);
}

/*
 * Take the next whole message from the front of in.  On QMP_MESSAGE the
 * message's bytes are drained from in and msg owns a copy; on
 * QMP_NEED_MORE every byte of in has been taken into the reader; on an
 * error the bytes up to the error are drained, the text is in
 * qmp_reader_error, and the next call goes on where QEMU would.
 */
enum qmp_status
qmp_reader_next(struct qmp_reader *r, struct evbuffer *in,
    struct qmp_msg *msg)
{
	struct evbuffer_iovec	 vec;
	enum qmp_status		 st;
	size_t			 used;

	while (qmp_chunk(in, &vec)) {
		if (!r->active && r->lex == LEX_START &&
		    !(r->flags & QMP_READ_SLOW)) {
			const unsigned char	*p = vec.iov_base;

			/* whitespace between messages is nobody's */
			for (used = 0; used < vec.iov_len && (p[used] == ' ' ||
			    p[used] == '\n' || p[used] == '\r' ||
			    p[used] == '\t'); used++)
				;
			if (used > 0) {
				evbuffer_drain(in, used);
				continue;
			}
			if (qmp_fast(r, p, vec.iov_len, msg, &used)) {
				evbuffer_drain(in, used);
				return (QMP_MESSAGE);
			}
		}
		st = qmp_feed(r, vec.iov_base, vec.iov_len, &used);
		evbuffer_drain(in, used);
		if (st == QMP_MESSAGE) {
			qmp_take(r, msg);
			qmp_reader_reset(r);
			return (QMP_MESSAGE);
		}
		if (st != QMP_NEED_MORE) {
			memset(msg, 0, sizeof(*msg));
			return (st);
		}
	}
	return (QMP_NEED_MORE);
}

/*
 * Whether the reader holds nothing of a message: what it has taken was
 * whole messages and whitespace, and a new reader would read on alike.
 */
int
qmp_reader_idle(const struct qmp_reader *r)
{
	return (!r->active && r->lex == LEX_START);
}

/* Free a message's bytes; the struct itself belongs to the caller. */
void
qmp_msg_clear(struct qmp_msg *msg)
{
	free(msg->buf);
	msg->buf = NULL;
	msg->len = 0;
	free(msg->id_text);
	msg->id_text = NULL;
}

/* Hand the message's bytes (NUL-terminated) to the caller. */
char *
qmp_msg_steal(struct qmp_msg *msg)
{
	char	*buf = msg->buf;

	msg->buf = NULL;
	free(msg->id_text);
	msg->id_text = NULL;
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
 * The id as QEMU writes it back to the client that sent it: its bytes
 * or, where they differ, what the reader made (id_text).  NULL when
 * there is none.
 */
const char *
qmp_msg_id_text(const struct qmp_msg *msg, size_t *len)
{
	struct qmp_span	 span;

	if (msg->id_text != NULL) {
		*len = msg->id_text_len;
		return (msg->id_text);
	}
	span = qmp_msg_id(msg);
	*len = span.len;
	return (span.len == 0 ? NULL : msg->buf + span.off);
}

/*
 * The bytes to cut to remove member i with exactly one comma: from the
 * end of the value before it, or up to the key after it when it is
 * first.
 */
struct qmp_span
qmp_msg_cut_member(const struct qmp_msg *msg, int i)
{
	struct qmp_span		 span;
	const struct qmp_member	*m = &msg->members[i];

	if (m->prev_end != 0) {
		span.off = m->prev_end;
		span.len = m->val_end - span.off;
	} else if (m->next_key != 0) {
		span.off = m->key_off;
		span.len = m->next_key - span.off;
	} else {
		span.off = m->key_off;
		span.len = m->val_end - span.off;
	}
	return (span);
}

/*
 * A message already read, walked again: the few places that must look
 * inside a value (the arguments of qmp_capabilities, a client's id) use
 * these, on bytes the reader has accepted, so that no second parser
 * ever reads a client's bytes.  Offsets are into buf; end bounds it.
 */

/* Past the whitespace QEMU skips (space, tab, CR and LF) from i. */
static size_t
qmp_walk_ws(const char *b, size_t i, size_t end)
{
	while (i < end && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' ||
	    b[i] == '\n'))
		i++;
	return (i);
}

/* Just past the string token at i, in either quote. */
static size_t
qmp_walk_string(const char *b, size_t i, size_t end)
{
	char	 q = b[i++];

	while (i < end && b[i] != q)
		i += b[i] == '\\' ? 2 : 1;
	return (i < end ? i + 1 : end);
}

/* Just past the value that starts at or after i. */
size_t
qmp_value_end(const char *b, size_t i, size_t end)
{
	long	 depth = 0;

	do {
		i = qmp_walk_ws(b, i, end);
		if (i >= end)
			break;
		switch (b[i]) {
		case '"':
		case '\'':
			i = qmp_walk_string(b, i, end);
			break;
		case '{':
		case '[':
			depth++;
			i++;
			break;
		case '}':
		case ']':
			depth--;
			i++;
			break;
		case ',':
		case ':':
			i++;
			break;
		default:
			while (i < end && !qmp_structural((unsigned char)b[i]) &&
			    b[i] != ' ' && b[i] != '\t' && b[i] != '\r' &&
			    b[i] != '\n')
				i++;
			break;
		}
	} while (depth > 0);
	return (i);
}

/*
 * The next member of the object whose '{' *pos is at, or whose last
 * value *pos is just past: 1 with its key token and value, 0 at '}'.
 */
int
qmp_object_next(const char *b, size_t end, size_t *pos, struct qmp_span *key,
    struct qmp_span *val)
{
	size_t	 i = qmp_walk_ws(b, *pos, end);

	if (i >= end || b[i] == '}')
		return (0);
	i = qmp_walk_ws(b, i + 1, end);		/* the '{' or the ',' */
	if (i >= end || b[i] == '}')
		return (0);
	key->off = i;
	i = qmp_walk_string(b, i, end);
	key->len = i - key->off;
	i = qmp_walk_ws(b, i, end);
	val->off = qmp_walk_ws(b, i + 1, end);	/* past the ':' */
	*pos = qmp_value_end(b, val->off, end);
	val->len = *pos - val->off;
	return (1);
}

/* The same for an array: 1 with the next item, 0 at ']'. */
int
qmp_array_next(const char *b, size_t end, size_t *pos, struct qmp_span *val)
{
	size_t	 i = qmp_walk_ws(b, *pos, end);

	if (i >= end || b[i] == ']')
		return (0);
	i = qmp_walk_ws(b, i + 1, end);		/* the '[' or the ',' */
	if (i >= end || b[i] == ']')
		return (0);
	val->off = i;
	*pos = qmp_value_end(b, i, end);
	val->len = *pos - i;
	return (1);
}

/* The type of the value at off. */
enum qmp_type
qmp_value_type(const char *b, size_t off)
{
	switch (b[off]) {
	case '{':
		return (QMP_TYPE_OBJECT);
	case '[':
		return (QMP_TYPE_ARRAY);
	case '"':
	case '\'':
		return (QMP_TYPE_STRING);
	case 't':
	case 'f':
		return (QMP_TYPE_BOOL);
	case 'n':
		return (QMP_TYPE_NULL);
	default:
		return (QMP_TYPE_NUMBER);
	}
}

/*
 * The string token at span, decoded by the reader's own decoder into
 * QEMU's modified UTF-8 (no NUL inside): a new NUL-terminated string,
 * its length in *len.  The reader accepted the token, so it decodes.
 */
char *
qmp_string_decode(const char *b, struct qmp_span span, size_t *len)
{
	struct qmp_reader	 r;

	memset(&r, 0, sizeof(r));
	r.buf = (char *)(uintptr_t)b;
	if (qmp_string(&r, span.off, span.off + span.len) == -1)
		fatalx("%s: a string the reader took does not decode",
		    __func__);
	free(r.error);
	*len = r.slen;
	return (r.sbuf);
}

/*
 * Append s[0, len) as a JSON string, escaped as QEMU's JSON writer
 * (quoted_str) escapes it: short forms for the usual controls, \uXXXX
 * in capitals for any other control, DEL and everything past ASCII
 * (surrogate pairs beyond the BMP), U+FFFD for what is not UTF-8.
 */
void
qmp_write_string(struct evbuffer *out, const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 left = len, used, run;
	int			 cp;

	evbuffer_add(out, "\"", 1);
	while (left > 0) {
		for (run = 0; run < left && p[run] >= 0x20 && p[run] < 0x7f &&
		    p[run] != '"' && p[run] != '\\'; run++)
			;
		if (run > 0) {
			evbuffer_add(out, p, run);
			p += run;
			left -= run;
			continue;
		}
		cp = utf8_codepoint(p, left, &used);
		if (used == 0)		/* a NUL: QEMU's string ends there */
			break;
		p += used;
		left -= used;
		switch (cp) {
		case '"':
			evbuffer_add(out, "\\\"", 2);
			break;
		case '\\':
			evbuffer_add(out, "\\\\", 2);
			break;
		case '\b':
			evbuffer_add(out, "\\b", 2);
			break;
		case '\f':
			evbuffer_add(out, "\\f", 2);
			break;
		case '\n':
			evbuffer_add(out, "\\n", 2);
			break;
		case '\r':
			evbuffer_add(out, "\\r", 2);
			break;
		case '\t':
			evbuffer_add(out, "\\t", 2);
			break;
		default:
			if (cp < 0)
				cp = 0xfffd;
			if (cp > 0xffff)
				evbuffer_add_printf(out, "\\u%04X\\u%04X",
				    0xd800 + ((cp - 0x10000) >> 10),
				    0xdc00 + ((cp - 0x10000) & 0x3ff));
			else
				evbuffer_add_printf(out, "\\u%04X", cp);
			break;
		}
	}
	evbuffer_add(out, "\"", 1);
}

/*
 * A number token as QEMU's parser takes it and its writer writes it: an
 * integer that fits int64_t or uint64_t is written as one, any other
 * number is a double, written with "%.17g" (so 1.0e2 is 100, -0 is 0
 * but -0.0 is -0, and 1e999 is inf).
 */
static void
qmp_write_number(struct evbuffer *out, const char *b, size_t len)
{
	char			 small[64], *tok = small, *end;
	long long		 ll;
	unsigned long long	 ull;

	if (len >= sizeof(small) && (tok = malloc(len + 1)) == NULL)
		fatal("%s", __func__);
	memcpy(tok, b, len);
	tok[len] = '\0';
	if (strcspn(tok, ".eE") == len) {
		errno = 0;
		ll = strtoll(tok, &end, 10);
		if (errno == 0) {
			evbuffer_add_printf(out, "%lld", ll);
			goto out;
		}
		if (tok[0] != '-') {
			errno = 0;
			ull = strtoull(tok, &end, 10);
			if (errno == 0) {
				evbuffer_add_printf(out, "%llu", ull);
				goto out;
			}
		}
	}
	evbuffer_add_printf(out, "%.17g", strtod(tok, NULL));
out:
	if (tok != small)
		free(tok);
}

/* A member of an object being written: its decoded key, QDict order. */
struct qmp_wmember {
	char		*key;
	size_t		 klen;
	struct qmp_span	 val;
	unsigned int	 bucket;
	unsigned int	 seq;
};

static int
qmp_wmember_cmp(const void *a, const void *b)
{
	const struct qmp_wmember	*x = a, *y = b;

	if (x->bucket != y->bucket)
		return (x->bucket < y->bucket ? -1 : 1);
	return (x->seq > y->seq ? -1 : x->seq < y->seq);
}

/*
 * Append the value at span of b (bytes the reader accepted) as QEMU
 * writes back what it parsed (qobject_to_json): strings re-escaped,
 * numbers as above, ": " and ", " between members, which come in its
 * QDict's order.  This is how a client's id comes back from QEMU.
 */
void
qmp_write_value(struct evbuffer *out, const char *b, struct qmp_span span)
{
	struct qmp_wmember	*m = NULL;
	struct qmp_span		 key, val;
	size_t			 end = span.off + span.len, pos = span.off;
	size_t			 n = 0, cap = 0, i, len;
	char			*s;

	switch (qmp_value_type(b, span.off)) {
	case QMP_TYPE_STRING:
		s = qmp_string_decode(b, span, &len);
		qmp_write_string(out, s, len);
		free(s);
		break;
	case QMP_TYPE_NUMBER:
		qmp_write_number(out, b + span.off, span.len);
		break;
	case QMP_TYPE_BOOL:
	case QMP_TYPE_NULL:
		evbuffer_add(out, b + span.off, span.len);
		break;
	case QMP_TYPE_ARRAY:
		evbuffer_add(out, "[", 1);
		for (i = 0; qmp_array_next(b, end, &pos, &val); i++) {
			if (i > 0)
				evbuffer_add(out, ", ", 2);
			qmp_write_value(out, b, val);
		}
		evbuffer_add(out, "]", 1);
		break;
	case QMP_TYPE_OBJECT:
		while (qmp_object_next(b, end, &pos, &key, &val)) {
			if (n == cap)
				qmp_grow(&m, &cap, n + 1, sizeof(*m), 8);
			m[n].key = qmp_string_decode(b, key, &m[n].klen);
			m[n].val = val;
			m[n].bucket = qmp_qdict_bucket(m[n].key, m[n].klen);
			m[n].seq = (unsigned int)n;
			n++;
		}
		if (n > 1)
			qsort(m, n, sizeof(*m), qmp_wmember_cmp);
		evbuffer_add(out, "{", 1);
		for (i = 0; i < n; i++) {
			if (i > 0)
				evbuffer_add(out, ", ", 2);
			qmp_write_string(out, m[i].key, m[i].klen);
			evbuffer_add(out, ": ", 2);
			qmp_write_value(out, b, m[i].val);
			free(m[i].key);
		}
		evbuffer_add(out, "}", 1);
		free(m);
		break;
	}
}

/*
 * Whether the value at span is already written as QEMU would write it,
 * so that it can be taken as it is: a plain double-quoted string of
 * printable ASCII without escapes, or an integer of at most 18 digits
 * with no sign on a zero.  Most ids are one or the other.
 */
int
qmp_value_as_written(const char *b, struct qmp_span span)
{
	const char	*p = b + span.off;
	size_t		 i, len = span.len;

	if (len >= 2 && p[0] == '"') {
		for (i = 1; i < len - 1; i++) {
			if (p[i] < 0x20 || p[i] >= 0x7f || p[i] == '\\' ||
			    p[i] == '"')
				return (0);
		}
		return (1);
	}
	i = len > 0 && p[0] == '-';
	if (len - i == 0 || len - i > 18 || (p[i] == '0' && len - i > 1))
		return (0);
	if (p[i] == '0' && i == 1)
		return (0);
	for (; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return (0);
	}
	return (1);
}
