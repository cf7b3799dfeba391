/*
 * The differential fuzzer: mutated client byte streams go both straight
 * to a QEMU and through qmpmuxd to a second QEMU, and the replies must
 * match, as in check_diff, but for inputs no one wrote.
 *
 *	fuzz_diff [SEED [ITERATIONS]]	(make fuzz-diff)
 *
 * The same seed makes the same inputs.  Each input is one of the seeds
 * below, changed by a few random mutations (bytes flipped, inserted or
 * removed, QMP tokens inserted, a range repeated, another seed spliced
 * in).  After each input both sides get a sync command with an id of its
 * own, and the replies up to the sync's are compared:
 * - the same number, in the same order, but for the replies to exec-oob,
 *   which QEMU lets overtake the in-band input before them as its
 *   timing goes: those are in the same order among themselves;
 * - events by name (their timestamps differ);
 * - replies as text, ids included: QEMU writes back the id it parsed
 *   (1.50 as 1.5, 'x' as "x"), and so must the proxy;
 * - when QEMU's side gives no sync reply (the input left a string or an
 *   object open), the proxy's must not either, and both sessions start
 *   again with new connections.
 * Every 50 inputs and at the end a second client of qmpmuxd negotiates
 * and is answered: nothing an input did leaves the daemon unable to
 * serve.  The QEMU behind qmpmuxd must outlive every input; the one
 * reached directly may not (a QEMU bug qmpmuxd shields it from): then
 * both QEMUs and qmpmuxd start again, so that the two sides stay in the
 * same state.  Commands of QEMU's that change more than the
 * session (quit, migrate, device_add, ...) are never sent: an input
 * that names one is drawn again, as is one with an exec-oob without an
 * id, whose reply could not be told from the others.  A difference is
 * written to fuzz-diff-SEED-N.in in the current directory, with both
 * sides' replies on standard error.
 */
#include "config.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>
#include <event2/buffer.h>

#include "qmp.h"
#include "testlib.h"

#define FD_MAX_INPUT	2048
#define FD_MAX_REPLIES	64
/* the sync taken in: how long what else comes is waited for */
#define FD_QUIET_MS	(300 * t_slow())

static unsigned long long fd_seed;
static long		 fd_iterations = 200;
static uint64_t		 fd_rng;

static struct t_diff	 td;

/* QEMU's own commands (query-commands), and those an input may run. */
static char		**fd_commands;
static size_t		 fd_ncommands;
static const char	*fd_allowed[] = {
	"qmp_capabilities", "query-status", "query-name", "query-version",
	"query-kvm", "query-uuid", "query-chardev", "query-block",
	"query-events", "query-iothreads", "query-mice", "query-migrate",
	"query-balloon", "query-target", "query-commands", "stop", "cont",
	"x-oob-test", NULL
};

static const char *fd_seeds[] = {
	"{\"execute\": \"qmp_capabilities\"}\n"
	"{\"execute\": \"query-status\", \"id\": \"libvirt-1\"}\n",
	"{\"execute\": \"qmp_capabilities\"}\n"
	"{\"execute\": \"query-name\", \"id\": 7}"
	"{\"execute\": \"query-name\", \"id\": -1.5e3}"
	"{\"execute\": \"query-name\", \"id\": true}"
	"{\"execute\": \"query-name\", \"id\": null}"
	"{\"execute\": \"query-name\", \"id\": [1, \"a\", {}]}"
	"{\"execute\": \"query-name\", \"id\": {\"a\": {\"b\": [false]}}}",
	"{\"execute\": \"qmp_capabilities\", \"arguments\": "
	"{\"enable\": [\"oob\"]}}\n"
	"{\"exec-oob\": \"query-status\", \"id\": \"oob-1\"}\n"
	"{\"execute\": \"stop\", \"id\": 1}{\"execute\": \"cont\", \"id\": 2}",
	"{\"execute\": \"query-status\"}\n"
	"{\"execute\": \"qmp_capabilities\", \"id\": 1}\n"
	"{\"execute\": \"qmp_capabilities\", \"id\": 2}\n"
	"{\"execute\": \"no-such\", \"id\": \"e1\"}\n",
	"{\"execute\": \"qmp_capabilities\"}\n"
	"{\"execute\": \"query-status\", \"bad\": 1, \"id\": \"e2\"}\n"
	"{\"execute\": 1, \"id\": \"e3\"}[1, 2]\"text\"\n"
	"{'execute': 'query-name', 'id': 'single'}\n"
	"{\"execute\": \"query-name\", \"arguments\": [], \"id\": 5}",
	"{\"execute\": \"qmp_capabilities\"}\n}{\n\x01\xff"
	"{\"execute\": \"query-name\", \"id\": \"\\u00e9\\ud83d\\ude00\"}"
	"{\"execute\"\n: \"query-kvm\", \"id\": 3}",
};
#define FD_NSEEDS	(sizeof(fd_seeds) / sizeof(fd_seeds[0]))

