/*
 * Spools (src/spool.c): rings whose bytes a kill -9 neither loses nor
 * repeats.  The rings in one process; a header a crash could leave
 * refused; and the claim itself: a relay that moves a numbered stream
 * from one socket to another through two rings, in pieces cut at
 * random, is killed with SIGKILL hundreds of times at random moments
 * and started again on the same memfd, pipe and sockets (as the fd
 * store keeps them); the stream that comes out is the one that went
 * in, byte for byte.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "qmpmux.h"
#include "testlib.h"

#define S_RECORD	11		/* "%010u\n" */
#define S_RECORDS	200000
#define S_KILLS		300
#define S_WAIT_MS	60000

/* The bytes of the ring, joined. */
static size_t
s_peek(struct spool *sp, unsigned int ring, char *buf, size_t len)
{
	struct iovec	 iov[2];
	size_t		 n;

	n = spool_peek(sp, ring, iov);
	ck_assert_uint_le(n, len);
	memcpy(buf, iov[0].iov_base, iov[0].iov_len);
	memcpy(buf + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
	return (n);
}

/* A put of one piece. */
static int
s_put(struct spool *sp, unsigned int ring, const char *s, size_t len)
{
	struct iovec	 iov;

	iov.iov_base = (void *)(uintptr_t)s;
	iov.iov_len = len;
	return (spool_put(sp, ring, &iov, 1));
}

/*
 * Put, take and commit in one process, across the wrap: nothing a
 * transaction does is seen before its commit, a failed one leaves
 * nothing, and a ring of cap bytes holds cap - 1.
 */
START_TEST(test_rings)
{
	size_t		 caps[2] = { 10, 7 };
	int		 out[2] = { 0, 0 };
	struct spool	*sp;
	char		 buf[64];
	int		 i;

	ck_assert_ptr_nonnull(sp = spool_create(2, caps, out));
	ck_assert_uint_eq(spool_room(sp, 0), 9);
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(s_put(sp, 0, "abcdef", 6), 0);
		/* before the commit: not there */
		ck_assert_uint_eq(spool_used(sp, 0), 0);
		ck_assert_int_eq(spool_commit(sp), 0);
		ck_assert_uint_eq(s_peek(sp, 0, buf, sizeof(buf)), 6);
		ck_assert_int_eq(memcmp(buf, "abcdef", 6), 0);
		/* one transaction: take from 0, put what it took in 1 */
		ck_assert_int_eq(spool_take(sp, 0, 4), 0);
		ck_assert_int_eq(s_put(sp, 1, buf, 4), 0);
		ck_assert_uint_eq(spool_used(sp, 0), 6);
		ck_assert_int_eq(spool_commit(sp), 0);
		ck_assert_uint_eq(spool_used(sp, 0), 2);
		ck_assert_uint_eq(s_peek(sp, 1, buf, sizeof(buf)), 4);
		ck_assert_int_eq(memcmp(buf, "abcd", 4), 0);
		ck_assert_int_eq(spool_take(sp, 0, 2), 0);
		ck_assert_int_eq(spool_take(sp, 1, 4), 0);
		ck_assert_int_eq(spool_commit(sp), 0);
		ck_assert_uint_eq(spool_used(sp, 0), 0);
		ck_assert_uint_eq(spool_used(sp, 1), 0);
	}
	/* the edge: cap - 1 fits, one more does not, and undoes the rest */
	ck_assert_int_eq(s_put(sp, 1, "123456", 6), 0);
	ck_assert_int_eq(spool_commit(sp), 0);
	ck_assert_int_eq(spool_take(sp, 0, 0), 0);
	ck_assert_int_eq(s_put(sp, 0, "xy", 2), 0);
	ck_assert_int_eq(s_put(sp, 1, "7", 1), -1);
	ck_assert_int_eq(spool_commit(sp), -1);
	ck_assert_uint_eq(spool_used(sp, 0), 0);
	ck_assert_uint_eq(spool_used(sp, 1), 6);
	ck_assert_int_eq(spool_take(sp, 1, 7), 0 - 1);
	spool_abort(sp);
	ck_assert_uint_eq(spool_used(sp, 1), 6);
	spool_free(sp);
}
END_TEST

/* A copy of sp's memfd with len bytes at off replaced by what. */
static int
s_copy_with(struct spool *sp, off_t off, const void *what, size_t len)
{
	char		 buf[1 << 16];
	ssize_t		 n;
	off_t		 at = 0;
	int		 fd;

	ck_assert_int_ne(fd = memfd_create("t", 0), -1);
	while ((n = pread(spool_fd(sp), buf, sizeof(buf), at)) > 0) {
		ck_assert_int_eq(pwrite(fd, buf, (size_t)n, at), n);
		at += n;
	}
	ck_assert_int_eq(pwrite(fd, what, len, off), (ssize_t)len);
	return (fd);
}

