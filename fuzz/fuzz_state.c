/*
 * The restart state (src/state*.c): the input is a state document, as a
 * restart in place or a crash hands one over, its "/run/qmpmux/" paths
 * read as the target's directory.  The sockets it may name are made
 * anew for each input, at FZ_FD(N) for the numbers N of
 * tests/state-v1.json and tests/check_state.c's documents (listening or
 * connected as there; a connection's peer at FZ_PEER(N)), and the seeds
 * name them so.  state_parse reads the document; one it accepts is
 * taken over by a server made for it, as qmpmuxd does (server_start), and
 * served a while: QEMU, at the upstream's peer, answers every command
 * it is sent, the clients read, then hang up; then the server is freed.
 *
 * Beyond not crashing:
 * - a refused document says why, and closes none of the sockets;
 * - once the server of a document taken over is freed, every fd the
 *   document names is closed, taken over or let go, and every other
 *   socket of the target's is open: the take-over closes what it was
 *   given, and nothing else (the leak checker runs per input too);
 * - nothing is made or removed outside the target's directory:
 *   util_unix_listen, util_unix_listen_as (fuzzlib) and unlink (here)
 *   are wrapped, and refuse any other path.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <yajl/yajl_tree.h>

#include "log.h"
#include "qmp.h"
#include "qmpmux.h"
#include "fuzzlib.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	__real_unlink(const char *);
int	__wrap_unlink(const char *);

#define FZ_FD(n)	(900 + (n))
#define FZ_PEER(n)	(950 + (n))

/* The sockets a document may name, by their numbers in the seeds. */
static const struct {
	int	 num;
	int	 listening;
} fz_fds[] = {
	{ 6, 1 },	/* vm1's listener */
	{ 7, 0 },	/* vm1's upstream: QEMU at the peer */
	{ 8, 1 },	/* the control socket */
	{ 9, 0 },	/* vm1's client 1 */
	{ 10, 0 },	/* the control client */
	{ 11, 0 },	/* vm1's client 3 */
	{ 12, 0 },	/* an fd the control client passed */
	{ 13, 1 },	/* vm1's listen mode socket */
	{ 14, 0 },	/* vm1's client 2 */
};
#define FZ_NFDS		(sizeof(fz_fds) / sizeof(fz_fds[0]))
#define FZ_TURNS_STATE	40	/* turns of the loop a document is served */

static char	*fz_conf;

/* A path the take-over removes: only in the target's directory. */
int
__wrap_unlink(const char *path)
{
	size_t	 len = strlen(fz_dir);

	if (strncmp(path, fz_dir, len) != 0 || path[len] != '/' ||
	    strstr(path, "/..") != NULL) {
		errno = EACCES;
		return (-1);
	}
	return (__real_unlink(path));
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FILE	*f;

	fz_init("state");
	signal(SIGPIPE, SIG_IGN);
	fz_conf = fz_path("qmpmuxd.conf");
	if ((f = fopen(fz_conf, "w")) == NULL || fprintf(f, "[global]\n"
	    "control = %s/control.sock\ndump_file = %s/dump.json\n"
	    "command_timeout = 20\n[vm vm1]\nupstream = connect:%s/qemu.sock\n"
	    "[listener vm1 %s/vm1.sock]\n", fz_dir, fz_dir, fz_dir,
	    fz_dir) < 0 || fclose(f) != 0)
		abort();
	return (0);
}

/* Make the sockets, each at its number. */
static void
fz_sockets(void)
{
	struct sockaddr_un	 sun;
	size_t			 i;
	int			 fd, sp[2], num;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	for (i = 0; i < FZ_NFDS; i++) {
		num = fz_fds[i].num;
		if (fz_fds[i].listening) {
			if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
			    0)) == -1 || bind(fd, (struct sockaddr *)&sun,
			    sizeof(sa_family_t)) == -1 || listen(fd, 8) == -1 ||
			    dup2(fd, FZ_FD(num)) == -1)
				abort();
			close(fd);
			continue;
		}
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) ==
		    -1 || dup2(sp[0], FZ_FD(num)) == -1 ||
		    dup2(sp[1], FZ_PEER(num)) == -1 ||
		    fcntl(FZ_PEER(num), F_SETFL, O_NONBLOCK) == -1)
			abort();
		close(sp[0]);
		close(sp[1]);
	}
}

