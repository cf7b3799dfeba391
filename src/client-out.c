/*
 * A client's output, kept where a crash cannot take it: every byte for
 * the client goes into the out ring of its spool (spool.c), and the
 * kernel sends from there (sendfile), moving the ring's head as it
 * sends, so that a qmpmuxd started after a kill -9 sends on from the
 * byte the one before had not sent: a reply or an event put in the ring
 * reaches the client once, and a message half sent goes on where it
 * stopped.
 *
 * What is put is committed with the spool's next commit: the one that
 * takes the message it answers out of the client's input ring
 * (client-in.c), when there is one, so that a crash leaves either the
 * question in the input, or the answer in the output, never both and
 * never neither.  Sending waits for the loop's next turn of active
 * events (c->wr), after the caller has let go of the message; it costs
 * no poll.
 *
 * What does not fit waits in memory (out_more), in order, and goes into
 * the ring as it drains: a client that reads nothing holds no more of
 * the ring than its capacity (max_client_output and a margin), and what
 * waits past it dies with the process.  A piece larger than the whole
 * ring goes in parts, and a crash may cut it.
 *
 * Events are shared by every client (vm.c): a batch is copied into the
 * ring and its reference given back once the kernel has sent its last
 * byte, so that the VM's backlog counts what clients have not been
 * sent, as it did when output was a buffer of references.
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

/*
 * A piece of output: bytes of the client's own (copied into data), or
 * an event batch by reference, given back (cleanup) once sent.
 */
struct client_piece {
	const char		*buf;
	size_t			 len;
	size_t			 off;		/* put in the ring so far */
	uint64_t		 end;		/* stream offset of its end */
	void			(*cleanup)(const void *, size_t, void *);
	void			*arg;
	struct client_span	*spans;		/* done once it is in */
	TAILQ_ENTRY(client_piece) entry;
	char			 data[];
};

static void	client_out_cb(int, short, void *);
static void	client_out_idle_cb(int, short, void *);
static void	client_out_unhold(struct client *, struct client_piece *);
static void	client_out_idle(struct client *);
static int	client_out_send(struct client *);

/* The capacity of a client's out ring, for the VM's max_client_output. */
size_t
client_out_cap(const struct vm *vm)
{
	size_t	 cap = vm->conf.max_client_output + CLIENT_OUT_SLACK;

	if (cap > SPOOL_CAP_MAX)
		cap = SPOOL_CAP_MAX;
	/* a ring sent from is of whole pages */
	return ((cap + 4095) / 4096 * 4096);
}

/* The client's output goes to fd, through ring 1 of c->spool. */
void
client_out_init(struct client *c, int fd)
{
	c->fd = fd;
	TAILQ_INIT(&c->out_more);
	TAILQ_INIT(&c->out_refs);
	if ((c->wr = event_new(c->vm->base, fd, EV_WRITE, client_out_cb,
	    c)) == NULL || (c->out_idle = evtimer_new(c->vm->base,
	    client_out_idle_cb, c)) == NULL)
		fatalx("%s: out of memory", __func__);
	/* what the process before had not sent goes first */
	c->out_total = spool_used(c->spool, CLIENT_OUT_RING);
	if (c->out_total > 0)
		event_active(c->wr, EV_WRITE, 1);
}

static void
client_out_piece_free(struct client_piece *p)
{
	if (p->cleanup != NULL)
		p->cleanup(p->buf, p->len, p->arg);
	free(p);
}

/* Give back what the client holds; its socket stays the caller's. */
void
client_out_free(struct client *c)
{
	struct client_piece	*p;

	while ((p = TAILQ_FIRST(&c->out_refs)) != NULL) {
		TAILQ_REMOVE(&c->out_refs, p, entry);
		client_out_piece_free(p);
	}
	while ((p = TAILQ_FIRST(&c->out_more)) != NULL) {
		TAILQ_REMOVE(&c->out_more, p, entry);
		client_out_piece_free(p);
	}
	if (c->wr != NULL)
		event_free(c->wr);
	if (c->out_idle != NULL)
		event_free(c->out_idle);
	c->wr = c->out_idle = NULL;
	c->out_more_len = 0;
}

/* The bytes of output the client has not been sent. */
size_t
client_out_len(const struct client *c)
{
	return ((size_t)(c->out_total - c->out_sent));
}