static const char *fd_tokens[] = {
	"{", "}", "[", "]", ":", ",", "\"", "'", "\\", "\\u00", "\n", " ",
	"true", "false", "null", "-0", "1e5", "1.50", "\"id\"", "\"execute\"",
	"\"exec-oob\"", "\"arguments\"", "\"enable\"", "\"oob\"",
	"\"qmp_capabilities\"", "\"query-status\"", "\"query-name\"",
	"\"stop\"", "\"cont\"", "'id'", "\"\\u0000\"", "\xc3\xa9", "\xff",
	"\x7f", "\x00",
};
#define FD_NTOKENS	(sizeof(fd_tokens) / sizeof(fd_tokens[0]))

static uint64_t
fd_next(void)
{
	fd_rng ^= fd_rng << 13;
	fd_rng ^= fd_rng >> 7;
	fd_rng ^= fd_rng << 17;
	return (fd_rng);
}

static size_t
fd_below(size_t n)
{
	return (n == 0 ? 0 : (size_t)(fd_next() % n));
}

/* Insert len bytes at off, within FD_MAX_INPUT. */
static void
fd_insert(char *buf, size_t *len, size_t off, const char *p, size_t plen)
{
	if (*len + plen > FD_MAX_INPUT)
		return;
	memmove(buf + off + plen, buf + off, *len - off);
	memcpy(buf + off, p, plen);
	*len += plen;
}

/* A seed with a few mutations. */
static size_t
fd_mutate(char *buf)
{
	const char	*s = fd_seeds[fd_below(FD_NSEEDS)], *t;
	size_t		 len = strlen(s), n, i, off, k;
	char		 c, copy[64];

	memcpy(buf, s, len);
	n = 1 + fd_below(6);
	for (i = 0; i < n; i++) {
		off = fd_below(len + 1);
		switch (fd_below(6)) {
		case 0:
			if (off < len)
				buf[off] = (char)fd_next();
			break;
		case 1:
			t = fd_tokens[fd_below(FD_NTOKENS)];
			/* "\x00" is a one-byte token */
			fd_insert(buf, &len, off, t,
			    *t == '\0' ? 1 : strlen(t));
			break;
		case 2:
			k = fd_below(8) + 1;
			if (off + k <= len) {
				memmove(buf + off, buf + off + k,
				    len - off - k);
				len -= k;
			}
			break;
		case 3:
			k = fd_below(sizeof(copy)) + 1;
			if (off + k <= len) {
				memcpy(copy, buf + off, k);
				fd_insert(buf, &len, fd_below(len + 1), copy,
				    k);
			}
			break;
		case 4:
			c = (char)fd_next();
			fd_insert(buf, &len, off, &c, 1);
			break;
		case 5:
			t = fd_seeds[fd_below(FD_NSEEDS)];
			k = strlen(t);
			t += fd_below(k);
			k = fd_below(k / 2) + 1;
			if (k > strlen(t))
				k = strlen(t);
			fd_insert(buf, &len, off, t, k);
			break;
		}
	}
	return (len);
}