/* Whether fd is open. */
static int
fz_open(int fd)
{
	return (fcntl(fd, F_GETFD) != -1);
}

/* Mark in named (by its number here) an fd member of o, if one of ours. */
static void
fz_mark(yajl_val o, const char *key, int *named)
{
	const char	*path[] = { key, NULL };
	yajl_val	 v = YAJL_IS_OBJECT(o) ? yajl_tree_get(o, path,
			    yajl_t_number) : NULL;
	long long	 n;

	if (v == NULL || !YAJL_IS_INTEGER(v))
		return;
	n = YAJL_GET_INTEGER(v);
	if (n >= FZ_FD(0) && n < FZ_FD(32))
		named[n - FZ_FD(0)] = 1;
}

/* The array key of o, or NULL. */
static yajl_val
fz_array(yajl_val o, const char *key)
{
	const char	*path[] = { key, NULL };

	return (YAJL_IS_OBJECT(o) ? yajl_tree_get(o, path, yajl_t_array) :
	    NULL);
}

/*
 * Mark each fd of ours the document names, where the reader takes fds
 * from (docs/STATE.md): a member it does not know is not read.
 */
static void
fz_named(yajl_val root, int *named)
{
	const char	*cpath[] = { "control", NULL };
	const char	*upath[] = { "upstream", NULL };
	yajl_val	 ctl, vms, a, f, vm;
	size_t		 i, j, k;

	ctl = yajl_tree_get(root, cpath, yajl_t_object);
	fz_mark(ctl, "fd", named);
	a = fz_array(ctl, "clients");
	for (i = 0; a != NULL && i < a->u.array.len; i++) {
		fz_mark(a->u.array.values[i], "fd", named);
		f = fz_array(a->u.array.values[i], "fds");
		for (j = 0; f != NULL && j < f->u.array.len; j++)
			fz_mark(f->u.array.values[j], "fd", named);
	}
	vms = fz_array(root, "vms");
	for (i = 0; vms != NULL && i < vms->u.array.len; i++) {
		vm = vms->u.array.values[i];
		if (!YAJL_IS_OBJECT(vm))
			continue;
		fz_mark(yajl_tree_get(vm, upath, yajl_t_object), "fd", named);
		fz_mark(yajl_tree_get(vm, upath, yajl_t_object), "listen_fd",
		    named);
		for (k = 0; k < 2; k++) {
			a = fz_array(vm, k == 0 ? "listeners" : "clients");
			for (j = 0; a != NULL && j < a->u.array.len; j++)
				fz_mark(a->u.array.values[j], "fd", named);
		}
	}
}

/* Read what came to a peer, to nothing; whether it is still there. */
static void
fz_drain(int fd, struct evbuffer *keep)
{
	char	 buf[4096];
	ssize_t	 n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (keep != NULL)
			evbuffer_add(keep, buf, (size_t)n);
	}
}

/* The fake QEMU: each command it is sent answered with its own id. */
static void
fz_qemu(struct qmp_reader *r, struct evbuffer *in)
{
	struct qmp_msg	 msg;
	struct qmp_span	 id;
	char		*reply;
	int		 n;

	fz_drain(FZ_PEER(7), in);
	while (qmp_reader_next(r, in, &msg) == QMP_MESSAGE) {
		id = qmp_msg_id(&msg);
		if (msg.kind == QMP_KIND_COMMAND && id.len > 0) {
			if ((n = asprintf(&reply, "{\"return\": {}, \"id\": "
			    "%.*s}\r\n", (int)id.len, msg.buf + id.off)) == -1)
				abort();
			/* unless the take-over let its connection go */
			if (write(FZ_PEER(7), reply, (size_t)n) == -1 &&
			    errno != EPIPE)
				abort();
			free(reply);
		}
		qmp_msg_clear(&msg);
	}
	/* what is left is not a command of the proxy's */
	evbuffer_drain(in, evbuffer_get_length(in));
}

