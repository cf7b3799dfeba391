/*
 * The restart state's reader (src/state.c), in-process: a document a
 * restart hands over is read, checked and taken over by the library's
 * server in this process, as qmpmuxd takes it over at start-up, on
 * real unix sockets at the fd numbers the document names.  Whatever the
 * document says, it is either refused, with why, or taken over without
 * a crash (make check runs this under ASan and UBSan), and then served:
 * QEMU answers, the clients read and hang up.  What it is made of:
 * tests/state-v1.json and a document with every kind of member, each
 * changed one value at a time in every way, and at random.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "qmpmux.h"
#include "testlib.h"

#define FD_BASE		T_STATE_FD(0)
#define PEER_BASE	T_STATE_PEER(0)
#define S_QEMU		T_STATE_PEER(7)	/* vm1's upstream: the fake QEMU */
#define S_C1		T_STATE_PEER(9)	/* vm1's client 1 */
#define S_CTL		T_STATE_PEER(10)	/* the control client */
#define S_C3		T_STATE_PEER(11)	/* vm1's client 3 */

/* The epoch of the rich document's upstream ids: 0x12345678. */
#define S_EPOCH	"12345678"

/* tests/state-v1.json, the version 1 document of docs/STATE.md. */
static char *
s_v1(void)
{
	return (t_state_here(t_slurp(t_bin("STATE_V1"), NULL)));
}

/* Bytes as the hex of a state. */
static char *
s_hex(const char *s)
{
	char	*hex;

	ck_assert_ptr_nonnull(hex = calloc(1, strlen(s) * 2 + 1));
	util_hex_encode(hex, s, strlen(s));
	return (hex);
}

/*
 * A document with a member of every kind: vm1's QEMU stopped behind
 * two commands in flight in band (a stop, and a cont past its
 * deadline) and one out of band, a query queued behind them and a reply
 * of the proxy's held behind that; a client half way through a message
 * and with output not yet written, one out of band, one negotiating;
 * listen mode's socket; a control client tracing vm1 and holding an fd;
 * vm1's lock held by client 1.
 */
static char *
s_rich(void)
{
	char		*wire, *held, *out, *greeting, *doc, *path;
	unsigned int	 hash;
	struct timeval	 now;

	path = t_path("vm1.sock");
	hash = util_hash(path);
	free(path);
	/* saved now: the ages are as they are */
	util_now(&now);
	wire = s_hex("{\"id\": \"" S_EPOCH ".8.1.227122\", \"execute\": "
	    "\"query-status\"}\r\n");
	held = s_hex("{\"error\": {\"class\": \"GenericError\", \"desc\": "
	    "\"held\"}, \"id\": \"h\"}\r\n");
	out = s_hex("{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, "
	    "\"event\": \"STOP\"}\r\n");
	greeting = s_hex("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, "
	    "\"minor\": 2, \"major\": 7}, \"package\": \"\"}, "
	    "\"capabilities\": [\"oob\"]}}\r\n");
	ck_assert_int_ne(asprintf(&doc,
	    "{\"qmpmux_state\": 1, \"qmpmuxd\": \"0.1.0\", \"epoch\": %u, "
	    "\"saved\": %lld.%06ld, \"started\": 1.5, "
	    "\"fdstore\": [\"u.766d31.1\"], "
	    "\"restart_by\": {\"client\": 2, \"id\": \"2263746c22\"}, "
	    "\"control\": {\"path\": \"/run/qmpmux/control.sock\", \"fd\": 8, "
	    "\"next_id\": 4, \"clients\": [{\"id\": 2, \"fd\": 10, "
	    "\"pid\": 5151, \"uid\": 0, \"negotiated\": true, "
	    "\"received\": 81, \"max_message\": 1048576, \"in\": \"7b\", "
	    "\"out\": \"\", \"traces\": [\"vm1\"], \"fds\": [{\"name\": "
	    "\"mon\", \"fd\": 12, \"at\": 40}]}]}, "
	    "\"vms\": [{\"name\": \"vm1\", \"from_file\": true, "
	    "\"given\": [], \"next_client_id\": 3, \"next_cmd_id\": 8, "
	    "\"lock\": {\"last_token\": 3, \"held\": true, \"client\": 1, "
	    "\"token\": 3, \"reason\": \"r\", \"hold\": 10, \"since\": 1, "
	    "\"left\": 9, \"listener\": \"/run/qmpmux/vm1.sock\", \"pid\": "
	    "4242, \"uid\": 107, \"draining\": 0}, "
	    "\"stalled\": 2.5, \"stats\": {\"commands\": 8, \"replies\": 4, "
	    "\"duration_count\": 4, \"duration_sum\": 0.25, "
	    "\"duration_buckets\": [0, 1, 3]}, "
	    "\"upstream\": {\"state\": \"ready\", \"mode\": \"connect\", "
	    "\"path\": \"/run/qmpmux/qemu.sock\", \"since\": 60, \"fd\": 7, "
	    "\"listen_fd\": 13, \"greeting\": \"%s\", \"version\": "
	    "\"7.2.0\", \"oob\": true, \"in\": \"0d0a\", \"out\": \"\"}, "
	    "\"listeners\": [{\"path\": \"/run/qmpmux/vm1.sock\", \"fd\": 6}], "
	    "\"commands\": ["
	    "{\"client\": 1, \"owner\": 1, \"upstream_id\": 6, \"id\": "
	    "\"226122\", \"name\": \"stop\", \"oob\": false, \"sent\": true, "
	    "\"answered\": false, \"expired\": false, \"waited\": false, "
	    "\"age\": 1.25, \"timeout\": 30}, "
	    "{\"client\": 0, \"owner\": 2, \"upstream_id\": 5, \"id\": null, "
	    "\"name\": \"cont\", \"oob\": false, \"sent\": true, "
	    "\"answered\": true, \"expired\": true, \"waited\": true, "
	    "\"age\": 40, \"timeout\": 20}, "
	    "{\"client\": 3, \"owner\": 3, \"upstream_id\": 7, \"id\": "
	    "\"226f22\", \"name\": \"query-kvm\", \"oob\": true, \"sent\": "
	    "true, \"answered\": false, \"expired\": false, \"waited\": "
	    "false, \"age\": 0.5, \"timeout\": 0}, "
	    "{\"client\": 1, \"owner\": 1, \"upstream_id\": 8, \"id\": "
	    "\"227122\", \"name\": \"query-status\", \"oob\": false, "
	    "\"sent\": false, \"answered\": false, \"expired\": false, "
	    "\"waited\": true, \"wire\": \"%s\", \"age\": 0.75, "
	    "\"timeout\": 30}, "
	    "{\"client\": 1, \"held\": \"%s\"}], "
	    "\"clients\": ["
	    "{\"id\": 1, \"fd\": 9, \"listener\": \"/run/qmpmux/vm1.sock\", "
	    "\"state\": \"ready\", \"pid\": 4242, \"uid\": 107, \"oob\": "
	    "false, \"recovered\": false, \"lock_aware\": true, "
	    "\"in\": \"7b2265786563\", "
	    "\"out\": \"%s\", \"order\": [0, 3, 4]}, "
	    "{\"id\": 2, \"fd\": 14, \"listener\": \"/run/qmpmux/vm1.sock\", "
	    "\"state\": \"capabilities\", \"pid\": 4243, \"uid\": 107, "
	    "\"oob\": false, \"in\": \"\", \"out\": \"\", \"order\": []}, "
	    "{\"id\": 3, \"fd\": 11, \"listener_hash\": %u, "
	    "\"state\": \"ready\", \"pid\": 4244, \"uid\": 107, \"oob\": "
	    "true, \"recovered\": true, \"in\": \"\", \"out\": null, "
	    "\"order\": [2]}]}]}", 0x12345678U, (long long)now.tv_sec,
	    (long)now.tv_usec, greeting, wire, held, out, hash), -1);
	free(wire);
	free(held);
	free(out);
	free(greeting);
	return (t_state_here(doc));
}

