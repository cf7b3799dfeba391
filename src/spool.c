/*
 * Spools: byte rings in a memfd that outlive the process, so that what
 * qmpmuxd has taken from a socket and not yet delivered survives a
 * kill -9 exactly once, neither lost nor written twice.
 *
 * SIGKILL is acted on when the process returns from the kernel, so a
 * process that writes a socket and then records how much it wrote dies,
 * most often, between the two: the bytes are gone and the record says
 * they are not.  No store of ours after a syscall can close that gap,
 * so every transfer across a socket's edge is made by the kernel, which
 * also moves the ring's position, in the same syscall:
 *   - out: sendfile(sock, memfd, &ring->head, n) sends from the ring
 *     and writes the new head into the ring's header (put_user, before
 *     the syscall returns);
 *   - in: splice(sock, pipe) moves bytes out of the socket into the
 *     spool's pipe, and splice(pipe, memfd, &ring->tail, n) into the
 *     ring, each whole or not at all.  The pipe is kept with the memfd
 *     (in the fd store), and the ring it was filling is named in the
 *     header first, so what a crash leaves in it goes on into that ring.
 * What moves between rings is ours alone (a message read in one ring
 * goes out in others): it is one transaction, a redo record of the
 * positions it sets, committed by one aligned store of its number and
 * then applied; a process that finds a committed record not applied
 * applies it again, which sets the same positions.  So the rings'
 * contents and positions are, after any kill, a state the process
 * could have stopped in cleanly.
 *
 * A position is an offset in the memfd, in [base, base + cap); one at
 * base + cap, where the kernel leaves a transfer that reached the end,
 * means base.  A ring keeps one byte free, so head == tail is empty.
 * Whatever the memfd holds is checked before it is used (spool_open):
 * after a crash it is input like any other.
 */
#include "config.h"

#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qmpmux.h"

#define SPOOL_MAGIC	0x6c6f6f7073786d71ULL	/* "qmxspool" */
#define SPOOL_VERSION	3
#define SPOOL_TXN_MAX	64	/* positions one transaction sets */
#define SPOOL_PIPE_NONE	UINT32_MAX
#define SPOOL_ALIGN	4096
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23	/* Linux 5.14 */
#endif

/* A ring's header: head and tail are written by the kernel too. */
struct spool_ring {
	int64_t		 head;		/* first byte not yet consumed */
	int64_t		 tail;		/* first byte not yet written */
	int64_t		 base;
	int64_t		 cap;
	uint32_t	 out;		/* sent from with sendfile */
	uint32_t	 pad;
};

/*
 * A value a transaction sets: a ring's end (which ring, which end,
 * where), or a word of the user's (which, its value).
 */
struct spool_set {
	uint32_t	 ring;		/* or the word's index */
	uint32_t	 tail;		/* SPOOL_HEAD, SPOOL_TAIL, SPOOL_WORD */
	int64_t		 pos;		/* or the word's value */
};
#define SPOOL_HEAD	0
#define SPOOL_TAIL	1
#define SPOOL_WORD	2

struct spool_hdr {
	uint64_t	 magic;
	uint32_t	 version;
	uint32_t	 nrings;
	uint64_t	 size;		/* of the memfd */
	uint64_t	 committed;	/* the record's number, once whole */
	uint64_t	 applied;	/* the last record applied */
	uint32_t	 nset;
	uint32_t	 pipe_ring;	/* the ring the pipe fills */
	uint64_t	 user[SPOOL_USER];	/* the user's, never checked */
	struct spool_set set[SPOOL_TXN_MAX];
	struct spool_ring ring[];
};

/*
 * What this process knows of a ring: sent from, the pages sent since it
 * last punched ([dirty, the head's page), dirty -1: none), lost in a
 * crash (spool_open punches them all); read into, the bytes consumed
 * since it last punched (spool_punch_taken).
 */
struct spool_mem {
	int64_t			 dirty;
	int64_t			 moved;
};

struct spool {
	int			 fd;
	int			 pipe[2];
	struct spool_hdr	*hdr;
	size_t			 size;
	/* the transaction being built: nothing shared changes until commit */
	struct spool_set	 set[SPOOL_TXN_MAX];
	uint32_t		 nset;
	int			 failed;
	struct spool_mem	*mem;		/* a ring's, of this process */
};

/* The kernel and a process killed at any instruction see stores in order. */
#define SPOOL_STORE(p, v)	__atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define SPOOL_LOAD(p)		__atomic_load_n((p), __ATOMIC_SEQ_CST)

static size_t
spool_hdr_size(size_t nrings)
{
	size_t	 len;

	len = sizeof(struct spool_hdr) + nrings * sizeof(struct spool_ring);
	return ((len + SPOOL_ALIGN - 1) / SPOOL_ALIGN * SPOOL_ALIGN);
}