/* Whether QEMU reading buf would run only commands it may run. */
static int
fd_harmless(const char *buf, size_t len)
{
	struct qmp_reader	*r;
	struct evbuffer		*in;
	struct qmp_msg		 msg;
	enum qmp_status		 st;
	size_t			 i, j;
	int			 ok = 1;

	r = qmp_reader_new(QMP_SIZE_MAX, QMP_DEPTH_MAX, QMP_READ_STRICT);
	in = evbuffer_new();
	ck_assert(r != NULL && in != NULL);
	/* and what may come after it, to see where an open command ends */
	evbuffer_add(in, buf, len);
	evbuffer_add_printf(in, "\n\"}]}]}]'}]}]}]\n");
	while (ok && (st = qmp_reader_next(r, in, &msg)) != QMP_NEED_MORE) {
		if (st != QMP_MESSAGE)
			continue;
		if (msg.kind == QMP_KIND_COMMAND) {
			for (i = 0; i < fd_ncommands; i++) {
				if (strcmp(fd_commands[i], msg.name) == 0)
					break;
			}
			for (j = 0; fd_allowed[j] != NULL; j++) {
				if (strcmp(fd_allowed[j], msg.name) == 0)
					break;
			}
			/* QEMU's and not allowed; or too long to tell */
			if ((i < fd_ncommands && fd_allowed[j] == NULL) ||
			    msg.name_truncated)
				ok = 0;
			/* an exec-oob's reply is told by its id */
			if (msg.m_exec_oob != -1 && msg.m_id == -1)
				ok = 0;
		}
		qmp_msg_clear(&msg);
	}
	evbuffer_free(in);
	qmp_reader_free(r);
	return (ok);
}

/* One side: a client and the replies to the last input. */
struct side {
	const char	*name;
	const char	*sock;
	struct t_client	*c;
	char		*msgs[FD_MAX_REPLIES];
	int		 n;
	int		 synced;
	int		 expect;	/* the framer reads the sync alone */
};

static void
side_clear(struct side *s)
{
	int	 i;

	for (i = 0; i < s->n; i++)
		free(s->msgs[i]);
	s->n = 0;
}

static void
side_connect(struct side *s, char **greeting)
{
	if (s->c != NULL)
		t_client_free(s->c);
	s->c = t_client_new(s->sock);
	ck_assert_msg(s->c != NULL, "%s: cannot connect", s->name);
	*greeting = t_recv(s->c, T_WAIT_MS);
	ck_assert_msg(*greeting != NULL, "%s: no greeting", s->name);
}

/*
 * Whether QEMU reads the sync after in as a command of its own: the
 * framer reads as QEMU does, so then QEMU must answer it, however long
 * it takes; else (a string or an object left open) it takes it in, and
 * only what comes within FD_QUIET_MS is compared.
 */
static int
fd_sync_read(const char *in, size_t len, const char *sync)
{
	struct qmp_reader	*r;
	struct evbuffer		*b;
	struct qmp_msg		 msg;
	enum qmp_status		 st;
	int			 found = 0;

	r = qmp_reader_new(QMP_SIZE_MAX, QMP_DEPTH_MAX, QMP_READ_STRICT);
	b = evbuffer_new();
	ck_assert(r != NULL && b != NULL);
	evbuffer_add(b, in, len);
	evbuffer_add_printf(b, "%s", sync);
	while ((st = qmp_reader_next(r, b, &msg)) != QMP_NEED_MORE) {
		if (st != QMP_MESSAGE)
			continue;
		found = strlen(sync) == msg.len + 2 &&
		    memcmp(sync + 1, msg.buf, msg.len) == 0;
		qmp_msg_clear(&msg);
	}
	evbuffer_free(b);
	qmp_reader_free(r);
	return (found);
}

/* Send the input and a sync; take the replies up to the sync's. */
static void
side_run(struct side *s, const char *in, size_t len, const char *id)
{
	char	*m, sync[64], needle[48];
	int	 expect;

	side_clear(s);
	s->synced = 0;
	snprintf(sync, sizeof(sync), "\n{\"execute\":\"query-name\","
	    "\"id\":\"%s\"}\n", id);
	expect = s->expect = fd_sync_read(in, len, sync);
	t_send_raw(s->c, in, len);
	t_send_raw(s->c, sync, strlen(sync));
	snprintf(needle, sizeof(needle), "\"id\": \"%s\"", id);
	while ((m = t_recv(s->c, expect ? T_WAIT_MS : FD_QUIET_MS)) != NULL) {
		if (strstr(m, needle) != NULL) {
			free(m);
			s->synced = 1;
			return;
		}
		if (s->n < FD_MAX_REPLIES)
			s->msgs[s->n++] = m;
		else
			free(m);
	}
}