/* The configuration the documents are taken over with. */
static char *
s_conf(void)
{
	char	*path = t_path("qmpmuxd.conf");
	FILE	*f;

	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fprintf(f, "[global]\ncontrol = %s/control.sock\n"
	    "dump_file = %s/dump.json\ncommand_timeout = 20\n"
	    "[vm vm1]\nupstream = connect:%s/qemu.sock\n"
	    "[listener vm1 %s/vm1.sock]\n", t_dir(), t_dir(), t_dir(),
	    t_dir());
	ck_assert_int_eq(fclose(f), 0);
	return (path);
}

/* Read what came to a peer's fd, into keep if not NULL; -1 at its end. */
static ssize_t
s_drain(int fd, struct evbuffer *keep)
{
	char	 buf[4096];
	ssize_t	 n, all = 0;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (keep != NULL)
			evbuffer_add(keep, buf, (size_t)n);
		all += n;
	}
	return (n == 0 ? -1 : all);
}

/* The fake QEMU writes text, unless the take-over closed its peer. */
static void
s_qemu_write(const char *text)
{
	if (write(S_QEMU, text, strlen(text)) == -1)
		ck_assert_int_eq(errno, EPIPE);
}

/*
 * The fake QEMU at the upstream's peer: every command it was sent is
 * answered with an empty return and its own id.
 */
static void
s_qemu(struct qmp_reader *r, struct evbuffer *in)
{
	struct qmp_msg	 msg;
	struct qmp_span	 id;
	char		*reply;

	if (s_drain(S_QEMU, in) == -1)
		return;
	while (qmp_reader_next(r, in, &msg) == QMP_MESSAGE) {
		id = qmp_msg_id(&msg);
		if (msg.kind == QMP_KIND_COMMAND && id.len > 0) {
			ck_assert_int_ne(asprintf(&reply, "{\"return\": {}, "
			    "\"id\": %.*s}\r\n", (int)id.len, msg.buf + id.off),
			    -1);
			s_qemu_write(reply);
			free(reply);
		}
		qmp_msg_clear(&msg);
	}
}

/* What the clients of a take-over read, until they hung up. */
struct s_got {
	struct evbuffer	*c1;		/* vm1's client 1 */
	struct evbuffer	*c3;		/* vm1's client 3 */
	struct evbuffer	*ctl;		/* the control client */
};

/* If not NULL, s_take_over writes its server's state here (s_save). */
static char	**s_resaved;

/*
 * The state of a running server as a restart writes it (state_save),
 * the current version's document, which must parse while the server
 * still holds what it names.
 */
static char *
s_save(struct server *s, struct control *ctl)
{
	struct state_fds	 fds;
	struct state		*st;
	struct stat		 sb;
	char			 err[512], *doc;
	ssize_t			 n;
	int			 fd;

	memset(&fds, 0, sizeof(fds));
	fd = state_save(s, ctl, 0, NULL, 0, &fds, err, sizeof(err));
	ck_assert_msg(fd != -1, "%s", err);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	ck_assert_ptr_nonnull(doc = calloc(1, (size_t)sb.st_size + 1));
	n = pread(fd, doc, (size_t)sb.st_size, 0);
	ck_assert_int_eq(n, sb.st_size);
	close(fd);
	free(fds.fd);
	/* read back while the server holds what it names */
	st = state_parse(doc, strlen(doc), err, sizeof(err));
	ck_assert_msg(st != NULL, "the writer's document is refused: %s: %s",
	    err, doc);
	state_free(st);
	return (doc);
}

/*
 * Take doc over, as qmpmuxd does at start-up, then serve a while: QEMU
 * answers the commands in flight (upstream ids 3, 5, 6 and 7 of the
 * documents' epoch) and every one it is sent, and the clients read,
 * then hang up.  0 if it was taken over (what the clients read in got,
 * if not NULL), else -1 and err says why it was refused.
 */
static int
s_take_over(const char *doc, struct s_got *got, char *err, size_t errlen)
{
	struct event_base	*base;
	struct server		*s;
	struct conf_entries	 cmdline;
	struct conf		 conf;
	struct state		*st;
	struct qmp_reader	*r;
	struct evbuffer		*in;
	char			*path = s_conf(), cerr[CONF_ERR_MAX];
	char			*reply;
	int			 i;

	t_state_sockets();
	TAILQ_INIT(&cmdline);
	ck_assert_ptr_nonnull(base = event_base_new());
	s = server_new(base, path, &cmdline);
	free(path);
	ck_assert_msg(server_load(s, &conf, cerr, sizeof(cerr)) == 0, "%s",
	    cerr);
	if ((st = state_parse(doc, strlen(doc), err, errlen)) == NULL) {
		conf_clear(&conf);
		server_free(s);
		event_base_free(base);
		t_state_sockets_close();
		return (-1);
	}
	/* as qmpmuxd takes it over */
	ck_assert_int_eq(server_start(s, &conf, st), 0);
	conf_clear(&conf);
	state_free(st);
	if (s_resaved != NULL)
		*s_resaved = s_save(s, s->control);

	ck_assert_ptr_nonnull(r = qmp_reader_new(QMP_SIZE_MAX, QMP_DEPTH_MAX,
	    0));
	ck_assert_ptr_nonnull(in = evbuffer_new());
	ck_assert_int_ne(asprintf(&reply, "{\"return\": {}, \"id\": "
	    "\"%08x.3.0.-\"}\r\n{\"return\": {}, \"id\": \"%08x.5.0.-\"}\r\n"
	    "{\"return\": {}, \"id\": \"%08x.6.0.-\"}\r\n{\"return\": {}, "
	    "\"id\": \"%08x.7.0.-\"}\r\n", s->epoch, s->epoch, s->epoch,
	    s->epoch), -1);
	s_qemu_write(reply);
	free(reply);
	for (i = 0; i < 40; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		s_qemu(r, in);
		s_drain(S_C1, got != NULL ? got->c1 : NULL);
		s_drain(S_C3, got != NULL ? got->c3 : NULL);
		s_drain(S_CTL, got != NULL ? got->ctl : NULL);
		/* half way, the clients go */
		if (i == 20) {
			close(S_C1);
			close(S_C3);
			close(S_CTL);
			close(T_STATE_PEER(14));
		}
	}
	evbuffer_free(in);
	qmp_reader_free(r);
	server_free(s);
	event_base_free(base);
	t_state_sockets_close();
	return (0);
}