/* Room in the ring past what this transaction put already. */
static size_t
client_out_room(const struct client *c)
{
	size_t	 room = spool_room(c->spool, CLIENT_OUT_RING);

	return (room > c->out_pending ? room - c->out_pending : 0);
}

/*
 * Commit the spool's transaction: what the client's input gives up and
 * what its output gains, at once.
 */
void
client_out_commit(struct client *c)
{
	if (spool_commit(c->spool) == -1)
		fatalx("vm %s: client %d: its spool lost its place",
		    c->vm->name, c->id);
	c->out_pending = 0;
}

/* Sent from the loop's next turn of active events, once. */
static void
client_out_kick(struct client *c)
{
	if (!c->out_kicked) {
		c->out_kicked = 1;
		event_active(c->wr, EV_WRITE, 1);
	}
}

/* Put iov[0, n), len bytes, in the ring: the caller saw it fits. */
static void
client_out_ring(struct client *c, const struct iovec *iov, int n,
    size_t len)
{
	if (spool_put(c->spool, CLIENT_OUT_RING, iov, n) == -1)
		fatalx("%s: the client's out ring lost its place", __func__);
	c->out_pending += len;
}

static struct client_piece *
client_out_piece(struct client *c, size_t datalen)
{
	struct client_piece	*p;

	if ((p = calloc(1, sizeof(*p) + datalen)) == NULL)
		fatal("%s", __func__);
	p->end = c->out_total;
	return (p);
}