/* A position at the end is the base: where a transfer that filled it stops. */
static int64_t
spool_norm(const struct spool_ring *r, int64_t pos)
{
	return (pos == r->base + r->cap ? r->base : pos);
}

static size_t
spool_used_of(const struct spool_ring *r, int64_t head, int64_t tail)
{
	head = spool_norm(r, head);
	tail = spool_norm(r, tail);
	return ((size_t)(tail >= head ? tail - head : r->cap - (head - tail)));
}

size_t
spool_used(const struct spool *sp, unsigned int ring)
{
	const struct spool_ring	*r = &sp->hdr->ring[ring];

	return (spool_used_of(r, SPOOL_LOAD(&r->head), SPOOL_LOAD(&r->tail)));
}

/* The distance from a to b in the ring's order. */
static int64_t
spool_dist(const struct spool_ring *r, int64_t a, int64_t b)
{
	return (b >= a ? b - a : r->cap - (a - b));
}

/* The start of the page pos is in. */
static int64_t
spool_page(const struct spool_ring *r, int64_t pos)
{
	return (r->base + (pos - r->base) / SPOOL_ALIGN * SPOOL_ALIGN);
}

/*
 * Room in a ring from tail (as a transaction left it) to head.  A ring
 * sent from is sent by reference: a socket may hold its pages, unread,
 * for as long as its peer likes, so a byte sent is never written over
 * in place.  A page is punched out of the memfd once it is sent whole
 * (spool_punch), and written again only as a new page: the tail never
 * enters the page the head is in from behind.
 */
static size_t
spool_room_of(const struct spool_ring *r, int64_t head, int64_t tail)
{
	int64_t	 hp, room;

	head = spool_norm(r, head);
	tail = spool_norm(r, tail);
	if (!r->out)
		return ((size_t)r->cap - 1 - spool_used_of(r, head, tail));
	hp = spool_page(r, head);
	if (tail >= head)
		room = r->base + r->cap - tail + hp - r->base;
	else
		room = hp > tail ? hp - tail : 0;
	/* a tail that reaches the head would read as empty */
	if (hp == head && room > 0)
		room--;
	return ((size_t)room);
}

size_t
spool_room(const struct spool *sp, unsigned int ring)
{
	const struct spool_ring	*r = &sp->hdr->ring[ring];

	return (spool_room_of(r, SPOOL_LOAD(&r->head), SPOOL_LOAD(&r->tail)));
}

/*
 * Punch the pages of a ring sent from in [from, to) (page starts, to
 * after from in the ring's order; equal: none) out of the memfd: what a
 * socket holds of them stays its own, and the next write makes new
 * pages.
 */
static void
spool_punch(struct spool *sp, const struct spool_ring *r, int64_t from,
    int64_t to)
{
	int	 mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

	if (from == to)
		return;
	if (to < from) {
		if (fallocate(sp->fd, mode, from, r->base + r->cap - from) == -1)
			fatal("%s: fallocate", __func__);
		from = r->base;
	}
	if (to > from && fallocate(sp->fd, mode, from, to - from) == -1)
		fatal("%s: fallocate", __func__);
}

/*
 * Map new pages in [from, to) of a ring about to be written (punched
 * just before), in one call: a trap for each page costs more than the
 * page (several microseconds in a virtual machine).  Best effort: a
 * kernel without MADV_POPULATE_WRITE (before 5.14) faults them in.
 */
static void
spool_populate(struct spool *sp, const struct spool_ring *r, int64_t from,
    int64_t to)
{
	char	*mem = (char *)sp->hdr;

	if (from == to)
		return;
	if (to < from) {
		(void)madvise(mem + from, (size_t)(r->base + r->cap - from),
		    MADV_POPULATE_WRITE);
		from = r->base;
	}
	if (to > from)
		(void)madvise(mem + from, (size_t)(to - from),
		    MADV_POPULATE_WRITE);
}

/* What a ring moves before its pages are punched: a quarter, at most a batch. */
static int64_t
spool_batch(const struct spool_ring *r)
{
	int64_t	 batch = r->cap / 4 / SPOOL_ALIGN * SPOOL_ALIGN;

	if (batch > SPOOL_PUNCH_BATCH)
		batch = SPOOL_PUNCH_BATCH;
	return (batch < SPOOL_ALIGN ? SPOOL_ALIGN : batch);
}

/*
 * A ring read into has been consumed by n more bytes.  Once a batch of
 * them has (a quarter of the ring, at most SPOOL_PUNCH_BATCH), every
 * page that holds no byte still to consume, those whole between the
 * tail and the head, is punched out of the memfd: the ring holds only
 * the memory of what it holds, and a punch is not paid per page.  A
 * page punched already costs the kernel next to nothing.
 */