/* A reply's text without its id, and its id's text, as NUL strings. */
static void
fd_split(const char *m, char **rest, char **id)
{
	struct qmp_reader	*r;
	struct evbuffer		*in;
	struct qmp_msg		 msg;
	struct qmp_span		 cut, v;

	*rest = *id = NULL;
	r = qmp_reader_new(QMP_SIZE_MAX, QMP_DEPTH_MAX, 0);
	in = evbuffer_new();
	ck_assert(r != NULL && in != NULL);
	evbuffer_add_printf(in, "%s\n", m);
	if (qmp_reader_next(r, in, &msg) == QMP_MESSAGE) {
		if (msg.m_id != -1) {
			v = qmp_msg_id(&msg);
			cut = qmp_msg_cut_member(&msg, msg.m_id);
			*id = strndup(msg.buf + v.off, v.len);
			if (asprintf(rest, "%.*s%s", (int)cut.off, msg.buf,
			    msg.buf + cut.off + cut.len) == -1)
				abort();
		} else
			*rest = strdup(msg.buf);
		qmp_msg_clear(&msg);
	}
	evbuffer_free(in);
	qmp_reader_free(r);
	if (*rest == NULL)
		*rest = strdup(m);
}

/*
 * The ids of the input's exec-oob commands, as text.  QEMU runs one as
 * it reads it, while in-band input waits in its queue for the main
 * loop: the reply can overtake those of in-band input before it, by as
 * much as QEMU's timing makes it.  So the replies to exec-oob are
 * compared in their own order, and the others in theirs.
 */
static char	*fd_oob[FD_MAX_REPLIES];
static int	 fd_noob;

static void
fd_oob_ids(const char *in, size_t len)
{
	struct qmp_reader	*r;
	struct evbuffer		*b;
	struct qmp_msg		 msg;
	const char		*idt;
	size_t			 idlen;
	enum qmp_status		 st;

	while (fd_noob > 0)
		free(fd_oob[--fd_noob]);
	r = qmp_reader_new(QMP_SIZE_MAX, QMP_DEPTH_MAX, QMP_READ_STRICT);
	b = evbuffer_new();
	ck_assert(r != NULL && b != NULL);
	evbuffer_add(b, in, len);
	evbuffer_add(b, "\n", 1);
	while ((st = qmp_reader_next(r, b, &msg)) != QMP_NEED_MORE) {
		if (st != QMP_MESSAGE)
			continue;
		if (msg.m_exec_oob != -1 && msg.m_id != -1 &&
		    fd_noob < FD_MAX_REPLIES) {
			idt = qmp_msg_id_text(&msg, &idlen);
			fd_oob[fd_noob++] = strndup(idt, idlen);
		}
		qmp_msg_clear(&msg);
	}
	evbuffer_free(b);
	qmp_reader_free(r);
}

/* Whether a reply answers one of the input's exec-oob, by its id. */
static int
fd_is_oob(const char *m)
{
	char	*rest, *id;
	int	 i, yes = 0;

	fd_split(m, &rest, &id);
	for (i = 0; id != NULL && !yes && i < fd_noob; i++)
		yes = strcmp(fd_oob[i], id) == 0;
	free(rest);
	free(id);
	return (yes);
}

/* A difference: keep the input, tell both sides, fail. */
static void
fd_differ(long it, const char *in, size_t len, struct side *q,
    struct side *p, const char *why)
{
	char	 name[64];
	FILE	*f;
	int	 i;

