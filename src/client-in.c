/*
 * A client's input, kept where a crash cannot take it: every byte read
 * from the client goes by the kernel into a ring of its own spool
 * (spool.c), and a message leaves the ring only once it can never be
 * needed again, so that a qmpmuxd started after a kill -9 reads again
 * whatever the one before had read and not finished with: commands
 * queued, a half-sent command, replies of the proxy's own not yet
 * given to the client.
 *
 * What is read is copied on into c->in, where the client's reader
 * frames it as before; each message or error it frames is a span of
 * the ring, from the end of the one before to its own end.  A span is
 * done when its command is sent to QEMU (the VM's table of commands
 * sent keeps it from then on, state-store.c, and names where its bytes
 * end, so that a take-over does not send it again), or when its reply
 * is in the client's output (client_put).  Spans leave the ring in
 * order: the head moves past every done span before the first that is
 * not, in one commit.
 *
 * A span's owners are what it waits for: a command of its not yet sent
 * or answered (cmd.c), a reply of the proxy's held for it behind the
 * client's earlier commands (client.c).  A message handled at once,
 * owned by neither, is done as soon as it is handled.
 *
 * A message that crashes qmpmuxd is still in the ring after the crash,
 * and would crash the take-over, and the next, for ever, while libvirt
 * waits on sockets nobody serves.  So a word of the spool's header says
 * where the message being read or handled starts, from before the
 * reader sees it until it is handled.  A take-over that finds it set
 * counts a strike against that message; at the second, what the ring
 * holds from there is dropped (written over with whitespace), the
 * client is told, and every other connection goes on.
 */
#include "config.h"

#include <sys/uio.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "qmpmux.h"

/* a ring holds a whole message of max_client_message and a few reads */
#define CLIENT_IN_SLACK		(4 * SPOOL_PIPE_MAX)

/* the words of a client's spool (spool_word) */
#define CLIENT_IN_READING	0	/* 1 + where the message being read
					   or handled starts; 0: none */
#define CLIENT_IN_SUSPECT	1	/* what a take-over found in it */
#define CLIENT_IN_STRIKES	2	/* take-overs that found the same */
#define CLIENT_IN_BLANK_AT	3	/* 1 + where a span being blanked
					   starts; 0: none */
#define CLIENT_IN_BLANK_LEN	4	/* and its length */
#define CLIENT_IN_STRIKES_MAX	2	/* then what it names is dropped */

static void	client_in_cb(int, short, void *);
static size_t	client_in_suspect(struct client *);
static void	client_in_blank_redo(struct client *);
static void	client_in_fill(struct client *, size_t, size_t);

/* The capacity of a client's ring, for the VM's max_client_message. */
static size_t
client_in_cap(const struct client *c)
{
	size_t	 cap = c->vm->conf.max_client_message + CLIENT_IN_SLACK;

	return (cap > SPOOL_CAP_MAX ? SPOOL_CAP_MAX : cap);
}

/*
 * The client's input goes through sp, the spool of the process before,
 * or through a new one (sp NULL).  After a crash (reread) its ring holds
 * what the client sent and that process had not finished with, read
 * again now; after a restart in place, the state carries that (its
 * commands, its held replies, the input not yet read), and the ring is
 * emptied for it.  -1 if there is no memory for one: the client cannot
 * be served.
 */