/*
 * A ring read into gives its pages back as its head leaves them: 8 MB
 * through a ring of 1 MB leaves the memfd holding no more than a batch
 * of punches and the header's page, where without them it would hold
 * the whole ring.
 */
START_TEST(test_in_punched)
{
	size_t		 caps[1] = { 1 << 20 };
	int		 out[1] = { 0 };
	struct spool	*sp;
	struct stat	 st;
	char		 buf[4000];
	size_t		 i;

	memset(buf, 'x', sizeof(buf));
	ck_assert_ptr_nonnull(sp = spool_create(1, caps, out));
	for (i = 0; i < 2000; i++) {
		ck_assert_int_eq(s_put(sp, 0, buf, sizeof(buf)), 0);
		ck_assert_int_eq(spool_commit(sp), 0);
		ck_assert_int_eq(spool_take(sp, 0, sizeof(buf)), 0);
		ck_assert_int_eq(spool_commit(sp), 0);
	}
	ck_assert_int_eq(fstat(spool_fd(sp), &st), 0);
	printf("in ring: %lld bytes held after %zu through a ring of %zu\n",
	    (long long)st.st_blocks * 512, i * sizeof(buf), caps[0]);
	ck_assert_int_le((long long)st.st_blocks * 512,
	    SPOOL_PUNCH_BATCH + 3 * 4096);
	spool_free(sp);
}
END_TEST

/*
 * What a crash leaves is read as input: a header that is not a spool's,
 * or whose rings or record point outside their place, is refused with
 * a reason, and its fds closed; one that is whole is taken.
 */
START_TEST(test_open_checks)
{
	size_t		 caps[2] = { 5000, 100 };
	int		 out[2] = { 0, 0 };
	struct spool	*sp, *back;
	char		 err[256];
	int		 p[2], q[2], fd;
	static const uint64_t big = UINT64_MAX / 2;
	static const uint32_t many = 100000;
	/* offsets of struct spool_hdr: magic 0, nrings 12, set 112, ring[0] 1136 */
	const struct { off_t off; const void *what; size_t len;
	    const char *why; } bad[] = {
		{ 0, "notaspol", 8, "not a spool" },
		{ 12, &many, 4, "not a spool" },
		{ 16, &big, 8, "rings in" },
		{ 32, &big, 8, "record is not whole" },
		{ 1136, &big, 8, "ring 0 is out of place" },
		{ 1160, &big, 8, "ring 0 is out of place" },
	};
	size_t		 i;

	ck_assert_ptr_nonnull(sp = spool_create(2, caps, out));
	ck_assert_int_eq(s_put(sp, 0, "hello", 5), 0);
	ck_assert_int_eq(spool_commit(sp), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fd = s_copy_with(sp, bad[i].off, bad[i].what, bad[i].len);
		ck_assert_int_eq(pipe(p), 0);
		back = spool_open(fd, p[0], p[1], err, sizeof(err));
		ck_assert_msg(back == NULL, "bad header %zu taken", i);
		ck_assert_msg(strstr(err, bad[i].why) != NULL,
		    "bad header %zu: \"%s\", not \"%s\"", i, err, bad[i].why);
		/* its fds are closed */
		ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
		ck_assert_int_eq(fcntl(p[0], F_GETFD), -1);
	}
	/* a record being written when the process died was never committed */
	fd = s_copy_with(sp, 112, &many, 4);
	ck_assert_int_eq(pipe(p), 0);
	back = spool_open(fd, p[0], p[1], err, sizeof(err));
	ck_assert_msg(back != NULL, "a record not committed refused: %s", err);
	ck_assert_uint_eq(spool_used(back, 0), 5);
	spool_free(back);
	/* a pipe's ends the wrong way round, or two pipes, are refused */
	fd = s_copy_with(sp, 0, "", 0);
	ck_assert_int_eq(pipe(p), 0);
	back = spool_open(fd, p[1], p[0], err, sizeof(err));
	ck_assert_msg(back == NULL && strstr(err, "its pipe") != NULL,
	    "ends swapped: %s", back != NULL ? "taken" : err);
	ck_assert_int_eq(fcntl(p[0], F_GETFD), -1);
	fd = s_copy_with(sp, 0, "", 0);
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(pipe(q), 0);
	back = spool_open(fd, p[0], q[1], err, sizeof(err));
	ck_assert_msg(back == NULL && strstr(err, "its pipe") != NULL,
	    "two pipes: %s", back != NULL ? "taken" : err);
	close(p[1]);
	close(q[0]);
	/* the whole one comes back with its bytes */
	fd = s_copy_with(sp, 0, "", 0);
	ck_assert_int_eq(pipe(p), 0);
	back = spool_open(fd, p[0], p[1], err, sizeof(err));
	ck_assert_msg(back != NULL, "%s", err);
	ck_assert_uint_eq(spool_used(back, 0), 5);
	spool_free(back);
	spool_free(sp);
}
END_TEST