	snprintf(name, sizeof(name), "fuzz-diff-%llu-%ld.in", fd_seed, it);
	if ((f = fopen(name, "w")) != NULL) {
		fwrite(in, 1, len, f);
		fclose(f);
	}
	fprintf(stderr, "fuzz_diff: seed %llu input %ld: %s; kept in %s\n"
	    "input: ", fd_seed, it, why, name);
	t_diff_print(stderr, in, len);
	fputc('\n', stderr);
	for (i = 0; i < q->n; i++)
		fprintf(stderr, "  qemu  %s\n", q->msgs[i]);
	fprintf(stderr, "  qemu  %s\n", q->synced ? "(sync)" : "(no sync)");
	for (i = 0; i < p->n; i++)
		fprintf(stderr, "  proxy %s\n", p->msgs[i]);
	fprintf(stderr, "  proxy %s\n", p->synced ? "(sync)" : "(no sync)");
	ck_abort_msg("seed %llu input %ld: %s", fd_seed, it, why);
}

/*
 * The QEMU reached directly died of the input, and the one behind
 * qmpmuxd did not: QEMU 7.2 asserts when one read brings more than 8
 * parse errors with oob on (monitor/qmp.c, handle_qmp_command), which
 * qmpmuxd answers itself.  The input is kept, and both sides start
 * again from nothing (both QEMUs and qmpmuxd), so that what follows
 * compares two QEMUs in the same state: a new QEMU is running where the
 * old one behind qmpmuxd may have been stopped by the inputs before.
 */
static void
fd_qemu_died(long it, const char *in, size_t len)
{
	char	 name[64];
	FILE	*f;

	snprintf(name, sizeof(name), "fuzz-diff-%llu-%ld.qemu-crash",
	    fd_seed, it);
	if ((f = fopen(name, "w")) != NULL) {
		fwrite(in, 1, len, f);
		fclose(f);
	}
	printf("fuzz_diff: seed %llu input %ld: the direct QEMU died (see "
	    "%s/qemu.log); the one behind qmpmuxd lives; kept in %s; both "
	    "sides start again\n", fd_seed, it, t_dir(), name);
	fflush(stdout);
	/* the direct QEMU is reaped already */
	td.direct = -1;
	unlink(td.dsock);
	unlink(td.qsock);
	t_diff_stop(&td);
	t_diff_start(&td);
}

/* A second client of qmpmuxd is served. */
static void
fd_second_client(void)
{
	struct t_client	*c;
	char		*m;

	c = t_client_ready(td.psock);
	ck_assert_msg(c != NULL, "qmpmuxd no longer takes a client");
	t_send(c, "{\"execute\": \"query-status\", \"id\": \"second\"}\n");
	m = t_recv_reply(c, T_WAIT_MS);
	ck_assert_msg(m != NULL && strstr(m, "\"return\"") != NULL &&
	    strstr(m, "\"second\"") != NULL,
	    "a second client of qmpmuxd is not answered: %s",
	    m != NULL ? m : "(nothing)");
	free(m);
	t_client_free(c);
}

/* QEMU's commands, from a QEMU of the same binary. */
static void
fd_query_commands(void)
{
	struct t_client	*c;
	yajl_val	 v, ret, name;
	const char	*path[] = { "return", NULL };
	const char	*npath[] = { "name", NULL };
	char		*m;
	size_t		 i;

	c = t_client_ready(td.dsock);
	ck_assert(c != NULL);
	t_send(c, "{\"execute\": \"query-commands\", \"id\": 1}\n");
	m = t_recv_reply(c, T_WAIT_MS);
	v = t_json(m);
	ret = yajl_tree_get(v, path, yajl_t_array);
	ck_assert_msg(ret != NULL, "query-commands: %s", m);
	fd_commands = calloc(ret->u.array.len, sizeof(*fd_commands));
	ck_assert(fd_commands != NULL);
	for (i = 0; i < ret->u.array.len; i++) {
		name = yajl_tree_get(ret->u.array.values[i], npath,
		    yajl_t_string);
		if (name != NULL && name->u.string != NULL &&
		    (fd_commands[fd_ncommands] = strdup(name->u.string)) !=
		    NULL)
			fd_ncommands++;
	}
	yajl_tree_free(v);
	free(m);
	t_client_free(c);
}

static void
setup(void)
{
	t_diff_start(&td);
}

static void
teardown(void)
{
	t_diff_stop(&td);
}