int
client_in_init(struct client *c, int fd, struct spool *sp, int reread)
{
	size_t	 caps[2];
	int	 out[2] = { 0, 1 };

	caps[CLIENT_IN_RING] = client_in_cap(c);
	caps[CLIENT_OUT_RING] = client_out_cap(c->vm);
	/* its rings are where this process looks for them, or it is new */
	if (sp != NULL && (spool_nrings(sp) != 2 ||
	    spool_ring_out(sp, CLIENT_IN_RING) ||
	    !spool_ring_out(sp, CLIENT_OUT_RING))) {
		vm_log(c->vm, LOG_WARNING, "client %d: its spool is not a "
		    "client's; what it held is lost", c->id);
		spool_free(sp);
		sp = NULL;
	}
	if (sp == NULL && (sp = spool_create(2, caps, out)) == NULL)
		return (-1);
	c->spool = sp;
	c->in_suspect = 0;
	if (reread) {
		client_in_blank_redo(c);
		c->in_dropped = client_in_suspect(c);
	} else if (spool_used(sp, 0) > 0) {
		/* the state carries it; the out ring is sent on as it is */
		if (spool_take(sp, 0, spool_used(sp, 0)) == -1)
			fatalx("%s: the client's ring lost its place",
			    __func__);
		client_out_commit(c);
	}
	if ((c->in = evbuffer_new()) == NULL ||
	    (c->rd = event_new(c->vm->base, fd, EV_READ | EV_PERSIST,
	    client_in_cb, c)) == NULL)
		fatalx("%s: out of memory", __func__);
	TAILQ_INIT(&c->spans);
	c->in_head = c->in_fed = 0;
	/* what the ring holds is read again first */
	client_in_feed(c);
	c->in_reread = c->in_fed;
	return (0);
}

/*
 * A take-over: whether the process before died reading or handling a
 * message of the client's.  The second take-over that finds the same
 * one drops what the ring holds from its start (whitespace in its
 * place, so that the reader reads on); the bytes dropped, or 0.  The
 * words are hostile input like the rest of the spool: a position that
 * is not one of what the ring holds is logged and ignored.
 */
static size_t
client_in_suspect(struct client *c)
{
	struct spool	*sp = c->spool;
	uint64_t	 at = spool_word(sp, CLIENT_IN_READING), strikes;
	ssize_t		 off;
	size_t		 n;

	if (at == 0)
		return (0);
	strikes = spool_word(sp, CLIENT_IN_SUSPECT) == at ?
	    spool_word(sp, CLIENT_IN_STRIKES) + 1 : 1;
	spool_set_word(sp, CLIENT_IN_SUSPECT, at);
	spool_set_word(sp, CLIENT_IN_STRIKES, strikes);
	if (at > INT64_MAX || (off = spool_offset(sp, 0, (int64_t)(at -
	    1))) == -1) {
		spool_set_word(sp, CLIENT_IN_READING, 0);
		vm_log(c->vm, LOG_WARNING, "client %d: its spool names a "
		    "message that is not in its ring; ignored", c->id);
		return (0);
	}
	if (strikes < CLIENT_IN_STRIKES_MAX) {
		spool_set_word(sp, CLIENT_IN_READING, 0);
		/* once read past, it was not what crashed it */
		c->in_suspect = 1;
		c->in_suspect_off = (uint64_t)off;
		vm_log(c->vm, LOG_WARNING, "client %d: qmpmuxd died while "
		    "reading or handling what it sent; it is read again",
		    c->id);
		return (0);
	}
	/*
	 * Written over as any span is (client_in_fill), the words cleared
	 * after: a crash in between finds the same one again.
	 */
	n = spool_used(sp, 0) - (size_t)off;
	client_in_fill(c, (size_t)off, n);
	spool_set_word(sp, CLIENT_IN_SUSPECT, 0);
	spool_set_word(sp, CLIENT_IN_STRIKES, 0);
	spool_set_word(sp, CLIENT_IN_READING, 0);
	vm_log(c->vm, LOG_ERR, "client %d: qmpmuxd died %llu times reading "
	    "or handling what it sent: the %zu bytes from there are dropped",
	    c->id, (unsigned long long)strikes, n);
	return (n);
}

/*
 * Write whitespace over the ring from off, len bytes: the words name
 * them first, so that a take-over finishes what a crash cut short
 * (client_in_blank_redo), and the reader never meets half a message.
 */