/* The torture: the relay, its two sockets, and the stream's checker. */
struct s_relay {
	struct spool	*sp;
	int		 in[2];		/* [0] the writer's, [1] the relay's */
	int		 out[2];	/* [0] the relay's, [1] the reader's */
	size_t		 got;		/* bytes the reader checked */
	unsigned int	 reads;		/* the reader's reads that got bytes */
	size_t		 bad;		/* first byte wrong, + 1; 0: none */
	int		 done;
};

static void
s_record(unsigned int i, char *buf)
{
	snprintf(buf, S_RECORD + 1, "%010u\n", i);
}

static int
s_write_all(int fd, const char *buf, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return (-1);
		buf += n;
		len -= (size_t)n;
	}
	return (0);
}

/* Now, in ms, for the bounds of the waits. */
static long long
s_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static void *
s_writer(void *arg)
{
	struct s_relay	*r = arg;
	char		 buf[S_RECORD * 100 + 1];
	unsigned int	 i, j;

	for (i = 0; i < S_RECORDS; i += 100) {
		for (j = 0; j < 100; j++)
			s_record(i + j, buf + j * S_RECORD);
		if (s_write_all(r->in[0], buf, S_RECORD * 100) == -1)
			break;
	}
	return (NULL);
}

static void *
s_reader(void *arg)
{
	struct s_relay	*r = arg;
	char		 buf[8192], want[S_RECORD + 1];
	ssize_t		 n, i;

	while (r->got < (size_t)S_RECORDS * S_RECORD) {
		if ((n = read(r->out[1], buf, sizeof(buf))) <= 0)
			break;
		__atomic_add_fetch(&r->reads, 1, __ATOMIC_SEQ_CST);
		for (i = 0; i < n; i++, r->got++) {
			s_record((unsigned int)(r->got / S_RECORD), want);
			if (r->bad == 0 && buf[i] != want[r->got % S_RECORD])
				r->bad = r->got + 1;
		}
	}
	__atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
	return (NULL);
}

/*
 * The relay, in a child: take the spool back, then move bytes in
 * pieces of random length from the in ring to the out ring, one
 * transaction each, reading and sending as the sockets allow.
 */
static void
s_relay_run(struct s_relay *r, unsigned int seed)
{
	struct spool	*sp;
	struct pollfd	 pfd[2];
	struct iovec	 iov[2], piece[2];
	char		 err[256];
	size_t		 n, want, left;
	int		 rd, wr;

	spool_pipe(r->sp, &rd, &wr);
	if ((sp = spool_open(spool_fd(r->sp), rd, wr, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "relay: %s\n", err);
		_exit(2);
	}
	srandom(seed);
	for (;;) {
		pfd[0].fd = r->in[1];
		pfd[0].events = spool_room(sp, 0) > 0 ? POLLIN : 0;
		pfd[1].fd = r->out[0];
		pfd[1].events = spool_used(sp, 1) > 0 ? POLLOUT : 0;
		if (poll(pfd, 2, 1000) == -1 && errno != EINTR)
			_exit(3);
		if (spool_recv(sp, 0, r->in[1]) == 0)
			_exit(0);
		while ((n = spool_peek(sp, 0, iov)) > 0 &&
		    spool_room(sp, 1) > 0) {
			want = 1 + (size_t)random() % 97;
			if (want > n)
				want = n;
			if (want > spool_room(sp, 1))
				want = spool_room(sp, 1);
			/* the piece, across the wrap if it is cut there */
			piece[0].iov_base = iov[0].iov_base;
			piece[0].iov_len = want < iov[0].iov_len ? want :
			    iov[0].iov_len;
			left = want - piece[0].iov_len;
			piece[1].iov_base = iov[1].iov_base;
			piece[1].iov_len = left;
			if (spool_put(sp, 1, piece, 2) == -1 ||
			    spool_take(sp, 0, want) == -1 ||
			    spool_commit(sp) == -1)
				_exit(4);
		}
		if (spool_send(sp, 1, r->out[0]) == -1 && errno != EAGAIN)
			_exit(5);
	}
}

static pid_t
s_relay_start(struct s_relay *r, unsigned int seed)
{
	pid_t	 pid;

	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0)
		s_relay_run(r, seed);
	return (pid);
}