/* What the clients read, as strings; freed with s_got_free. */
static void
s_got_init(struct s_got *got)
{
	ck_assert_ptr_nonnull(got->c1 = evbuffer_new());
	ck_assert_ptr_nonnull(got->c3 = evbuffer_new());
	ck_assert_ptr_nonnull(got->ctl = evbuffer_new());
}

/* What a client read, as a string. */
static const char *
s_got_str(struct evbuffer *b)
{
	evbuffer_add(b, "", 1);
	return ((const char *)evbuffer_pullup(b, -1));
}

/* Free what the clients read. */
static void
s_got_free(struct s_got *got)
{
	evbuffer_free(got->c1);
	evbuffer_free(got->c3);
	evbuffer_free(got->ctl);
}

/* Each test in the test's directory: a relative path a document names. */
static void
s_setup(void)
{
	ck_assert_int_eq(chdir(t_dir()), 0);
	signal(SIGPIPE, SIG_IGN);
	log_init(1, 0);
}

/*
 * Mutations of a document: one value (by its place in a walk of the
 * tree, the root first) replaced, removed or repeated.
 */
enum s_op {
	S_REMOVE, S_NULL, S_TRUE, S_FALSE, S_STR, S_MINUS1, S_ZERO,
	S_HUGE, S_MAXINT, S_MININT, S_HALF, S_ARRAY, S_OBJECT, S_BIGINT,
	S_2P32, S_2P31, S_EMPTY, S_NOPS,
	/* random mutations only */
	S_PLUS1 = S_NOPS, S_LESS1, S_SMALL, S_FDNUM, S_ENUM, S_FLIP, S_CUT,
	S_DUP, S_ROPS
};

struct s_mut {
	int		 target;
	enum s_op	 op;
	unsigned int	 seed;
	int		 at;
};

/* How many values a tree holds. */
static int
s_count(yajl_val v)
{
	size_t	 i;
	int	 n = 1;

	if (YAJL_IS_OBJECT(v)) {
		for (i = 0; i < v->u.object.len; i++)
			n += s_count(v->u.object.values[i]);
	} else if (YAJL_IS_ARRAY(v)) {
		for (i = 0; i < v->u.array.len; i++)
			n += s_count(v->u.array.values[i]);
	}
	return (n);
}

static void	s_gen(yajl_gen, yajl_val, struct s_mut *);

/* A number as text. */
static void
s_num(yajl_gen g, const char *text)
{
	yajl_gen_number(g, text, strlen(text));
}

/* The value that takes v's place. */
static void
s_replace_value(yajl_gen g, yajl_val v, struct s_mut *m)
{
	static const char *const enums[] = { "waiting", "capabilities",
	    "ready", "closing", "backoff", "connecting", "listening",
	    "greeting", "negotiating", "closed", "", "vm1", "fd" };
	const char	*e;
	char		 buf[64], *s;
	long long	 n = YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : 0;
	size_t		 len;

	switch (m->op) {
	case S_NULL:	yajl_gen_null(g); break;
	case S_TRUE:	yajl_gen_bool(g, 1); break;
	case S_FALSE:	yajl_gen_bool(g, 0); break;
	case S_STR:
		yajl_gen_string(g, (const unsigned char *)"x", 1);
		break;
	case S_EMPTY:
		yajl_gen_string(g, (const unsigned char *)"", 0);
		break;
	case S_MINUS1:	s_num(g, "-1"); break;
	case S_ZERO:	s_num(g, "0"); break;
	case S_HUGE:	s_num(g, "1e300"); break;
	case S_MAXINT:	s_num(g, "9223372036854775807"); break;
	case S_MININT:	s_num(g, "-9223372036854775808"); break;
	case S_HALF:	s_num(g, "1.5"); break;
	case S_BIGINT:	s_num(g, "99999999999999999999"); break;
	case S_2P32:	s_num(g, "4294967296"); break;
	case S_2P31:	s_num(g, "2147483648"); break;
	case S_ARRAY:
		yajl_gen_array_open(g);
		yajl_gen_array_close(g);
		break;
	case S_OBJECT:
		yajl_gen_map_open(g);
		yajl_gen_map_close(g);
		break;
	case S_PLUS1:
	case S_LESS1:
		snprintf(buf, sizeof(buf), "%lld", m->op == S_PLUS1 ? n + 1 :
		    n - 1);
		s_num(g, buf);
		break;
	case S_SMALL:
		snprintf(buf, sizeof(buf), "%u", m->seed % 24);
		s_num(g, buf);
		break;
	case S_FDNUM:
		snprintf(buf, sizeof(buf), "%u", FD_BASE + m->seed % 80);
		s_num(g, buf);
		break;
	case S_ENUM:
		e = enums[m->seed % (sizeof(enums) / sizeof(enums[0]))];
		yajl_gen_string(g, (const unsigned char *)e, strlen(e));
		break;
	case S_FLIP:
	case S_CUT:
		if (!YAJL_IS_STRING(v)) {
			s_num(g, "7");
			break;
		}
		ck_assert_ptr_nonnull(s = strdup(v->u.string));
		len = strlen(s);
		if (len > 0 && m->op == S_FLIP)
			s[m->seed % len] = "0f9a-/.\\x"[m->seed / 7 % 9];
		else if (len > 0)
			len = m->seed % len;
		yajl_gen_string(g, (const unsigned char *)s, len);
		free(s);
		break;
	default:
		s_gen(g, v, m);
		break;
	}
}

/* One member or element of a container: skipped, repeated or written. */
static void
s_gen_child(yajl_gen g, const char *key, yajl_val v, struct s_mut *m)
{
	int	 me = m->at, n = 1;

	if (me == m->target && m->op == S_REMOVE) {
		m->at += s_count(v);
		return;
	}
	if (me == m->target && m->op == S_DUP)
		n = 2;
	while (n-- > 0) {
		m->at = me;
		if (key != NULL)
			yajl_gen_string(g, (const unsigned char *)key,
			    strlen(key));
		if (me == m->target && m->op != S_DUP) {
			m->at += s_count(v);
			s_replace_value(g, v, m);
		} else
			s_gen(g, v, m);
	}
}

/* Write the tree v with the mutation m. */
static void
s_gen(yajl_gen g, yajl_val v, struct s_mut *m)
{
	size_t	 i;

	m->at++;
	switch (v->type) {
	case yajl_t_object:
		yajl_gen_map_open(g);
		for (i = 0; i < v->u.object.len; i++)
			s_gen_child(g, v->u.object.keys[i],
			    v->u.object.values[i], m);
		yajl_gen_map_close(g);
		break;
	case yajl_t_array:
		yajl_gen_array_open(g);
		for (i = 0; i < v->u.array.len; i++)
			s_gen_child(g, NULL, v->u.array.values[i], m);
		yajl_gen_array_close(g);
		break;
	case yajl_t_string:
		yajl_gen_string(g, (const unsigned char *)v->u.string,
		    strlen(v->u.string));
		break;
	case yajl_t_number:
		s_num(g, v->u.number.r);
		break;
	case yajl_t_true:
	case yajl_t_false:
		yajl_gen_bool(g, v->type == yajl_t_true);
		break;
	default:
		yajl_gen_null(g);
		break;
	}
}