/* Bytes for the client, after everything before them. */
void
client_out_put(struct client *c, const struct iovec *iov, int n)
{
	struct client_piece	*p;
	size_t			 len = 0, off = 0;
	int			 i;

	for (i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (len == 0)
		return;
	c->out_total += len;
	if (TAILQ_EMPTY(&c->out_more) && client_out_room(c) >= len)
		client_out_ring(c, iov, n, len);
	else {
		p = client_out_piece(c, len);
		for (i = 0; i < n; i++) {
			if (iov[i].iov_len == 0)
				continue;
			memcpy(p->data + off, iov[i].iov_base, iov[i].iov_len);
			off += iov[i].iov_len;
		}
		p->buf = p->data;
		p->len = len;
		TAILQ_INSERT_TAIL(&c->out_more, p, entry);
		c->out_more_len += len;
	}
	client_out_kick(c);
}

/* A batch of events by reference, given back with cleanup once sent. */
void
client_out_ref(struct client *c, const void *buf, size_t len,
    void (*cleanup)(const void *, size_t, void *), void *arg)
{
	struct client_piece	*p;
	struct iovec		 iov;

	c->out_total += len;
	p = client_out_piece(c, 0);
	p->buf = buf;
	p->len = len;
	p->cleanup = cleanup;
	p->arg = arg;
	if (TAILQ_EMPTY(&c->out_more) && client_out_room(c) >= len) {
		iov.iov_base = (void *)(uintptr_t)buf;
		iov.iov_len = len;
		client_out_ring(c, &iov, 1, len);
		p->off = len;
		TAILQ_INSERT_TAIL(&c->out_refs, p, entry);
	} else {
		TAILQ_INSERT_TAIL(&c->out_more, p, entry);
		c->out_more_len += len;
	}
	client_out_kick(c);
}

/*
 * Move what waits in memory into the ring, as much as fits: whole
 * pieces, and, into an empty ring (split), a piece larger than the
 * ring in parts: a piece is never cut but for that.  Whether any
 * moved.
 */
static int
client_out_refill(struct client *c, int split)
{
	struct client_piece	*p;
	struct iovec		 iov;
	size_t			 room, left, cap;
	int			 moved = 0;

	/* the ring's, as made: the configuration may have changed since */
	cap = spool_cap(c->spool, CLIENT_OUT_RING) - 1;
	while ((p = TAILQ_FIRST(&c->out_more)) != NULL) {
		room = client_out_room(c);
		left = p->len - p->off;
		if (room < left && (!split || room == 0 || left <= cap / 2))
			break;
		iov.iov_base = (void *)(uintptr_t)(p->buf + p->off);
		iov.iov_len = left < room ? left : room;
		client_out_ring(c, &iov, 1, iov.iov_len);
		p->off += iov.iov_len;
		c->out_more_len -= iov.iov_len;
		moved = 1;
		if (p->off < p->len)
			break;
		TAILQ_REMOVE(&c->out_more, p, entry);
		client_out_unhold(c, p);
		if (p->cleanup != NULL)
			TAILQ_INSERT_TAIL(&c->out_refs, p, entry);
		else
			free(p);
	}
	return (moved);
}

/*
 * A message whose handling is over (client-in.c) while output waits in
 * memory: its reply, if it has one, is there, and would die with the
 * process, so the message stays in the input ring until the last piece
 * now waiting is in the out ring, and leaves in the commit that puts
 * it.  A crash then answers it again, rather than never.  Whether it
 * waits so.
 */
int
client_out_hold(struct client *c, struct client_span *s)
{
	struct client_piece	*p;

	if ((p = TAILQ_LAST(&c->out_more, client_pieces)) == NULL)
		return (0);
	s->owners = 1;
	s->wait_next = p->spans;
	p->spans = s;
	return (1);
}

/* A piece is in the ring: the messages it held leave the input with it. */
static void
client_out_unhold(struct client *c, struct client_piece *p)
{
	struct client_span	*s;

	while ((s = p->spans) != NULL) {
		p->spans = s->wait_next;
		s->owners = 0;
		client_in_done(c, s);
	}
}

/* Give back the event batches the kernel has sent the last byte of. */
static void
client_out_release(struct client *c)
{
	struct client_piece	*p;

	while ((p = TAILQ_FIRST(&c->out_refs)) != NULL &&
	    p->end <= c->out_sent) {
		TAILQ_REMOVE(&c->out_refs, p, entry);
		client_out_piece_free(p);
	}
}

/*
 * Commit what was put, and send what the ring holds, refilling it from
 * memory, until both are empty or the socket takes no more (then the
 * write event waits for it).  0, or an errno of the socket's.
 */
static int
client_out_send(struct client *c)
{
	ssize_t	 n;
	int	 full, moved;

	c->out_kicked = 0;
	for (;;) {
		client_out_commit(c);
		n = spool_send(c->spool, CLIENT_OUT_RING, c->fd);
		if (n > 0) {
			c->out_sent += (uint64_t)n;
			client_out_release(c);
		}
		if (n == -1 && errno != EAGAIN)
			return (errno);
		/* what it did not send, the socket had no room for */
		full = spool_used(c->spool, CLIENT_OUT_RING) > 0;
		/* the ring takes what waits as soon as it has room */
		moved = client_out_refill(c, !full);
		if (full) {
			client_out_commit(c);
			event_add(c->wr, NULL);
			return (0);
		}
		if (!moved) {
			client_out_idle(c);
			return (0);
		}
	}
}

/*
 * The ring is empty: if it is empty still when the timer (armed once
 * for CLIENT_OUT_IDLE seconds) fires, its pages are given back.  Not at
 * once: a client that reads as fast as it is written to empties its
 * ring at every send, and each page given back is one more to map at
 * the next write.
 */
static void
client_out_idle(struct client *c)
{
	struct timeval	 tv = { CLIENT_OUT_IDLE, 0 };

	if (!evtimer_pending(c->out_idle, NULL))
		evtimer_add(c->out_idle, &tv);
}

static void
client_out_idle_cb(int fd, short events, void *arg)
{
	struct client	*c = arg;

	/* bytes put and not yet committed lie past the tail: not then */
	if (spool_used(c->spool, CLIENT_OUT_RING) == 0 && c->out_pending == 0)
		spool_trim(c->spool, CLIENT_OUT_RING);
}

static void
client_out_cb(int fd, short events, void *arg)
{
	struct client	*c = arg;

	client_written(c, client_out_send(c));
}

/*
 * The loop has stopped (vm_free): the socket takes what it can of the
 * output now.
 */
void
client_out_now(struct client *c)
{
	(void)client_out_send(c);
}

/*
 * A restart in place: what waits in memory, which the state carries;
 * the ring goes with the spool, with what was put in it and not yet
 * committed (a reply put in this turn of the loop, sent at its end).
 */
void
client_out_spill(struct client *c, struct evbuffer *b)
{
	const struct client_piece	*p;

	client_out_commit(c);

	TAILQ_FOREACH(p, &c->out_more, entry) {
		if (evbuffer_add(b, p->buf + p->off, p->len - p->off) == -1)
			fatal("%s", __func__);
	}
}