/*
 * Kill the relay S_KILLS times, each after a random 0.1 to 3 ms of
 * work, and start it again each time; then let the last one finish.
 * The reader sees the whole stream, and nothing else.
 */
static void
s_torture(size_t incap, size_t outcap)
{
	size_t		 caps[2] = { incap, outcap };
	int		 out[2] = { 0, 1 };
	struct s_relay	 r;
	pthread_t	 wt, rt;
	pid_t		 pid;
	unsigned int	 reads, want;
	struct timespec	 ts;
	long long	 end;
	int		 kills, status, fl, joined;

	memset(&r, 0, sizeof(r));
	ck_assert_ptr_nonnull(r.sp = spool_create(2, caps, out));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, r.in), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, r.out), 0);
	fl = fcntl(r.in[1], F_GETFL);
	ck_assert_int_eq(fcntl(r.in[1], F_SETFL, fl | O_NONBLOCK), 0);
	fl = fcntl(r.out[0], F_GETFL);
	ck_assert_int_eq(fcntl(r.out[0], F_SETFL, fl | O_NONBLOCK), 0);
	ck_assert_int_eq(pthread_create(&wt, NULL, s_writer, &r), 0);
	ck_assert_int_eq(pthread_create(&rt, NULL, s_reader, &r), 0);

	srandom((unsigned int)getpid());
	for (kills = 0; kills < S_KILLS &&
	    !__atomic_load_n(&r.done, __ATOMIC_SEQ_CST); kills++) {
		reads = __atomic_load_n(&r.reads, __ATOMIC_SEQ_CST);
		pid = s_relay_start(&r, (unsigned int)random());
		/*
		 * Kill it as the reader wakes to its first read, most often
		 * while the relay is still in the syscall that sent (the
		 * window a record of a send made after it would lose), or to
		 * a read from 2 to 9 later, at another point of its work;
		 * within 10 ms, should the relay move nothing.
		 */
		want = reads + (kills % 2 == 0 ? 1 : 2 + random() % 8);
		for (end = s_ms() + 10; s_ms() < end &&
		    __atomic_load_n(&r.reads, __ATOMIC_SEQ_CST) < want;)
			;
		ck_assert_int_eq(kill(pid, SIGKILL), 0);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFSIGNALED(status) ||
		    (WIFEXITED(status) && WEXITSTATUS(status) == 0),
		    "the relay failed: status %d", status);
	}
	/* the writer has written all by now or soon; the last relay ends */
	pid = s_relay_start(&r, 1);
	/* the reader's end: the whole stream, or the bound (CLOCK_REALTIME) */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += S_WAIT_MS / 1000;
	joined = pthread_timedjoin_np(rt, NULL, &ts) == 0;
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	shutdown(r.in[0], SHUT_WR);
	shutdown(r.out[1], SHUT_RD);
	pthread_join(wt, NULL);
	if (!joined)
		pthread_join(rt, NULL);
	printf("spool: %zu and %zu bytes, %d kills, %zu bytes through, "
	    "exact\n", incap, outcap, kills, r.got);
	ck_assert_msg(r.bad == 0, "byte %zu of the stream is wrong", r.bad - 1);
	ck_assert_uint_eq(r.got, (size_t)S_RECORDS * S_RECORD);
	ck_assert_int_ge(kills, 50);
	spool_free(r.sp);
}

/* One page to send from, smaller than the ring read into: the wrap. */
START_TEST(test_kill9_exactly_once)
{
	s_torture(4099, 3001);
}
END_TEST

/* Pages to send from, punched as the ring goes round them. */
START_TEST(test_kill9_pages)
{
	s_torture(20011, 12289);
}
END_TEST

static Suite *
spool_suite(void)
{
	Suite	*s = suite_create("spool");
	TCase	*tc = t_tcase(s, "spool", 120);

	tcase_add_test(tc, test_rings);
	tcase_add_test(tc, test_open_checks);
	tcase_add_test(tc, test_in_punched);
	tcase_add_test(tc, test_kill9_exactly_once);
	tcase_add_test(tc, test_kill9_pages);
	return (s);
}

int
main(void)
{
	return (t_run(spool_suite()));
}