/* text with the mutation m; the caller frees it. */
static char *
s_mutate(const char *text, struct s_mut *m, size_t *len)
{
	yajl_val		 root;
	yajl_gen		 g;
	const unsigned char	*buf;
	char			 err[256], *out;

	ck_assert_ptr_nonnull(root = yajl_tree_parse(text, err, sizeof(err)));
	ck_assert_ptr_nonnull(g = yajl_gen_alloc(NULL));
	m->at = 0;
	/* the root itself is not removed: its first member is */
	if (m->target == 0 && m->op == S_REMOVE)
		m->target = 1;
	if (m->target == 0)
		s_replace_value(g, root, m);
	else
		s_gen(g, root, m);
	yajl_gen_get_buf(g, &buf, len);
	ck_assert_ptr_nonnull(out = malloc(*len + 1));
	memcpy(out, buf, *len);
	out[*len] = '\0';
	yajl_gen_free(g);
	yajl_tree_free(root);
	return (out);
}

/* The number of values of a document's tree. */
static int
s_values(const char *text)
{
	yajl_val	 root;
	char		 err[256];
	int		 n;

	ck_assert_ptr_nonnull(root = yajl_tree_parse(text, err, sizeof(err)));
	n = s_count(root);
	yajl_tree_free(root);
	return (n);
}


/* The place, in the walk s_mutate counts, of the value at path. */
static int
s_find(yajl_val v, int *at, const char *path, char *where, size_t len)
{
	size_t	 i, off = strlen(where);

	if (strcmp(where, path) == 0)
		return (1);
	(*at)++;
	if (YAJL_IS_OBJECT(v)) {
		for (i = 0; i < v->u.object.len; i++) {
			snprintf(where + off, len - off, ".%s",
			    v->u.object.keys[i]);
			if (s_find(v->u.object.values[i], at, path, where, len))
				return (1);
		}
	} else if (YAJL_IS_ARRAY(v)) {
		for (i = 0; i < v->u.array.len; i++) {
			snprintf(where + off, len - off, "[%zu]", i);
			if (s_find(v->u.array.values[i], at, path, where, len))
				return (1);
		}
	}
	where[off] = '\0';
	return (0);
}

/* doc with the value at path (".vms[0].name") changed by op. */
static char *
s_change(const char *doc, const char *path, enum s_op op)
{
	struct s_mut	 m;
	yajl_val	 root;
	char		 where[256] = "";
	size_t		 len;
	int		 at = 0;

	ck_assert_ptr_nonnull(root = yajl_tree_parse(doc, NULL, 0));
	ck_assert_msg(s_find(root, &at, path, where, sizeof(where)),
	    "no %s", path);
	yajl_tree_free(root);
	memset(&m, 0, sizeof(m));
	m.target = at;
	m.op = op;
	return (s_mutate(doc, &m, &len));
}

/* A document that must be refused, with err. */
static void
s_refused(const char *doc, const char *want)
{
	char	 err[512];

	ck_assert_msg(s_take_over(doc, NULL, err, sizeof(err)) == -1,
	    "taken over: %s", doc);
	ck_assert_msg(strcmp(err, want) == 0, "refused with \"%s\", not "
	    "\"%s\"", err, want);
}

/*
 * tests/state-v1.json is taken over: its client gets the reply to its
 * command in flight, and the control client that asked for the restart
 * its answer.
 */