static void
client_in_fill(struct client *c, size_t off, size_t len)
{
	struct spool	*sp = c->spool;

	/* with the reply put for it, if any: a crash keeps both or neither */
	if (spool_word_txn(sp, CLIENT_IN_BLANK_LEN, len) == -1 ||
	    spool_word_txn(sp, CLIENT_IN_BLANK_AT, 1 +
	    (uint64_t)spool_at(sp, 0, off)) == -1)
		fatalx("%s: the client's spool lost its place", __func__);
	client_out_commit(c);
	spool_fill(sp, 0, off, len, ' ');
	spool_set_word(sp, CLIENT_IN_BLANK_AT, 0);
}

/*
 * A take-over: a blanking the process before did not finish is done
 * now, before anything is read.  The words are hostile input: a span
 * that is not within what the ring holds is logged and left.
 */
static void
client_in_blank_redo(struct client *c)
{
	struct spool	*sp = c->spool;
	uint64_t	 at = spool_word(sp, CLIENT_IN_BLANK_AT);
	uint64_t	 len = spool_word(sp, CLIENT_IN_BLANK_LEN);
	ssize_t		 off;

	if (at == 0)
		return;
	if (at > INT64_MAX || (off = spool_offset(sp, 0, (int64_t)(at -
	    1))) == -1 || len > spool_used(sp, 0) - (size_t)off) {
		vm_log(c->vm, LOG_WARNING, "client %d: its spool names a "
		    "span to blank that is not in its ring; ignored", c->id);
		spool_set_word(sp, CLIENT_IN_BLANK_AT, 0);
		return;
	}
	client_in_fill(c, (size_t)off, (size_t)len);
}

/*
 * The client's reader is about to read a message, or has handled it
 * (on 0): the spool's word says where it starts, or that there is none.
 */
void
client_in_reading(struct client *c, int on)
{
	struct client_span	*s;
	uint64_t		 start;

	if (!on) {
		spool_set_word(c->spool, CLIENT_IN_READING, 0);
		return;
	}
	s = TAILQ_LAST(&c->spans, client_spans);
	start = s != NULL ? s->end : c->in_head;
	spool_set_word(c->spool, CLIENT_IN_READING, 1 +
	    (uint64_t)spool_at(c->spool, 0, (size_t)(start - c->in_head)));
}

void
client_in_free(struct client *c)
{
	struct client_span	*s;

	while ((s = TAILQ_FIRST(&c->spans)) != NULL) {
		TAILQ_REMOVE(&c->spans, s, entry);
		free(s);
	}
	if (c->rd != NULL)
		event_free(c->rd);
	if (c->in != NULL)
		evbuffer_free(c->in);
	spool_free(c->spool);
	c->rd = NULL;
	c->in = NULL;
	c->spool = NULL;
}

/* Read from the client, or stop (client.c decides when). */
void
client_in_read(struct client *c, int on)
{
	c->in_reading = on;
	if (on && !c->in_full)
		event_add(c->rd, NULL);
	else
		event_del(c->rd);
}

/* Copy what the ring holds past what c->in was given into c->in. */
void
client_in_feed(struct client *c)
{
	struct iovec	 iov[2];
	size_t		 skip, len;
	int		 i;

	spool_peek(c->spool, 0, iov);
	skip = (size_t)(c->in_fed - c->in_head);
	for (i = 0; i < 2; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		len = iov[i].iov_len - skip;
		if (evbuffer_add(c->in, (char *)iov[i].iov_base + skip, len) ==
		    -1)
			fatal("%s", __func__);
		c->in_fed += len;
		skip = 0;
	}
}

/*
 * The client's socket is readable: the kernel moves what it has into
 * the ring, and the client reads it from there.
 */
static void
client_in_cb(int fd, short events, void *arg)
{
	struct client	*c = arg;
	ssize_t		 n;

	n = spool_recv(c->spool, 0, fd);
	if (n > 0) {
		client_in_feed(c);
		client_read(c);
		return;
	}
	if (n == 0) {
		event_del(c->rd);
		client_input_ended(c);
		return;
	}
	if (errno == EAGAIN || errno == EINTR)
		return;
	if (errno == ENOBUFS) {
		/* read again once spans leave it (client_in_take) */
		c->in_full = 1;
		event_del(c->rd);
		return;
	}
	client_close(c, "%s", strerror(errno));
}