static void
spool_punch_taken(struct spool *sp, unsigned int ring, int64_t n)
{
	const struct spool_ring	*r = &sp->hdr->ring[ring];
	struct spool_mem	*m = &sp->mem[ring];
	int64_t			 head, tail, from, to, free;

	if ((m->moved += n) < spool_batch(r))
		return;
	m->moved = 0;
	head = spool_norm(r, SPOOL_LOAD(&r->head));
	tail = spool_norm(r, SPOOL_LOAD(&r->tail));
	/* free: from the tail round to the head; all of it when empty */
	free = head == tail ? r->cap : spool_dist(r, tail, head);
	from = spool_page(r, tail);
	if (from != tail)
		from += SPOOL_ALIGN;
	if (from >= r->base + r->cap)
		from = r->base;
	to = spool_page(r, head);
	/* the whole pages in it; none when the tail's next page is past it */
	if (spool_dist(r, tail, from) + spool_dist(r, from, to) > free)
		return;
	spool_punch(sp, r, from, to);
}

size_t
spool_nrings(const struct spool *sp)
{
	return (sp->hdr->nrings);
}

/* A ring's capacity, as it was made (one byte of it is always free). */
size_t
spool_cap(const struct spool *sp, unsigned int ring)
{
	return ((size_t)sp->hdr->ring[ring].cap);
}

/* Whether a ring is sent from (spool_send), or read into. */
int
spool_ring_out(const struct spool *sp, unsigned int ring)
{
	return (sp->hdr->ring[ring].out != 0);
}

int
spool_fd(const struct spool *sp)
{
	return (sp->fd);
}

void
spool_pipe(const struct spool *sp, int *rd, int *wr)
{
	*rd = sp->pipe[0];
	*wr = sp->pipe[1];
}

static int
spool_map(struct spool *sp)
{
	void	*p;
	size_t	 i;

	p = mmap(NULL, sp->size, PROT_READ | PROT_WRITE, MAP_SHARED, sp->fd, 0);
	if (p == MAP_FAILED)
		return (-1);
	sp->hdr = p;
	/* the kernel writes positions here: a page it need not fault in */
	(void)mlock(p, spool_hdr_size(sp->hdr->nrings ? sp->hdr->nrings : 1));
	if ((sp->mem = calloc(sp->hdr->nrings, sizeof(*sp->mem))) == NULL)
		return (-1);
	for (i = 0; i < sp->hdr->nrings; i++)
		sp->mem[i].dirty = -1;
	return (0);
}

/*
 * A new spool of nrings rings, ring i of caps[i] bytes (one of which is
 * always free), sent from if out[i] (then of whole pages), in a new
 * memfd, with its pipe.  NULL with errno set.
 */
struct spool *
spool_create(size_t nrings, const size_t *caps, const int *out)
{
	struct spool	*sp;
	size_t		 i, off, len;
	int		 save;

	if (nrings == 0 || nrings > SPOOL_RINGS_MAX) {
		errno = EINVAL;
		return (NULL);
	}
	off = spool_hdr_size(nrings);
	for (i = 0, len = off; i < nrings; i++) {
		if (caps[i] < 2 || caps[i] > SPOOL_CAP_MAX) {
			errno = EINVAL;
			return (NULL);
		}
		len += (caps[i] + SPOOL_ALIGN - 1) / SPOOL_ALIGN * SPOOL_ALIGN;
	}
	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		return (NULL);
	sp->pipe[0] = sp->pipe[1] = -1;
	sp->size = len;
	if ((sp->fd = memfd_create("qmpmux-spool", MFD_CLOEXEC)) == -1 ||
	    ftruncate(sp->fd, (off_t)len) == -1 ||
	    pwrite(sp->fd, &(uint32_t){ (uint32_t)nrings }, sizeof(uint32_t),
	    offsetof(struct spool_hdr, nrings)) != sizeof(uint32_t) ||
	    pipe2(sp->pipe, O_CLOEXEC | O_NONBLOCK) == -1 ||
	    spool_map(sp) == -1)
		goto fail;
	sp->hdr->magic = SPOOL_MAGIC;
	sp->hdr->version = SPOOL_VERSION;
	sp->hdr->size = len;
	sp->hdr->pipe_ring = SPOOL_PIPE_NONE;
	for (i = 0; i < nrings; i++) {
		sp->hdr->ring[i].base = (int64_t)off;
		sp->hdr->ring[i].cap = (int64_t)caps[i];
		/* sent from by whole pages (spool_room_of) */
		if (out[i])
			sp->hdr->ring[i].cap = (int64_t)((caps[i] + SPOOL_ALIGN -
			    1) / SPOOL_ALIGN * SPOOL_ALIGN);
		sp->hdr->ring[i].out = out[i] != 0;
		sp->hdr->ring[i].head = sp->hdr->ring[i].tail = (int64_t)off;
		off += (caps[i] + SPOOL_ALIGN - 1) / SPOOL_ALIGN * SPOOL_ALIGN;
	}
	return (sp);
fail:
	save = errno;
	spool_free(sp);
	errno = save;
	return (NULL);
}