/* The document of the input, its paths in the target's directory. */
static char *
fz_doc(const uint8_t *data, size_t size)
{
	struct evbuffer	*b;
	const char	*from = "/run/qmpmux/";
	char		*doc;
	size_t		 i, len = strlen(from);

	if ((b = evbuffer_new()) == NULL)
		abort();
	for (i = 0; i < size; i++) {
		if (size - i >= len && memcmp(data + i, from, len) == 0) {
			evbuffer_add_printf(b, "%s/", fz_dir);
			i += len - 1;
		} else
			evbuffer_add(b, data + i, 1);
	}
	if ((doc = malloc(evbuffer_get_length(b) + 1)) == NULL)
		abort();
	i = evbuffer_get_length(b);
	evbuffer_remove(b, doc, i);
	doc[i] = '\0';
	evbuffer_free(b);
	return (doc);
}

/* Take the document over as qmpmuxd does, and serve it a while. */
static void
fz_take_over(struct state *st)
{
	struct conf_entries	 cmdline;
	struct conf		 conf;
	struct server		*s;
	struct qmp_reader	*r;
	struct evbuffer		*in;
	char			 err[CONF_ERR_MAX];
	size_t			 i;
	int			 turn;

	TAILQ_INIT(&cmdline);
	s = server_new(fz_base, fz_conf, &cmdline);
	if (server_load(s, &conf, err, sizeof(err)) == -1)
		fatalx("fuzz configuration: %s", err);
	if (server_start(s, &conf, st) == -1)
		fz_fail("the take-over did not start", "", 0);
	conf_clear(&conf);

	if ((r = qmp_reader_new(QMP_SIZE_MAX, QMP_DEPTH_MAX, 0)) == NULL ||
	    (in = evbuffer_new()) == NULL)
		abort();
	for (turn = 0; turn < FZ_TURNS_STATE; turn++) {
		fz_turn();
		fz_qemu(r, in);
		for (i = 0; i < FZ_NFDS; i++) {
			if (!fz_fds[i].listening && fz_fds[i].num != 7)
				fz_drain(FZ_PEER(fz_fds[i].num), NULL);
		}
		/* half way, the clients hang up */
		if (turn == FZ_TURNS_STATE / 2) {
			for (i = 0; i < FZ_NFDS; i++) {
				if (!fz_fds[i].listening && fz_fds[i].num != 7)
					close(FZ_PEER(fz_fds[i].num));
			}
		}
	}
	evbuffer_free(in);
	qmp_reader_free(r);
	server_free(s);
	/* what the loop still had for them: their frees */
	for (turn = 0; turn < FZ_TURNS_STATE; turn++)
		fz_turn();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state	*st;
	yajl_val	 tree;
	char		*doc, err[512];
	int		 named[32];
	size_t		 i;
	int		 fd;

	doc = fz_doc(data, size);
	fz_sockets();
	memset(named, 0, sizeof(named));
	err[0] = '\0';
	if ((st = state_parse(doc, strlen(doc), err, sizeof(err))) == NULL) {
		if (err[0] == '\0')
			fz_fail("a document refused without a reason", doc,
			    strlen(doc));
		log_info("refused: %s", err);
		for (i = 0; i < FZ_NFDS; i++) {
			if (!fz_open(FZ_FD(fz_fds[i].num)))
				fz_fail("a refused document closed a socket",
				    doc, strlen(doc));
		}
	} else {
		if ((tree = yajl_tree_parse(doc, NULL, 0)) == NULL)
			fz_fail("a document taken over is not JSON", doc,
			    strlen(doc));
		fz_named(tree, named);
		yajl_tree_free(tree);
		fz_take_over(st);
		state_free(st);
		for (i = 0; i < FZ_NFDS; i++) {
			fd = FZ_FD(fz_fds[i].num);
			if (named[fz_fds[i].num] && fz_open(fd))
				fz_fail("an fd of the document was left open",
				    doc, strlen(doc));
			if (!named[fz_fds[i].num] && !fz_open(fd))
				fz_fail("an fd the document does not name was "
				    "closed", doc, strlen(doc));
		}
	}
	for (i = 0; i < FZ_NFDS; i++) {
		close(FZ_FD(fz_fds[i].num));
		close(FZ_PEER(fz_fds[i].num));
	}
	free(doc);
	return (0);
}
