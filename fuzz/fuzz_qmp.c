/*
 * The QMP framer as both ends use it: QEMU's output as the monitor reads
 * it (greetings, replies, events, garbage) and, with the strict flag, a
 * client's input.  The first byte of the input picks the reader's flags,
 * its bounds and how the rest is split into reads; the rest is the
 * stream.
 *
 * Beyond not crashing, it holds the framer to what the proxy relies on:
 * - the same stream read whole and read in pieces gives the same
 *   messages and errors, in the same order: a message split at any byte
 *   is the same message;
 * - each message is exactly the input bytes that end where the reader
 *   stopped: nothing added, nothing lost, nothing read past its end;
 * - the spans the reader reports lie inside the message, and a message
 *   read again on its own is the same message, as the next reader (QEMU,
 *   or a client) reads what the proxy forwards;
 * - with its id's value replaced, as the proxy sends a command to QEMU,
 *   or its id member cut, as a reply goes to a client that sent none, it
 *   is still one message of the same kind, with the new id or none.
 */
#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "qmp.h"

/* an upstream id as cmd_upstream_id makes one, at its longest numbers */
#define FZ_UPSTREAM_ID	"\"ffffffff.18446744073709551615.2147483647.2261\""
#define FUZZ_EVENTS_MAX	4096

/* What one call of qmp_reader_next gave. */
struct fz_event {
	enum qmp_status	 st;
	char		*buf;		/* the message, or the error */
	size_t		 len;
	enum qmp_kind	 kind;
	struct qmp_span	 id;
	size_t		 end;		/* where it stopped */
};

struct fz_run {
	struct fz_event	 ev[FUZZ_EVENTS_MAX];
	size_t		 n;
};

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* A tiny generator for the split points: the same input, the same cuts. */
static uint32_t
fz_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return (*s);
}

/* Check what the reader says of one message, against its own bytes. */
static void
fz_check_msg(const struct qmp_msg *msg)
{
	const struct qmp_member	*m;
	struct qmp_span		 span;
	int			 i;

	assert(msg->buf != NULL);
	assert(msg->buf[msg->len] == '\0');
	assert(msg->len > 0);
	assert(msg->nmembers >= 0 && msg->nmembers <= QMP_MEMBERS_MAX);
	for (i = 0; i < msg->nmembers; i++) {
		m = &msg->members[i];
		assert(m->key_off < m->key_end);
		assert(m->key_end <= m->val_off);
		assert(m->val_off < m->val_end);
		assert(m->val_end <= msg->len);
		assert(msg->buf[m->key_off] == '"' ||
		    msg->buf[m->key_off] == '\'');
		assert(m->prev_end == 0 || m->prev_end < m->key_off);
		assert(m->next_key == 0 || m->next_key > m->val_end);
		span = qmp_msg_cut_member(msg, i);
		assert(span.off + span.len <= msg->len);
	}
	if (msg->m_id != -1) {
		span = qmp_msg_id(msg);
		assert(span.len > 0 && span.off + span.len < msg->len);
	}
	assert(memchr(msg->name, '\0', sizeof(msg->name)) != NULL);
}

/*
 * Read buf as one stream with a fresh reader, in reads cut by seed
 * (0: all at once), and record what came.
 */
static void
fz_read(const uint8_t *buf, size_t len, int flags, size_t max_size,
    unsigned int depth, uint32_t seed, struct fz_run *run)
{
	struct qmp_reader	*r;
	struct evbuffer		*in;
	struct fz_event		*ev;
	struct qmp_msg		 msg;
	enum qmp_status		 st;
	size_t			 added = 0, n;
	uint32_t		 s = seed;

	if ((r = qmp_reader_new(max_size, depth, flags)) == NULL ||
	    (in = evbuffer_new()) == NULL)
		abort();
	run->n = 0;
	for (;;) {
		st = qmp_reader_next(r, in, &msg);
		if (st == QMP_NEED_MORE) {
			assert(evbuffer_get_length(in) == 0);
			if (added == len)
				break;
			n = len - added;
			if (seed != 0) {
				/* mostly single bytes, some longer reads */
				n = (fz_next(&s) & 3) == 0 ?
				    1 + fz_next(&s) % 64 : 1;
				if (n > len - added)
					n = len - added;
			}
			evbuffer_add(in, buf + added, n);
			added += n;
			continue;
		}
		assert(run->n < FUZZ_EVENTS_MAX);
		ev = &run->ev[run->n++];
		memset(ev, 0, sizeof(*ev));
		ev->st = st;
		ev->end = added - evbuffer_get_length(in);
		if (st == QMP_MESSAGE) {
			fz_check_msg(&msg);
			/* exactly the bytes ending where the reader stopped */
			assert(msg.len <= ev->end);
			assert(memcmp(msg.buf, buf + ev->end - msg.len,
			    msg.len) == 0);
			ev->kind = msg.kind;
			ev->id = qmp_msg_id(&msg);
			ev->len = msg.len;
			ev->buf = qmp_msg_steal(&msg);
		} else {
			if ((ev->buf = strdup(qmp_reader_error(r))) == NULL)
				abort();
			ev->len = strlen(ev->buf);
			/* the callers close the connection there */
			if (st == QMP_ERR_SIZE)
				break;
		}
		if (run->n == FUZZ_EVENTS_MAX)
			break;
	}
	evbuffer_free(in);
	qmp_reader_free(r);
}