void
spool_free(struct spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->hdr != NULL)
		munmap(sp->hdr, sp->size);
	if (sp->fd != -1)
		close(sp->fd);
	if (sp->pipe[0] != -1)
		close(sp->pipe[0]);
	if (sp->pipe[1] != -1)
		close(sp->pipe[1]);
	free(sp->mem);
	free(sp);
}

/* Set the positions of the committed record (again: it sets, never adds). */
static void
spool_apply(struct spool_hdr *h)
{
	uint32_t	 i;
	int64_t		*p;

	for (i = 0; i < h->nset; i++) {
		if (h->set[i].tail == SPOOL_WORD) {
			SPOOL_STORE(&h->user[h->set[i].ring],
			    (uint64_t)h->set[i].pos);
			continue;
		}
		p = h->set[i].tail == SPOOL_TAIL ?
		    &h->ring[h->set[i].ring].tail :
		    &h->ring[h->set[i].ring].head;
		SPOOL_STORE(p, h->set[i].pos);
	}
	SPOOL_STORE(&h->applied, SPOOL_LOAD(&h->committed));
}

/* Whether pos is a position of ring r. */
static int
spool_pos_ok(const struct spool_ring *r, int64_t pos)
{
	return (pos >= r->base && pos <= r->base + r->cap);
}

/*
 * Whether the header a memfd holds is one this process may use: a
 * spool of this version whose size is the memfd's, whose rings lie in
 * it apart, and whose positions and record name its rings.
 */
static int
spool_check(const struct spool_hdr *h, size_t size, char *err, size_t errlen)
{
	const struct spool_ring	*r;
	uint64_t		 end;
	uint32_t		 i;

	if (h->magic != SPOOL_MAGIC || h->version != SPOOL_VERSION) {
		snprintf(err, errlen, "not a spool of version %d",
		    SPOOL_VERSION);
		return (-1);
	}
	if (h->nrings == 0 || h->nrings > SPOOL_RINGS_MAX ||
	    h->size != (uint64_t)size || spool_hdr_size(h->nrings) > size) {
		snprintf(err, errlen, "%u rings in %llu bytes", h->nrings,
		    (unsigned long long)h->size);
		return (-1);
	}
	end = spool_hdr_size(h->nrings);
	for (i = 0; i < h->nrings; i++) {
		r = &h->ring[i];
		if (r->cap < 2 || (uint64_t)r->cap > SPOOL_CAP_MAX ||
		    (uint64_t)r->base < end || (uint64_t)r->base > size ||
		    (uint64_t)r->base % SPOOL_ALIGN != 0 ||
		    (uint64_t)r->cap > size - (uint64_t)r->base ||
		    r->out > 1 || (r->out && r->cap % SPOOL_ALIGN != 0) ||
		    !spool_pos_ok(r, r->head) || !spool_pos_ok(r, r->tail)) {
			snprintf(err, errlen, "ring %u is out of place", i);
			return (-1);
		}
		end = (uint64_t)r->base + (uint64_t)r->cap;
	}
	if (h->applied > h->committed ||
	    (h->pipe_ring != SPOOL_PIPE_NONE && h->pipe_ring >= h->nrings)) {
		snprintf(err, errlen, "its record is not whole");
		return (-1);
	}
	/*
	 * Only a record committed and not applied is read: one being
	 * written when the process died was never committed, and may be
	 * half old, half new.
	 */
	if (h->committed == h->applied)
		return (0);
	if (h->nset > SPOOL_TXN_MAX) {
		snprintf(err, errlen, "its record is not whole");
		return (-1);
	}
	for (i = 0; i < h->nset; i++) {
		if (h->set[i].tail == SPOOL_WORD && h->set[i].ring < SPOOL_USER)
			continue;
		if (h->set[i].ring >= h->nrings ||
		    h->set[i].tail > SPOOL_TAIL ||
		    !spool_pos_ok(&h->ring[h->set[i].ring], h->set[i].pos)) {
			snprintf(err, errlen, "its record names no position");
			return (-1);
		}
	}
	return (0);
}

/*
 * Punch every page of a ring sent from that holds no byte to send and
 * has no byte sent before the head: the process before may have died
 * between a send and its punch, and its pages are written again only
 * as new ones.
 */
static void
spool_punch_unused(struct spool *sp, const struct spool_ring *r)
{
	int64_t	 head = spool_norm(r, r->head), tail = spool_norm(r, r->tail);
	int64_t	 hp = spool_page(r, head), tp = spool_page(r, tail);

	/* empty at a page's start: that page is all sent, and written next */
	if (head == tail && head == hp) {
		spool_punch(sp, r, r->base, r->base + r->cap);
		return;
	}
	if (head == tail || tp != tail)
		tp = spool_norm(r, tp + SPOOL_ALIGN);
	spool_punch(sp, r, tp, hp);
}