START_TEST(test_v1)
{
	struct s_got	 got;
	char		*doc = s_v1(), err[512];

	s_got_init(&got);
	ck_assert_msg(s_take_over(doc, &got, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(s_got_str(got.c1), "{\"return\": {}, \"id\": \"a\"}"
	    "\r\n");
	ck_assert_str_eq(s_got_str(got.ctl), "{\"return\": {}, \"id\": "
	    "\"ctl\"}\r\n");
	s_got_free(&got);
	free(doc);
}
END_TEST

/*
 * The rich document is taken over, each thing where it was: client 1
 * gets its output of before, then the reply to its stop in flight,
 * then to the query queued behind it (sent once the stop is answered),
 * then the reply held behind that; client 3 the reply to its command
 * out of band; the control client its restart's answer first.
 */
START_TEST(test_rich)
{
	struct s_got	 got;
	char		*doc = s_rich(), err[512];

	s_got_init(&got);
	ck_assert_msg(s_take_over(doc, &got, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(s_got_str(got.c1), "{\"timestamp\": {\"seconds\": 1, "
	    "\"microseconds\": 2}, \"event\": \"STOP\"}\r\n"
	    "{\"return\": {}, \"id\": \"a\"}\r\n"
	    "{\"return\": {}, \"id\": \"q\"}\r\n"
	    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"held\"}, "
	    "\"id\": \"h\"}\r\n");
	ck_assert_str_eq(s_got_str(got.c3), "{\"return\": {}, \"id\": \"o\"}"
	    "\r\n");
	ck_assert_msg(strncmp(s_got_str(got.ctl), "{\"return\": {}, \"id\": "
	    "\"ctl\"}\r\n", 29) == 0, "%s", s_got_str(got.ctl));
	s_got_free(&got);
	free(doc);
}
END_TEST

/*
 * The four changes of one value of tests/state-v1.json that the check
 * passed, when it read only the version, and that then crashed the new
 * process and every connection with it: a command that is not an
 * object (evbuffer_free(NULL) in state_vm_cmds), a command in flight
 * said not sent (no wire: monitor_send on NULL), a client's order
 * without its command (a NULL store in cmd_done), a deadline past any
 * (cmd_adopt's fatalx).  Each is refused now, and says why.
 */
START_TEST(test_crashed)
{
	char	*doc = s_v1(), *bad;

	s_refused(bad = s_change(doc, ".vms[0].commands[0]", S_NULL),
	    "the state's vms[0].commands[0] must be an object");
	free(bad);
	s_refused(bad = s_change(doc, ".vms[0].commands[0].sent", S_FALSE),
	    "the state's vms[0].commands[0].wire is missing, for a command "
	    "not sent");
	free(bad);
	s_refused(bad = s_change(doc, ".vms[0].clients[0].order[0]",
	    S_REMOVE), "the state's vms[0].commands[0].client is 1, whose "
	    "order does not hold it");
	free(bad);
	s_refused(bad = s_change(doc, ".vms[0].commands[0].timeout", S_HUGE),
	    "the state's vms[0].commands[0].timeout must be a number from 0 "
	    "to 1e+09");
	free(bad);
	free(doc);
}
END_TEST

/*
 * Every value of both documents changed in every way of S_NOPS (a type
 * changed, removed, a number out of any range, ...): refused, or taken
 * over and served without a crash.
 */
static void
s_each_value(const char *doc)
{
	struct s_mut	 m;
	char		*text, err[512];
	size_t		 len;
	int		 n = s_values(doc), v, op, taken = 0, refused = 0;

	for (v = 0; v < n; v++) {
		for (op = 0; op < S_NOPS; op++) {
			memset(&m, 0, sizeof(m));
			m.target = v;
			m.op = (enum s_op)op;
			text = s_mutate(doc, &m, &len);
			if (s_take_over(text, NULL, err, sizeof(err)) == 0)
				taken++;
			else
				refused++;
			free(text);
		}
	}
	printf("%d values: %d changes taken over, %d refused\n", n, taken,
	    refused);
	ck_assert_int_gt(refused, 0);
}

START_TEST(test_each_value)
{
	char	*doc;

	s_each_value(doc = s_v1());
	free(doc);
	s_each_value(doc = s_rich());
	free(doc);
}
END_TEST

/*
 * 500 documents, each of the two changed at random one to three times
 * (the changes above, numbers moved by one or to another fd's, names of
 * states and modes, strings cut or a character changed, values given
 * twice): refused, or taken over and served without a crash.  The
 * seed is QMPMUX_STATE_SEED, 1 if unset; each document is in
 * DIR/last.json while it is taken over, kept if that crashes.
 */
START_TEST(test_random)
{
	const char	*env = getenv("QMPMUX_STATE_SEED");
	unsigned int	 seed = env != NULL ? (unsigned int)atoi(env) : 1;
	struct s_mut	 m;
	char		*docs[2], *text, *next, err[512], *last;
	size_t		 len;
	int		 i, j, k, taken = 0;
	FILE		*f;

	printf("seed %u\n", seed);
	srandom(seed);
	docs[0] = s_v1();
	docs[1] = s_rich();
	last = t_path("last.json");
	for (i = 0; i < 500; i++) {
		ck_assert_ptr_nonnull(text = strdup(docs[i % 2]));
		k = 1 + (int)(random() % 3);
		for (j = 0; j < k; j++) {
			memset(&m, 0, sizeof(m));
			m.target = (int)(random() % s_values(text));
			m.op = (enum s_op)(random() % S_ROPS);
			m.seed = (unsigned int)random();
			next = s_mutate(text, &m, &len);
			free(text);
			text = next;
		}
		ck_assert_ptr_nonnull(f = fopen(last, "w"));
		fputs(text, f);
		ck_assert_int_eq(fclose(f), 0);
		taken += s_take_over(text, NULL, err, sizeof(err)) == 0;
		free(text);
	}
	printf("500 documents: %d taken over\n", taken);
	unlink(last);
	free(last);
	free(docs[0]);
	free(docs[1]);
}
END_TEST

/*
 * A VM whose upstream is an fd handed over (the wrapper's, for
 * libvirt) has no path: its state says null, and the reader takes it.
 * The restart of tests/libvirt-e2e.sh was refused for it.
 */
START_TEST(test_fd_upstream)
{
	char		*doc = s_v1(), *fd, err[512];
	struct state	*st;

	ck_assert_ptr_nonnull(strstr(doc, "\"listen_fd\": -1,"));
	fd = t_replace(doc, "\"listen_fd\": -1,", "\"listen_fd\": -1, "
	    "\"mode\": \"fd\", \"path\": null,");
	t_state_sockets();
	st = state_parse(fd, strlen(fd), err, sizeof(err));
	ck_assert_msg(st != NULL, "refused: %s", err);
	state_free(st);
	t_state_sockets_close();
	free(fd);
}
END_TEST

/* A document with the text from replaced by to. */
static char *
s_edit(const char *doc, const char *from, const char *to)
{
	char	*text;

	ck_assert_ptr_nonnull(text = strdup(doc));
	ck_assert_msg(strstr(doc, from) != NULL, "no %s", from);
	return (t_replace(text, from, to));
}

/* A document refused with err, made by an edit of doc. */
static void
s_edit_refused(const char *doc, const char *from, const char *to,
    const char *want)
{
	char	*bad = s_edit(doc, from, to);

	s_refused(bad, want);
	free(bad);
}

/* A JSON array of n numbers, each from. */
static char *
s_array(int n, const char *each)
{
	struct evbuffer	*b;
	char		*out;
	int		 i;

	ck_assert_ptr_nonnull(b = evbuffer_new());
	evbuffer_add(b, "[", 1);
	for (i = 0; i < n; i++)
		evbuffer_add_printf(b, "%s%s", i > 0 ? ", " : "", each);
	evbuffer_add(b, "]", 2);
	out = strdup((const char *)evbuffer_pullup(b, -1));
	evbuffer_free(b);
	return (out);
}

/*
 * What the reader refuses, each with its reason: fds not open, not
 * sockets, of the wrong kind or named twice; names and paths given
 * twice, strings with a NUL, paths too long for a socket; counts past
 * any configuration's bound; ids that name nothing, or are past the
 * next one; members given twice, bad hex, an fd store name that would
 * be a line of its own, an upstream whose fd and state disagree.
 */
START_TEST(test_refusals)
{
	char	*doc = s_v1(), *rich = s_rich(), *dir = t_path(""), *a, *b;
	char	 path[200], want[400];
	int	 p[2];

	/* fds */
	s_edit_refused(doc, "\"fd\": 906}", "\"fd\": 899}", "the state's "
	    "vms[0].listeners[0].fd is fd 899, which is not open");
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(dup2(p[0], 899), 899);
	s_edit_refused(doc, "\"fd\": 906}", "\"fd\": 899}", "the state's "
	    "vms[0].listeners[0].fd is fd 899, which is not a unix socket");
	close(899);
	close(p[0]);
	close(p[1]);
	s_edit_refused(doc, "\"fd\": 906}", "\"fd\": 907}", "the state's "
	    "vms[0].listeners[0].fd is fd 907, which is not listening");
	s_edit_refused(doc, "\"fd\": 909,", "\"fd\": 906,", "the state's "
	    "vms[0].clients[0].fd is fd 906, which is a listening socket");
	s_edit_refused(doc, "\"fd\": 910,", "\"fd\": 909,", "the state's "
	    "vms[0].clients[0].fd is fd 909, which the state names twice");
	s_edit_refused(doc, "\"fd\": 909,", "\"fd\": 2,", "the state's "
	    "vms[0].clients[0].fd is fd 2, a standard stream");
	/* names, paths and strings */
	s_edit_refused(doc, "\"vms\": [", "\"vms\": [{\"name\": \"vm1\"}, ",
	    "the state's vms[1].name is another VM's");
	snprintf(path, sizeof(path), "\"vms\": [{\"name\": \"vm0\", "
	    "\"listeners\": [{\"path\": \"%svm1.sock\", \"fd\": 913}]}, ", dir);
	s_edit_refused(doc, "\"vms\": [", path, "the state's vms[1].listeners "
	    "has a path another listener has");
	s_edit_refused(doc, "\"vm1\"", "\"vm\\u00001\"", "a string of the "
	    "state holds a NUL");
	s_edit_refused(doc, "\"vm1\"", "\"vm 1\"", "the state's vms[0].name "
	    "is not a VM's name");
	memset(path, 'x', sizeof(path));
	path[0] = '/';
	path[108] = '\0';
	snprintf(want, sizeof(want), "\"path\": \"%s\"", path);
	snprintf(path, sizeof(path), "\"path\": \"%svm1.sock\"", dir);
	s_edit_refused(doc, path, want, "the state's vms[0].listeners[0].path "
	    "is not a socket's path: the path is 108 bytes long, and a unix "
	    "socket path can be at most 107 bytes");
	/* counts past what any configuration allows */
	a = s_array(4097, "{\"fd\": 912}");
	ck_assert_int_ne(asprintf(&b, "\"fds\": %s", a), -1);
	s_edit_refused(rich, "\"fds\": [{\"name\": \"mon\", \"fd\": 912, "
	    "\"at\": 40}]", b, "the state's control.clients[0].fds has 4097 "
	    "entries, more than control_max_fds allows");
	free(a);
	free(b);
	/* nine in band in flight: past max_inflight's range */
	ck_assert_int_ne(asprintf(&b, "{\"qmpmux_state\": 1, \"vms\": "
	    "[{\"name\": \"vm1\", \"next_cmd_id\": 9, \"commands\": [%s]}]}",
	    "{\"upstream_id\": 1, \"sent\": true, \"answered\": true}, "
	    "{\"upstream_id\": 2, \"sent\": true, \"answered\": true}, "
	    "{\"upstream_id\": 3, \"sent\": true, \"answered\": true}, "
	    "{\"upstream_id\": 4, \"sent\": true, \"answered\": true}, "
	    "{\"upstream_id\": 5, \"sent\": true, \"answered\": true}, "
	    "{\"upstream_id\": 6, \"sent\": true, \"answered\": true}, "
	    "{\"upstream_id\": 7, \"sent\": true, \"answered\": true}, "
	    "{\"upstream_id\": 8, \"sent\": true, \"answered\": true}, "
	    "{\"upstream_id\": 9, \"sent\": true, \"answered\": true}"), -1);
	s_refused(b, "the state's vms[0].commands has 9 commands in flight, "
	    "more than max_inflight allows");
	free(b);
	/* ids */
	s_edit_refused(doc, "\"state\": \"ready\",\n   \"pid\"",
	    "\"state\": \"dancing\",\n   \"pid\"", "the state's "
	    "vms[0].clients[0].state is not a state of a client's");
	s_edit_refused(doc, "\"next_cmd_id\": 3", "\"next_cmd_id\": 2",
	    "the state's vms[0].commands[0].upstream_id is past the VM's "
	    "next_cmd_id");
	s_edit_refused(doc, "\"next_client_id\": 1", "\"next_client_id\": 0",
	    "the state's vms[0].clients[0].id must be an integer from 1 to 0");
	s_edit_refused(doc, "\"owner\": 1", "\"owner\": 2", "the state's "
	    "vms[0].commands[0].owner is not its client");
	s_edit_refused(rich, "\"owner\": 2", "\"owner\": 5", "the state's "
	    "vms[0].commands[1].owner is 5, a client the VM does not have");
	s_edit_refused(rich, "\"id\": 3, \"fd\": 911", "\"id\": 1, \"fd\": 911",
	    "the state's vms[0].clients[2].id is another client's");
	s_edit_refused(rich, "\"order\": [0, 3, 4]", "\"order\": [0, 3, 4, 4]",
	    "the state's vms[0].clients[0].order holds command 4 twice");
	s_edit_refused(rich, "\"order\": [0, 3, 4]", "\"order\": [0, 2, 3, 4]",
	    "the state's vms[0].clients[0].order holds command 2, of another "
	    "client");
	s_edit_refused(rich, "\"next_id\": 4", "\"next_id\": 1", "the state's "
	    "control.clients[0].id must be an integer from 1 to 1");
	/* members and their values */
	s_edit_refused(doc, "\"name\": \"vm1\",", "\"name\": \"vm1\", "
	    "\"name\": \"vm2\",", "the state's vms[0].name is given twice");
	s_edit_refused(doc, "\"id\": \"226122\"", "\"id\": \"22612\"",
	    "the state's vms[0].commands[0].id must be hex, two digits a byte");
	s_edit_refused(doc, "\"id\": \"226122\"", "\"id\": \"22612g\"",
	    "the state's vms[0].commands[0].id must be hex, two digits a byte");
	s_edit_refused(rich, "[\"u.766d31.1\"]",
	    "[\"u.766d31.1\\nWATCHDOG=1\"]", "the state's fdstore must hold "
	    "the names of the service manager's fd store");
	s_edit_refused(doc, "\"greeting\": \"7b", "\"greeting\": null, \"x\": "
	    "\"7b", "the state's vms[0].upstream.greeting is missing, in state "
	    "ready");
	s_edit_refused(doc, "\"state\": \"ready\", \"since\"",
	    "\"state\": \"backoff\", \"since\"", "the state's "
	    "vms[0].upstream.fd is given, in state backoff");
	s_edit_refused(doc, "\"since\": 3600.5", "\"since\": -1", "the state's "
	    "vms[0].upstream.since must be a number from 0 to 1e+09");
	s_edit_refused(doc, "\"answered\": false", "\"answered\": true",
	    "the state's vms[0].commands[0].client is given, for a command "
	    "answered");
	s_edit_refused(doc, "\"sent\": true",
	    "\"sent\": true, \"wire\": \"0d0a\"", "the state's "
	    "vms[0].commands[0].wire is given, for a command sent");
	free(dir);
	free(rich);
	free(doc);
}
END_TEST

/*
 * A VM the control socket added whose add-vm no longer makes a VM (an
 * entry after its listener's that is no section): it is not made again,
 * and its connections are closed.  Reading it put the listener of the
 * entry before into the VM's list twice, and freeing that list looped.
 */
START_TEST(test_given_bad)
{
	char	*doc = s_v1(), *vm, *bad, err[512];

	ck_assert_int_ne(asprintf(&vm, "\"vms\": [{\"name\": \"vm2\", "
	    "\"from_file\": false, \"given\": [[\"vm\", \"upstream\", "
	    "\"connect:%s/q2.sock\"], [\"listener %s/vm2.sock\", \"\", \"\"], "
	    "[\"bogus\", \"\", \"\"]], \"listeners\": [{\"path\": "
	    "\"%s/vm2.sock\", \"fd\": 913}]}, ", t_dir(), t_dir(), t_dir()),
	    -1);
	bad = s_edit(doc, "\"vms\": [", vm);
	ck_assert_msg(s_take_over(bad, NULL, err, sizeof(err)) == 0, "%s",
	    err);
	free(bad);
	free(vm);
	free(doc);
}
END_TEST

/*
 * Both versions parse: tests/state-v1.json, and the document the current
 * writer makes of the servers that took over it and the rich one, at
 * STATE_VERSION, read while the server still holds what it names.
 */
START_TEST(test_versions)
{
	struct state	*st;
	char		*doc, *saved = NULL, err[512], want[64];
	int		 k;

	for (k = 0; k < 2; k++) {
		doc = k == 0 ? s_v1() : s_rich();
		s_resaved = &saved;
		ck_assert_msg(s_take_over(doc, NULL, err, sizeof(err)) == 0,
		    "%s", err);
		s_resaved = NULL;
		ck_assert_ptr_nonnull(saved);
		snprintf(want, sizeof(want), "{\"qmpmux_state\":%d,",
		    STATE_VERSION);
		ck_assert_msg(strncmp(saved, want, strlen(want)) == 0, "%.80s",
		    saved);
		ck_assert_msg(strstr(saved, "\"name\":\"vm1\"") != NULL, "%s",
		    saved);
		/* the rich document's lock, held by the same client */
		ck_assert_msg(k == 0 || strstr(saved, "\"lock\":{\"last_token\""
		    ":3,\"held\":true,\"client\":1,\"token\":3,") != NULL,
		    "%s", saved);
		free(doc);
		free(saved);
		saved = NULL;
	}
	/* and state_parse alone takes the v1 document, its fds open */
	doc = s_v1();
	t_state_sockets();
	st = state_parse(doc, strlen(doc), err, sizeof(err));
	ck_assert_msg(st != NULL, "%s", err);
	ck_assert_int_eq(json_get_int(state_root(st), "qmpmux_state", 0), 1);
	state_free(st);
	t_state_sockets_close();
	free(doc);
}
END_TEST

/* A lock of the v1 document's VM held by its client 1, then more. */
#define S_LOCK(more)	"\"next_client_id\": 1, \"lock\": {\"last_token\": " \
	"4, \"held\": true, \"client\": 1, \"token\": 4, \"hold\": 10, " \
	"\"left\": 5" more "}"
/* a reason of LOCK_REASON_MAX bytes (256): one more is too long */
#define S_R16		"reason-of-16-by."
#define S_R256		S_R16 S_R16 S_R16 S_R16 S_R16 S_R16 S_R16 S_R16 \
	S_R16 S_R16 S_R16 S_R16 S_R16 S_R16 S_R16 S_R16

/* An edit of the v1 document, and the refusal it must get. */
struct s_broken {
	const char	*from;
	const char	*to;
	const char	*want;
};

static const struct s_broken s_broken[] = {
	/* versions: 1 to STATE_VERSION, an integer */
	{ "{\"qmpmux_state\": 1,", "{\"qmpmux_state\": 0,",
	    "state version 0: this qmpmuxd reads versions 1 to 1" },
	{ "{\"qmpmux_state\": 1,", "{\"qmpmux_state\": 2,",
	    "state version 2: this qmpmuxd reads versions 1 to 1" },
	{ "{\"qmpmux_state\": 1,", "{\"qmpmux_state\": -1,",
	    "state version -1: this qmpmuxd reads versions 1 to 1" },
	{ "{\"qmpmux_state\": 1,", "{\"qmpmux_state\": 1.0,",
	    "state version -1: this qmpmuxd reads versions 1 to 1" },
	{ "{\"qmpmux_state\": 1,", "{\"qmpmux_state\": \"1\",",
	    "state version -1: this qmpmuxd reads versions 1 to 1" },
	{ "{\"qmpmux_state\": 1,", "{\"qmpmux_state\": true,",
	    "state version -1: this qmpmuxd reads versions 1 to 1" },
	{ "{\"qmpmux_state\": 1,", "{\"qmpmux_stat\": 1,",
	    "state version -1: this qmpmuxd reads versions 1 to 1" },
	{ "{\"qmpmux_state\": 1,", "{\"qmpmux_state\": 18446744073709551617,",
	    "state version -1: this qmpmuxd reads versions 1 to 1" },
	/* members missing */
	{ "{\"name\": \"vm1\", ", "{",
	    "the state's vms[0].name is missing" },
	{ "{\"id\": 1, \"fd\": 909,", "{\"fd\": 909,",
	    "the state's vms[0].clients[0].id is missing" },
	{ "\"upstream_id\": 3, ", "",
	    "the state's vms[0].commands[0].upstream_id is missing" },
	/* an upstream without a state is in backoff, which has no fd */
	{ "{\"state\": \"ready\", \"since\"", "{\"since\"",
	    "the state's vms[0].upstream.fd is given, in state backoff" },
	/* of the wrong type */
	{ "\"name\": \"vm1\",", "\"name\": 1,",
	    "the state's vms[0].name must be a string" },
	{ "\"id\": 1, \"fd\": 909,", "\"id\": \"1\", \"fd\": 909,",
	    "the state's vms[0].clients[0].id must be an integer from 1 to 1" },
	{ "\"sent\": true", "\"sent\": \"yes\"",
	    "the state's vms[0].commands[0].sent must be true or false" },
	{ "\"since\": 3600.5", "\"since\": \"3600.5\"",
	    "the state's vms[0].upstream.since must be a number from 0 to "
	    "1e+09" },
	{ "\"negotiated\": true", "\"negotiated\": 1",
	    "the state's control.clients[0].negotiated must be true or false" },
	{ "\"order\": [0]", "\"order\": {}",
	    "the state's vms[0].clients[0].order must be an array" },
	{ "\"order\": [0]", "\"order\": [\"0\"]",
	    "the state's vms[0].clients[0].order must hold indexes of the VM's "
	    "commands" },
	{ "\"listeners\": [", "\"listeners\": 1, \"x\": [",
	    "the state's vms[0].listeners must be an array" },
	{ "\"vms\": [{", "\"vms\": 1, \"x\": [{",
	    "the state's vms must be an array" },
	{ "\"commands\": [{", "\"commands\": [1, {",
	    "the state's vms[0].commands[0] must be an object" },
	/* out of range */
	{ "\"upstream_id\": 3,", "\"upstream_id\": 0,",
	    "the state's vms[0].commands[0].upstream_id must be an integer "
	    "from 1 to 9223372036854775807" },
	{ "\"upstream_id\": 3,", "\"upstream_id\": -3,",
	    "the state's vms[0].commands[0].upstream_id must be an integer "
	    "from 1 to 9223372036854775807" },
	{ "\"timeout\": 30.0}", "\"timeout\": -1}",
	    "the state's vms[0].commands[0].timeout must be a number from 0 to "
	    "1e+09" },
	{ "\"timeout\": 30.0}", "\"timeout\": 1e10}",
	    "the state's vms[0].commands[0].timeout must be a number from 0 to "
	    "1e+09" },
	{ "\"age\": 0.25", "\"age\": -0.25",
	    "the state's vms[0].commands[0].age must be a number from 0 to "
	    "1e+09" },
	{ "\"since\": 3600.5", "\"since\": 1e10",
	    "the state's vms[0].upstream.since must be a number from 0 to "
	    "1e+09" },
	{ "\"next_client_id\": 1", "\"next_client_id\": 2147483648",
	    "the state's vms[0].next_client_id must be an integer from 0 to "
	    "2147483647" },
	{ "\"pid\": 4242", "\"pid\": -2",
	    "the state's vms[0].clients[0].pid must be an integer from -1 to "
	    "2147483647" },
	{ "\"commands\": 3,", "\"commands\": -1,",
	    "the state's vms[0].stats.commands must be an integer from 0 to "
	    "9223372036854775807" },
	{ "\"order\": [0]", "\"order\": [1]",
	    "the state's vms[0].clients[0].order must hold indexes of the VM's "
	    "commands" },
	/* duplicates */
	{ "\"upstream_id\": 3,", "\"upstream_id\": 3, \"upstream_id\": 3,",
	    "the state's vms[0].commands[0].upstream_id is given twice" },
	{ "\"commands\": [{", "\"commands\": [{\"client\": 0, \"owner\": "
	    "0, \"upstream_id\": 3, \"id\": null, \"name\": \"cont\", "
	    "\"oob\": false, \"sent\": true, \"answered\": true, "
	    "\"expired\": false, \"waited\": false, \"age\": 0.25, "
	    "\"timeout\": 30.0}, {",
	    "the state's vms[0].commands has upstream_id 3 twice" },
	{ "\"order\": [0]", "\"order\": [0, 0]",
	    "the state's vms[0].clients[0].order holds command 0 twice" },
	{ "\"qmpmux_state\": 1,",
	    "\"qmpmux_state\": 1, \"qmpmux_state\": 1,",
	    "qmpmux_state is given twice" },
	/* the lock: of its types and ranges, and agreeing with the rest */
	{ "\"next_client_id\": 1", S_LOCK(", \"token\": 5"),
	    "the state's vms[0].lock.token is given twice" },
	{ "\"next_client_id\": 1", "\"next_client_id\": 1, \"lock\": "
	    "{\"last_token\": 4, \"held\": true, \"client\": 1, "
	    "\"token\": 5, \"hold\": 10}",
	    "the state's vms[0].lock.token is past last_token" },
	{ "\"next_client_id\": 1", S_LOCK(", \"reason\": \"" S_R256 "!\""),
	    "the state's vms[0].lock.reason is longer than 256 bytes" },
	{ "\"next_client_id\": 1", "\"next_client_id\": 1, \"lock\": "
	    "{\"last_token\": 4, \"held\": true, \"client\": 1, "
	    "\"token\": 4, \"hold\": 10, \"left\": -1}",
	    "the state's vms[0].lock.left must be a number from 0 to 1e+09" },
	{ "\"next_client_id\": 1", "\"next_client_id\": 1, \"lock\": "
	    "{\"last_token\": 4, \"held\": true, \"client\": 1, "
	    "\"token\": 4, \"hold\": 0}",
	    "the state's vms[0].lock.hold must be above 0" },
	{ "\"next_client_id\": 1", "\"next_client_id\": 1, \"lock\": "
	    "{\"last_token\": \"4\"}",
	    "the state's vms[0].lock.last_token must be an integer from 0 to "
	    "9223372036854775807" },
	{ "\"next_client_id\": 1", "\"next_client_id\": 1, \"lock\": "
	    "{\"last_token\": 4, \"held\": true, \"token\": 4}",
	    "the state's vms[0].lock.client is missing" },
	{ "\"next_client_id\": 1", "\"next_client_id\": 1, \"lock\": "
	    "{\"last_token\": 4, \"held\": true, \"client\": 2, "
	    "\"token\": 4, \"hold\": 10}",
	    "the state's vms[0].lock.client is past the VM's next_client_id" },
	{ "\"next_client_id\": 1", S_LOCK(", \"written\": 1e300"),
	    "the state's vms[0].lock.written is later than now" },
	{ "\"next_client_id\": 1", S_LOCK(", \"draining\": 1"),
	    "the state's vms[0].lock.draining is 1, and 0 commands are a "
	    "gone holder's" },
	{ "\"timeout\": 30.0}", "\"timeout\": 30.0, \"lock_drain\": true}",
	    "the state's vms[0].lock.draining is 0, and 1 commands are a "
	    "gone holder's" },
	{ "\"order\": [0]", "\"order\": [0], \"lock_lost\": 3",
	    "the state's vms[0].clients[0].lock_lost is past the lock's "
	    "last_token" },
	{ "\"order\": [0]", "\"order\": [0], \"lock_fenced\": \"release\"",
	    "the state's vms[0].clients[0].lock_fenced is neither expired nor "
	    "broken" },
	{ "\"sent\": true", "\"sent\": true, \"lock_op\": \"acquire\", "
	    "\"lock_hold\": 1",
	    "the state's vms[0].commands[0].lock_op is given, for a command "
	    "sent, out of band or of no client" },
	{ "\"sent\": true", "\"sent\": true, \"lock_op\": \"steal\"",
	    "the state's vms[0].commands[0].lock_op is neither acquire nor "
	    "release" },
	{ "\"sent\": true", "\"sent\": false, \"lock_op\": \"acquire\"",
	    "the state's vms[0].commands[0].lock_hold must be above 0, for an "
	    "acquire" },
	{ "\"sent\": true", "\"sent\": true, \"mutation\": 1",
	    "the state's vms[0].commands[0].mutation must be true or false" },
	/* the commands kept across a crash, with their deadlines */
	{ "\"next_client_id\": 1", "\"next_client_id\": 1, \"sent\": "
	    "[{\"epoch\": 7, \"seq\": 3, \"client\": 2, \"name\": \"stop\"}]",
	    "the state's vms[0].sent[0].client is past the VM's "
	    "next_client_id" },
	{ "\"next_client_id\": 1", "\"next_client_id\": 1, \"sent\": "
	    "[{\"epoch\": 7, \"seq\": 3, \"client\": 1, \"name\": "
	    "\"st\\nop\"}]",
	    "the state's vms[0].sent[0].name is not a command's name" },
	{ "\"next_client_id\": 1", "\"next_client_id\": 1, \"sent\": "
	    "[{\"epoch\": 7, \"seq\": 3, \"client\": 1, \"name\": \"stop\"}, "
	    "{\"epoch\": 7, \"seq\": 3, \"client\": 1, \"name\": \"cont\"}]",
	    "the state's vms[0].sent[1].seq is given twice" },
	{ "\"next_client_id\": 1", "\"next_client_id\": 1, \"sent\": "
	    "[{\"epoch\": 7, \"client\": 1, \"name\": \"stop\"}]",
	    "the state's vms[0].sent[0].seq is missing" },
	{ "\"next_client_id\": 1", "\"next_client_id\": 1, \"sent\": "
	    "[{\"epoch\": 7, \"seq\": 3, \"client\": 1, \"name\": \"stop\", "
	    "\"expired\": 1}]",
	    "the state's vms[0].sent[0].expired must be true or false" },
};

/* Each broken form of the v1 document is refused, with its message. */
START_TEST(test_broken)
{
	char	*doc = s_v1();

	s_edit_refused(doc, s_broken[_i].from, s_broken[_i].to,
	    s_broken[_i].want);
	free(doc);
}
END_TEST

/* The suite: taken over, refused, and neither crashing, at random. */
static Suite *
state_suite(void)
{
	Suite	*s = suite_create("state");
	TCase	*tc = t_tcase_with(s, "state", 120, s_setup, NULL);

	tcase_add_test(tc, test_v1);
	tcase_add_test(tc, test_rich);
	tcase_add_test(tc, test_crashed);
	tcase_add_test(tc, test_fd_upstream);
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_given_bad);
	tcase_add_test(tc, test_versions);
	tcase_add_loop_test(tc, test_broken, 0,
	    (int)(sizeof(s_broken) / sizeof(s_broken[0])));
	tcase_add_test(tc, test_each_value);
	tcase_add_test(tc, test_random);
	return (s);
}

int
main(void)
{
	return (t_run(state_suite()));
}