static void
fz_run_clear(struct fz_run *run)
{
	size_t	i;

	for (i = 0; i < run->n; i++)
		free(run->ev[i].buf);
	run->n = 0;
}

/*
 * A message read again alone, as the proxy forwards it (its bytes and
 * "\r\n") by a fresh reader: one message, the same.  Then with its id
 * changed as the proxy changes it.
 */
static void
fz_reread(const struct fz_event *ev, int flags)
{
	static struct fz_run	 again;
	struct evbuffer		*b;
	char			*wire;
	size_t			 wlen;

	if ((b = evbuffer_new()) == NULL)
		abort();
	evbuffer_add(b, ev->buf, ev->len);
	evbuffer_add(b, "\r\n", 2);
	wlen = evbuffer_get_length(b);
	wire = (char *)evbuffer_pullup(b, -1);
	fz_read((const uint8_t *)wire, wlen, flags, QMP_SIZE_MAX, 1024, 0,
	    &again);
	if (again.n != 1 || again.ev[0].st != QMP_MESSAGE) {
		fprintf(stdout, "fuzz_qmp: read alone, not one message: "
		    "%.*s\n", (int)ev->len, ev->buf);
		fflush(stdout);
		abort();
	}
	assert(again.ev[0].len == ev->len);
	assert(memcmp(again.ev[0].buf, ev->buf, ev->len) == 0);
	assert(again.ev[0].kind == ev->kind);
	assert(again.ev[0].id.off == ev->id.off &&
	    again.ev[0].id.len == ev->id.len);
	fz_run_clear(&again);
	evbuffer_free(b);

	if (ev->id.len == 0)
		return;
	/* the id's value replaced by the proxy's (cmd_upstream_id) */
	if ((b = evbuffer_new()) == NULL)
		abort();
	evbuffer_add(b, ev->buf, ev->id.off);
	evbuffer_add(b, FZ_UPSTREAM_ID, strlen(FZ_UPSTREAM_ID));
	evbuffer_add(b, ev->buf + ev->id.off + ev->id.len,
	    ev->len - ev->id.off - ev->id.len);
	evbuffer_add(b, "\r\n", 2);
	wlen = evbuffer_get_length(b);
	wire = (char *)evbuffer_pullup(b, -1);
	fz_read((const uint8_t *)wire, wlen, flags, QMP_SIZE_MAX, 1024, 0,
	    &again);
	assert(again.n == 1 && again.ev[0].st == QMP_MESSAGE);
	assert(again.ev[0].kind == ev->kind);
	assert(again.ev[0].id.off == ev->id.off &&
	    again.ev[0].id.len == strlen(FZ_UPSTREAM_ID));
	assert(memcmp(again.ev[0].buf + ev->id.off, FZ_UPSTREAM_ID,
	    strlen(FZ_UPSTREAM_ID)) == 0);
	fz_run_clear(&again);
	evbuffer_free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz_run	 whole, split;
	size_t			 i, max_size;
	unsigned int		 depth;
	uint32_t		 seed;
	int			 flags;

	if (size < 1)
		return (0);
	/* bit 0: strict (a client's input); bits 1-2: tight bounds */
	flags = (data[0] & 1) ? QMP_READ_STRICT : 0;
	max_size = (data[0] & 2) ? 64 + data[0] : QMP_SIZE_MAX;
	depth = (data[0] & 4) ? 1 + (data[0] >> 5) : QMP_DEPTH_MAX;
	seed = 0x9e3779b9u ^ data[0] ^ (uint32_t)size << 8;
	data++;
	size--;

	fz_read(data, size, flags, max_size, depth, 0, &whole);
	fz_read(data, size, flags, max_size, depth, seed, &split);
	/* the same messages and errors, wherever the reads were cut */
	assert(whole.n == split.n);
	for (i = 0; i < whole.n; i++) {
		assert(whole.ev[i].st == split.ev[i].st);
		/* past the size cap the connection is closed: no next byte */
		assert(whole.ev[i].end == split.ev[i].end ||
		    whole.ev[i].st == QMP_ERR_SIZE);
		assert(whole.ev[i].len == split.ev[i].len);
		assert(memcmp(whole.ev[i].buf, split.ev[i].buf,
		    whole.ev[i].len) == 0);
		if (whole.ev[i].st == QMP_MESSAGE)
			fz_reread(&whole.ev[i], flags);
	}
	fz_run_clear(&whole);
	fz_run_clear(&split);
	return (0);
}