/*
 * Move what the pipe holds, inpipe bytes ((size_t)-1: ask the pipe),
 * into the ring it was filling: all of it, as the ring had room for it
 * when it was taken from the socket.
 */
static int
spool_drain_pipe(struct spool *sp, size_t inpipe)
{
	struct spool_ring	*r;
	int64_t			 end;
	ssize_t			 n;
	int			 asked;
	size_t			 want;

	for (;;) {
		if (inpipe == (size_t)-1) {
			if (ioctl(sp->pipe[0], FIONREAD, &asked) == -1)
				return (-1);
			inpipe = (size_t)asked;
		}
		if (inpipe == 0)
			break;
		if (sp->hdr->pipe_ring == SPOOL_PIPE_NONE) {
			errno = EBADMSG;
			return (-1);
		}
		r = &sp->hdr->ring[sp->hdr->pipe_ring];
		if (spool_room(sp, sp->hdr->pipe_ring) < inpipe) {
			errno = ENOSPC;
			return (-1);
		}
		SPOOL_STORE(&r->tail, spool_norm(r, SPOOL_LOAD(&r->tail)));
		end = r->base + r->cap;
		want = inpipe;
		if (want > (size_t)(end - r->tail))
			want = (size_t)(end - r->tail);
		/* the kernel moves the tail as it writes, in this syscall */
		n = splice(sp->pipe[0], NULL, sp->fd, (loff_t *)&r->tail, want,
		    SPLICE_F_MOVE);
		if (n == -1 && errno != EINTR)
			return (-1);
		if (n > 0)
			inpipe -= (size_t)n;
	}
	return (0);
}

/*
 * Whether rd and wr are the reading and the writing end of one pipe, as
 * a spool's are; made non-blocking, as a spool's are: a pipe given back
 * under the spool's names is as hostile as the rest, and a wrong one
 * would stop the loop or end the process at the first read.
 */
static int
spool_pipe_ok(int rd, int wr)
{
	struct stat	 a, b;
	int		 fr, fw;

	if (fstat(rd, &a) == -1 || fstat(wr, &b) == -1 ||
	    !S_ISFIFO(a.st_mode) || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino || (fr = fcntl(rd, F_GETFL)) == -1 ||
	    (fw = fcntl(wr, F_GETFL)) == -1 ||
	    (fr & O_ACCMODE) != O_RDONLY || (fw & O_ACCMODE) != O_WRONLY ||
	    fcntl(rd, F_SETFL, fr | O_NONBLOCK) == -1 ||
	    fcntl(wr, F_SETFL, fw | O_NONBLOCK) == -1)
		return (-1);
	return (0);
}

/*
 * Take back a spool after a crash: fd its memfd, rd and wr its pipe,
 * all taken.  The header is checked whole first (err says why not); a
 * committed record is applied, and what the pipe holds goes into its
 * ring.  NULL, with err set, if it cannot be used; the fds are closed.
 */
struct spool *
spool_open(int fd, int rd, int wr, char *err, size_t errlen)
{
	struct spool	*sp;
	struct stat	 sb;
	struct spool_hdr probe;
	uint32_t	 i;

	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		fatal("%s", __func__);
	sp->fd = fd;
	sp->pipe[0] = rd;
	sp->pipe[1] = wr;
	if (fstat(fd, &sb) == -1 || sb.st_size < (off_t)sizeof(probe) ||
	    pread(fd, &probe, sizeof(probe), 0) != (ssize_t)sizeof(probe)) {
		snprintf(err, errlen, "not a spool");
		goto fail;
	}
	if (spool_pipe_ok(rd, wr) == -1) {
		snprintf(err, errlen, "its pipe is not one pipe's two ends");
		goto fail;
	}
	if (probe.magic != SPOOL_MAGIC || probe.nrings == 0 ||
	    probe.nrings > SPOOL_RINGS_MAX ||
	    (size_t)sb.st_size < spool_hdr_size(probe.nrings)) {
		snprintf(err, errlen, "not a spool of version %d",
		    SPOOL_VERSION);
		goto fail;
	}
	sp->size = (size_t)sb.st_size;
	if (spool_map(sp) == -1) {
		snprintf(err, errlen, "mmap: %s", strerror(errno));
		goto fail;
	}
	if (spool_check(sp->hdr, sp->size, err, errlen) == -1)
		goto fail;
	if (sp->hdr->committed != sp->hdr->applied)
		spool_apply(sp->hdr);
	if (spool_drain_pipe(sp, (size_t)-1) == -1) {
		snprintf(err, errlen, "its pipe: %s", strerror(errno));
		goto fail;
	}
	for (i = 0; i < sp->hdr->nrings; i++) {
		if (sp->hdr->ring[i].out)
			spool_punch_unused(sp, &sp->hdr->ring[i]);
	}
	return (sp);
fail:
	spool_free(sp);
	return (NULL);
}