/*
 * The reader has framed a message or an error, whose bytes end where
 * c->in now starts: a new span, owned by its handler until it is
 * handled (client_in_release).
 */
struct client_span *
client_in_span(struct client *c)
{
	struct client_span	*s;
	uint64_t		 end;

	end = c->in_fed - evbuffer_get_length(c->in);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		fatal("%s", __func__);
	s->end = end;
	s->at = spool_at(c->spool, 0, (size_t)(end - c->in_head));
	s->owners = 1;
	TAILQ_INSERT_TAIL(&c->spans, s, entry);
	return (s);
}

/*
 * The reader holds nothing of a message: whatever it took since the
 * last span was whitespace, which leaves the ring with the spans
 * before it.
 */
void
client_in_idle(struct client *c)
{
	struct client_span	*s;
	uint64_t		 end;

	end = c->in_fed - evbuffer_get_length(c->in);
	s = TAILQ_LAST(&c->spans, client_spans);
	if (end == (s != NULL ? s->end : c->in_head))
		return;
	client_in_release(c, client_in_span(c));
}

/*
 * Move the ring's head past every done span before the first that is
 * not, in one commit; read again if the ring was full.
 */
static void
client_in_take(struct client *c)
{
	struct client_span	*s;
	uint64_t		 to = c->in_head;

	while ((s = TAILQ_FIRST(&c->spans)) != NULL && s->done) {
		to = s->end;
		TAILQ_REMOVE(&c->spans, s, entry);
		free(s);
	}
	if (to == c->in_head)
		return;
	/* with the replies put for them: a crash keeps both or neither */
	if (spool_take(c->spool, 0, (size_t)(to - c->in_head)) == -1)
		fatalx("%s: the client's ring lost its place", __func__);
	client_out_commit(c);
	c->in_head = to;
	if (c->in_full) {
		c->in_full = 0;
		if (c->in_reading)
			event_add(c->rd, NULL);
	}
}

/*
 * A span is done: it leaves the ring once those before it have.  One
 * done before them (answered at once, or sent, past a command that
 * waits) is written over with whitespace now, so that a take-over
 * after a crash does not handle it again.
 */
void
client_in_done(struct client *c, struct client_span *s)
{
	struct client_span	*prev;
	uint64_t		 start;

	if (s == NULL || s->done)
		return;
	s->done = 1;
	if (s != TAILQ_FIRST(&c->spans)) {
		prev = TAILQ_PREV(s, client_spans, entry);
		start = prev->end;
		client_in_fill(c, (size_t)(start - c->in_head),
		    (size_t)(s->end - start));
		return;
	}
	client_in_take(c);
}

/*
 * What s waits for is over: done once nothing else holds it.  The
 * first release is its handler's: if a crash was suspected of it, it
 * was not what crashed the process, and its strike is forgotten.
 */
void
client_in_release(struct client *c, struct client_span *s)
{
	if (s == NULL)
		return;
	if (c->in_suspect && s->end > c->in_suspect_off) {
		spool_set_word(c->spool, CLIENT_IN_SUSPECT, 0);
		spool_set_word(c->spool, CLIENT_IN_STRIKES, 0);
		c->in_suspect = 0;
	}
	if (s->owners > 0)
		s->owners--;
	/* its reply may wait past the out ring: it leaves with that */
	if (s->owners == 0 && !client_out_hold(c, s))
		client_in_done(c, s);
}

/*
 * A restart in place: what had been read from the client and not
 * framed goes into its ring before anything new, as if read now.  -1
 * if the ring has no room for it.
 */
int
client_in_put(struct client *c, const void *buf, size_t len)
{
	struct iovec	 iov;

	iov.iov_base = (void *)(uintptr_t)buf;
	iov.iov_len = len;
	if (spool_room(c->spool, 0) < len)
		return (-1);
	if (spool_put(c->spool, 0, &iov, 1) == -1)
		fatalx("%s: the client's ring lost its place", __func__);
	client_out_commit(c);
	client_in_feed(c);
	return (0);
}