START_TEST(test_fuzz_diff)
{
	struct side	 q = { "qemu", NULL, NULL, { NULL }, 0, 0, 0 };
	struct side	 p = { "proxy", NULL, NULL, { NULL }, 0, 0, 0 };
	char		 buf[FD_MAX_INPUT], sync[48], *gq, *gp;
	size_t		 len;
	long		 it, sessions = 0, unsynced = 0, qemu_crashes = 0;
	int		 k, j, oob, fresh = 1;

	q.sock = td.dsock;
	p.sock = td.psock;
	fd_query_commands();
	fd_rng = fd_seed * 2654435761ULL + 1;
	for (it = 0; it < fd_iterations; it++) {
		if (fresh) {
			side_connect(&q, &gq);
			side_connect(&p, &gp);
			ck_assert_msg(strcmp(gq, gp) == 0,
			    "greetings differ:\n  qemu  %s\n  proxy %s", gq,
			    gp);
			free(gq);
			free(gp);
			sessions++;
			fresh = 0;
		}
		do
			len = fd_mutate(buf);
		while (!fd_harmless(buf, len));
		snprintf(sync, sizeof(sync), "sync-%ld", it);
		side_run(&q, buf, len, sync);
		side_run(&p, buf, len, sync);
		ck_assert_msg(t_wait_exit(td.qemu, 0) == -1, "seed %llu "
		    "input %ld: the QEMU behind qmpmuxd died", fd_seed, it);
		/* a QEMU that died closed the connection: no sync */
		if (t_wait_exit(td.direct, q.synced ? 0 : 200) != -1) {
			/* QEMU's bug, which qmpmuxd kept from its QEMU */
			fd_qemu_died(it, buf, len);
			q.sock = td.dsock;
			p.sock = td.psock;
			qemu_crashes++;
			fresh = 1;
			continue;
		}
		if (q.n != p.n)
			fd_differ(it, buf, len, &q, &p,
			    "not the same number of replies");
		fd_oob_ids(buf, len);
		for (oob = 0; oob < 2; oob++) {
			for (k = 0, j = 0; k < q.n; k++, j++) {
				while (k < q.n && fd_is_oob(q.msgs[k]) != oob)
					k++;
				while (j < p.n && fd_is_oob(p.msgs[j]) != oob)
					j++;
				if (k == q.n && j == p.n)
					break;
				if (k == q.n || j == p.n ||
				    !t_diff_same(q.msgs[k], p.msgs[j]))
					fd_differ(it, buf, len, &q, &p,
					    "replies differ");
			}
		}
		if (q.synced != p.synced)
			fd_differ(it, buf, len, &q, &p,
			    "one side answered the sync, not the other");
		if (q.synced != q.expect)
			fd_differ(it, buf, len, &q, &p, q.synced ?
			    "QEMU answered a sync the framer took in" :
			    "QEMU did not answer a sync the framer read alone");
		/* an open string or object: start both again */
		if (!q.synced) {
			unsynced++;
			fresh = 1;
		}
		if (it % 50 == 49)
			fd_second_client();
	}
	side_clear(&q);
	side_clear(&p);
	t_client_free(q.c);
	t_client_free(p.c);
	fd_second_client();
	ck_assert_msg(t_wait_exit(td.proxy, 0) == -1, "qmpmuxd exited");
	printf("fuzz_diff: seed %llu: %ld inputs, %ld sessions (%ld left "
	    "open), %ld crashes of the direct QEMU, no difference\n",
	    fd_seed, fd_iterations, sessions, unsynced, qemu_crashes);
}
END_TEST

int
main(int argc, char **argv)
{
	Suite	*s;
	TCase	*tc;

	fd_seed = argc > 1 ? strtoull(argv[1], NULL, 10) :
	    (unsigned long long)time(NULL);
	if (argc > 2)
		fd_iterations = strtol(argv[2], NULL, 10);
	printf("fuzz_diff: seed %llu, %ld inputs\n", fd_seed, fd_iterations);
	fflush(stdout);
	s = suite_create("fuzz_diff");
	tc = t_tcase_with(s, "diff", 60 + (int)(fd_iterations / 2),
	    setup, teardown);
	tcase_add_test(tc, test_fuzz_diff);
	return (t_run(s));
}