/*
 * Read from sock into the ring, as much as it has room for.  The bytes
 * are in the ring (spool_peek) once this returns; > 0 the bytes moved,
 * 0 at the end of the socket's input, -1 with errno (EAGAIN: nothing to
 * read; ENOBUFS: no room).
 */
ssize_t
spool_recv(struct spool *sp, unsigned int ring, int sock)
{
	size_t		 room = spool_room(sp, ring);
	ssize_t		 n;

	if (room == 0) {
		errno = ENOBUFS;
		return (-1);
	}
	if (room > SPOOL_PIPE_MAX)
		room = SPOOL_PIPE_MAX;
	/* named before the first byte can be in the pipe */
	SPOOL_STORE(&sp->hdr->pipe_ring, ring);
	n = splice(sock, NULL, sp->pipe[1], NULL, room,
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n <= 0)
		return (n);
	/* the pipe was empty: it holds what came, and nothing else */
	if (spool_drain_pipe(sp, (size_t)n) == -1)
		fatal("%s: the spool's pipe", __func__);
	return (n);
}

/*
 * The bytes of the ring not yet consumed, in at most two pieces (the
 * ring wraps); their length.
 */
size_t
spool_peek(const struct spool *sp, unsigned int ring, struct iovec *iov)
{
	const struct spool_ring	*r = &sp->hdr->ring[ring];
	const char		*mem = (const char *)sp->hdr;
	int64_t			 head, tail;

	head = spool_norm(r, SPOOL_LOAD(&r->head));
	tail = spool_norm(r, SPOOL_LOAD(&r->tail));
	iov[0].iov_base = (void *)(uintptr_t)(mem + head);
	iov[1].iov_base = (void *)(uintptr_t)(mem + r->base);
	if (tail >= head) {
		iov[0].iov_len = (size_t)(tail - head);
		iov[1].iov_len = 0;
	} else {
		iov[0].iov_len = (size_t)(r->base + r->cap - head);
		iov[1].iov_len = (size_t)(tail - r->base);
	}
	return (iov[0].iov_len + iov[1].iov_len);
}

/*
 * The position n bytes after the ring's head (n no more than it holds):
 * where a byte is, which a crash does not move.
 */
int64_t
spool_at(const struct spool *sp, unsigned int ring, size_t n)
{
	const struct spool_ring	*r = &sp->hdr->ring[ring];
	int64_t			 pos;

	pos = spool_norm(r, SPOOL_LOAD(&r->head)) + (int64_t)n;
	if (pos >= r->base + r->cap)
		pos -= r->cap;
	return (pos);
}

/*
 * How far pos lies after the ring's head, if it is a position of what
 * the ring holds (or its end); -1 if not.  For a position that came from
 * outside (a word of the user's after a crash).
 */
ssize_t
spool_offset(const struct spool *sp, unsigned int ring, int64_t pos)
{
	const struct spool_ring	*r = &sp->hdr->ring[ring];
	int64_t			 head, tail;
	size_t			 d;

	if (!spool_pos_ok(r, pos))
		return (-1);
	head = spool_norm(r, SPOOL_LOAD(&r->head));
	tail = spool_norm(r, SPOOL_LOAD(&r->tail));
	pos = spool_norm(r, pos);
	d = spool_used_of(r, head, pos);
	return (d <= spool_used_of(r, head, tail) ? (ssize_t)d : -1);
}

/*
 * Write len bytes of c over what a ring read into holds, from off bytes
 * after its head: what is not to be read again after a crash (a message
 * that crashed the process) reads as whitespace instead.
 */
void
spool_fill(struct spool *sp, unsigned int ring, size_t off, size_t len,
    int c)
{
	const struct spool_ring	*r = &sp->hdr->ring[ring];
	char			*mem = (char *)sp->hdr;
	int64_t			 pos = spool_at(sp, ring, off);
	size_t			 chunk;

	while (len > 0) {
		chunk = (size_t)(r->base + r->cap - pos);
		if (chunk > len)
			chunk = len;
		memset(mem + pos, c, chunk);
		len -= chunk;
		pos += (int64_t)chunk;
		if (pos == r->base + r->cap)
			pos = r->base;
	}
}

/* A word of the user's, in the header: it outlives the process too. */
uint64_t
spool_word(const struct spool *sp, unsigned int i)
{
	return (SPOOL_LOAD(&sp->hdr->user[i]));
}

void
spool_set_word(struct spool *sp, unsigned int i, uint64_t v)
{
	SPOOL_STORE(&sp->hdr->user[i], v);
}

/* The record's entry for that end of ring, made if need be; NULL if full. */
static struct spool_set *
spool_txn_slot(struct spool *sp, unsigned int ring, int tail)
{
	uint32_t	 i;

	for (i = 0; i < sp->nset; i++) {
		if (sp->set[i].ring == ring && sp->set[i].tail == (uint32_t)tail)
			return (&sp->set[i]);
	}
	if (sp->nset == SPOOL_TXN_MAX)
		return (NULL);
	sp->set[sp->nset].ring = ring;
	sp->set[sp->nset].tail = (uint32_t)tail;
	sp->set[sp->nset].pos = tail == SPOOL_TAIL ? sp->hdr->ring[ring].tail :
	    tail == SPOOL_HEAD ? sp->hdr->ring[ring].head :
	    (int64_t)sp->hdr->user[ring];
	return (&sp->set[sp->nset++]);
}

/*
 * In the transaction: set a word of the user's at commit, with the
 * positions it sets (a word that says what a move of bytes means).
 */
int
spool_word_txn(struct spool *sp, unsigned int i, uint64_t v)
{
	struct spool_set	*s;

	if (i >= SPOOL_USER || (s = spool_txn_slot(sp, i, SPOOL_WORD)) ==
	    NULL) {
		sp->failed = 1;
		return (-1);
	}
	s->pos = (int64_t)v;
	return (0);
}

/*
 * In the transaction: consume n bytes of the ring (ours to consume:
 * a ring read with spool_recv).  Nothing is consumed before commit.
 */
int
spool_take(struct spool *sp, unsigned int ring, size_t n)
{
	struct spool_ring	*r = &sp->hdr->ring[ring];
	struct spool_set	*s;
	int64_t			 pos;

	if ((s = spool_txn_slot(sp, ring, SPOOL_HEAD)) == NULL ||
	    spool_used_of(r, s->pos, SPOOL_LOAD(&r->tail)) < n) {
		sp->failed = 1;
		return (-1);
	}
	pos = spool_norm(r, s->pos) + (int64_t)n;
	if (pos >= r->base + r->cap)
		pos -= r->cap;
	s->pos = pos;
	return (0);
}

/*
 * Before len bytes are written at pos of a ring sent from: if they
 * enter a page sent since the last punch, those pages may be held by
 * the socket, unread, or by whatever its peer spliced them into; punch
 * them all, at once.  (SIOCOUTQ cannot say they are free: a peer that
 * splices holds the pages with none of our bytes in the queue.)
 */
static void
spool_clean(struct spool *sp, unsigned int ring, int64_t pos, size_t len)
{
	struct spool_ring	*r = &sp->hdr->ring[ring];
	struct spool_mem	*m = &sp->mem[ring];
	int64_t			 head, hp, span, p, left, from;
	int			 enters = 0;

	if (m->dirty == -1)
		return;
	head = spool_norm(r, SPOOL_LOAD(&r->head));
	hp = spool_page(r, head);
	/* 0: the head went round the ring, every page is sent */
	span = spool_dist(r, m->dirty, hp);
	p = pos == spool_page(r, pos) ? pos : spool_page(r, pos) + SPOOL_ALIGN;
	left = (int64_t)len - (p - pos);
	for (; left > 0 && !enters; left -= SPOOL_ALIGN, p += SPOOL_ALIGN) {
		p = spool_norm(r, p);
		enters = span == 0 || spool_dist(r, m->dirty, p) < span;
	}
	if (!enters)
		return;
	from = m->dirty;
	m->dirty = -1;
	/* the writes to come enter them in order: mapped new, at once */
	if (span > 0) {
		spool_punch(sp, r, from, hp);
		spool_populate(sp, r, from, hp);
	} else if (head == hp)
		spool_punch(sp, r, r->base, r->base + r->cap);
	else
		spool_punch(sp, r, spool_norm(r, hp + SPOOL_ALIGN), hp);
}

/*
 * In the transaction: append iov[0, n) to the ring (ours to fill: one
 * sent with spool_send), after what this transaction appended already.
 * The bytes are written now, where nothing reads them; they are in the
 * ring only at commit.  -1 (ENOBUFS) if they do not fit.
 */
int
spool_put(struct spool *sp, unsigned int ring, const struct iovec *iov,
    int n)
{
	struct spool_ring	*r = &sp->hdr->ring[ring];
	struct spool_set	*s;
	char			*mem = (char *)sp->hdr;
	size_t			 len = 0, left, chunk;
	const char		*src;
	int64_t			 pos;
	int			 i;

	for (i = 0; i < n; i++)
		len += iov[i].iov_len;
	if ((s = spool_txn_slot(sp, ring, SPOOL_TAIL)) == NULL ||
	    spool_room_of(r, SPOOL_LOAD(&r->head), s->pos) < len) {
		sp->failed = 1;
		errno = ENOBUFS;
		return (-1);
	}
	pos = spool_norm(r, s->pos);
	if (r->out && len > 0)
		spool_clean(sp, ring, pos, len);
	for (i = 0; i < n; i++) {
		src = iov[i].iov_base;
		for (left = iov[i].iov_len; left > 0; left -= chunk) {
			chunk = (size_t)(r->base + r->cap - pos);
			if (chunk > left)
				chunk = left;
			memcpy(mem + pos, src, chunk);
			src += chunk;
			pos += (int64_t)chunk;
			if (pos == r->base + r->cap)
				pos = r->base;
		}
	}
	s->pos = pos;
	return (0);
}

/*
 * Commit the transaction: every position it set, at once, or none if
 * it failed (a take or put that did not fit); -1 then.
 */
int
spool_commit(struct spool *sp)
{
	struct spool_hdr	*h = sp->hdr;
	struct spool_ring	*r;
	int64_t			 was[SPOOL_TXN_MAX];
	uint64_t		 next;
	uint32_t		 i;

	if (sp->failed) {
		sp->failed = 0;
		sp->nset = 0;
		return (-1);
	}
	if (sp->nset == 0)
		return (0);
	next = SPOOL_LOAD(&h->applied) + 1;
	for (i = 0; i < sp->nset; i++)
		was[i] = sp->set[i].tail != SPOOL_HEAD ? 0 :
		    spool_norm(&h->ring[sp->set[i].ring],
		    SPOOL_LOAD(&h->ring[sp->set[i].ring].head));
	memcpy(h->set, sp->set, sp->nset * sizeof(sp->set[0]));
	SPOOL_STORE(&h->nset, sp->nset);
	/* the one store that makes it happen */
	SPOOL_STORE(&h->committed, next);
	spool_apply(h);
	/*
	 * A ring read into gives back the pages its head has left, now
	 * that they are consumed for good: else each ring would hold all
	 * of its memory once its tail had gone round it once.
	 */
	for (i = 0; i < sp->nset; i++) {
		if (sp->set[i].tail != SPOOL_HEAD)
			continue;
		r = &h->ring[sp->set[i].ring];
		if (!r->out)
			spool_punch_taken(sp, sp->set[i].ring, spool_dist(r,
			    was[i], spool_norm(r, sp->set[i].pos)));
	}
	sp->nset = 0;
	return (0);
}

/* Drop the transaction: nothing it did is seen. */
void
spool_abort(struct spool *sp)
{
	sp->nset = 0;
	sp->failed = 0;
}

/*
 * Write what the ring holds to sock, until it is empty or sock takes no
 * more; the kernel moves the head as it sends.  The bytes sent, or -1
 * with errno (EAGAIN once sock is full and nothing went).
 */
ssize_t
spool_send(struct spool *sp, unsigned int ring, int sock)
{
	struct spool_ring	*r = &sp->hdr->ring[ring];
	struct spool_mem	*m = &sp->mem[ring];
	int64_t			 start, head, tail, from;
	ssize_t			 n, sent = 0;

	start = head = spool_norm(r, SPOOL_LOAD(&r->head));
	from = spool_page(r, head);
	for (;;) {
		SPOOL_STORE(&r->head, head);
		tail = spool_norm(r, SPOOL_LOAD(&r->tail));
		if (head == tail) {
			n = 0;
			break;
		}
		n = sendfile(sock, sp->fd, (off_t *)&r->head,
		    (size_t)((tail > head ? tail : r->base + r->cap) - head));
		head = spool_norm(r, SPOOL_LOAD(&r->head));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		sent += n;
	}
	/* pages it left are punched when written again (spool_clean) */
	if (m->dirty == -1 && sent >= from + SPOOL_ALIGN - start)
		m->dirty = from;
	return (sent > 0 || n == 0 ? sent : -1);
}

/*
 * Give back the memory of an empty ring sent from (its user calls this
 * once the ring has been idle a while): every page but the head's, in
 * which the next write goes on, whether sent (the socket keeps its own
 * reference) or mapped ahead of writes (spool_clean).  Else a ring
 * keeps the memory of all it ever held.  Not at each send: the next
 * write would map each page again.  Never with a put not committed: its
 * bytes lie past the tail.
 */
void
spool_trim(struct spool *sp, unsigned int ring)
{
	const struct spool_ring	*r = &sp->hdr->ring[ring];
	struct spool_mem	*m = &sp->mem[ring];
	int64_t			 hp, from;

	if (spool_used(sp, ring) > 0 || r->cap <= SPOOL_ALIGN)
		return;
	hp = spool_page(r, spool_norm(r, SPOOL_LOAD(&r->head)));
	from = spool_norm(r, hp + SPOOL_ALIGN);
	spool_punch(sp, r, from, hp);
	m->dirty = -1;
}
