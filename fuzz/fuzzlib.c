/*
 * The daemon in the fuzz target's process (fuzzlib.h).  One server for
 * the whole run, as a long-lived qmpmuxd: each input is a new
 * connection to it, and must leave it as it found it.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "log.h"
#include "qmp.h"
#include "qmpmux.h"
#include "fuzzlib.h"

char			 fz_dir[PATH_MAX];
struct event_base	*fz_base;
struct server		*fz_server;

int	__real_util_unix_listen_as(const char *, mode_t, uid_t, gid_t,
	    char *, size_t);
int	__wrap_util_unix_listen_as(const char *, mode_t, uid_t, gid_t,
	    char *, size_t);
int	__real_util_unix_listen(const char *, mode_t);
int	__wrap_util_unix_listen(const char *, mode_t);

/* Whether path is in the target's directory, and cannot climb out. */
static int
fz_inside(const char *path)
{
	size_t	 len = strlen(fz_dir);

	return (strncmp(path, fz_dir, len) == 0 && path[len] == '/' &&
	    strstr(path, "/..") == NULL);
}

int
__wrap_util_unix_listen_as(const char *path, mode_t mode, uid_t owner,
    gid_t group, char *err, size_t errlen)
{
	if (!fz_inside(path)) {
		snprintf(err, errlen, "outside the fuzz target's directory");
		errno = EACCES;
		return (-1);
	}
	return (__real_util_unix_listen_as(path, mode, owner, group, err,
	    errlen));
}

int
__wrap_util_unix_listen(const char *path, mode_t mode)
{
	if (!fz_inside(path)) {
		errno = EACCES;
		return (-1);
	}
	return (__real_util_unix_listen(path, mode));
}

/*
 * At exit, the directory goes with what the run left in it (the
 * sockets of VMs an input added and the log); only files are made
 * there.  A crash leaves it, with the input, to look at.
 */
static void
fz_cleanup(void)
{
	struct dirent	*de;
	DIR		*d;
	char		*p;

	if ((d = opendir(fz_dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		p = fz_path(de->d_name);
		unlink(p);
		free(p);
	}
	closedir(d);
	rmdir(fz_dir);
}

/* The target's name, for its complaints. */
static const char	*fz_name = "?";

/*
 * The directory and the loop.  The daemon logs to stderr, as qmpmuxd -d;
 * make fuzz runs the targets with -close_fd_mask=2, under which
 * libFuzzer and the sanitizers still report.
 */
void
fz_init(const char *name)
{
	int	 fd;
	char	*lock;

	fz_name = name;

	/*
	 * A directory the seeds can name (add-vm's sockets), one per
	 * target; a second run of the target at once takes a fresh one.
	 */
	snprintf(fz_dir, sizeof(fz_dir), "/tmp/qmpmux-fuzz-%s", name);
	if (mkdir(fz_dir, 0700) == -1 && errno != EEXIST)
		fatal("mkdir %s", fz_dir);
	lock = fz_path("lock");
	if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1 ||
	    flock(fd, LOCK_EX | LOCK_NB) == -1) {
		snprintf(fz_dir, sizeof(fz_dir), "/tmp/qmpmux-fuzz-%s.XXXXXX",
		    name);
		if (mkdtemp(fz_dir) == NULL)
			fatal("mkdtemp");
	}
	free(lock);
	atexit(fz_cleanup);
	log_init(1, 0);
	if ((fz_base = event_base_new()) == NULL)
		fatalx("event_base_new");
}

char *
fz_path(const char *name)
{
	char	*p;

	if (asprintf(&p, "%s/%s", fz_dir, name) == -1)
		abort();
	return (p);
}

/* Write conf (a qmpmuxd.conf) and start a server from it. */
void
fz_start(const char *conf_text)
{
	struct conf_entries	 cmdline;
	struct conf		 conf;
	char			 err[CONF_ERR_MAX];
	char			*path = fz_path("qmpmuxd.conf");
	FILE			*f;

	if ((f = fopen(path, "w")) == NULL || fputs(conf_text, f) == EOF ||
	    fclose(f) != 0)
		abort();
	TAILQ_INIT(&cmdline);
	fz_server = server_new(fz_base, path, &cmdline);
	if (server_load(fz_server, &conf, err, sizeof(err)) == -1)
		fatalx("fuzz configuration: %s", err);
	if (server_start(fz_server, &conf, NULL) == -1)
		fatalx("fuzz server did not start");
	conf_clear(&conf);
	free(path);
}

/* One turn of the loop: whatever is ready runs, nothing waits. */
void
fz_turn(void)
{
	event_base_loop(fz_base, EVLOOP_NONBLOCK);
}

struct fz_peer *
fz_connect(const char *path)
{
	struct sockaddr_un	 sun;
	struct fz_peer		*p;
	int			 i;

	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->in = evbuffer_new()) == NULL ||
	    (p->out = evbuffer_new()) == NULL)
		abort();
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if ((p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		abort();
	/* the listener is the loop's: a listening socket queues at once */
	for (i = 0; connect(p->fd, (struct sockaddr *)&sun,
	    sizeof(sun)) == -1; i++) {
		if (i == 1000 || (errno != ENOENT && errno != ECONNREFUSED &&
		    errno != EAGAIN)) {
			fprintf(stderr, "fuzz: connect %s: %s\n", path,
			    strerror(errno));
			abort();
		}
		fz_turn();
	}
	return (p);
}

/* Write what the peer has to write, and read what came. */
void
fz_peer_io(struct fz_peer *p)
{
	ssize_t	 n;
	int	 i;

	while (evbuffer_get_length(p->out) > 0) {
		n = evbuffer_write(p->out, p->fd);
		if (n <= 0)
			break;
	}
	if (p->shut == 1 && evbuffer_get_length(p->out) == 0) {
		shutdown(p->fd, SHUT_WR);
		p->shut = 2;
	}
	for (i = 0; i < 64 && !p->eof; i++) {
		n = evbuffer_read(p->in, p->fd, 65536);
		if (n == 0 || (n == -1 && errno != EAGAIN &&
		    errno != EWOULDBLOCK))
			p->eof = 1;
		if (n <= 0)
			break;
	}
}

/* The peer's end of input, once what is queued has gone. */
void
fz_peer_shutdown(struct fz_peer *p)
{
	p->shut = 1;
	fz_peer_io(p);
}

void
fz_peer_free(struct fz_peer *p)
{
	close(p->fd);
	evbuffer_free(p->in);
	evbuffer_free(p->out);
	free(p);
}

/* An invariant broken: say which and with what, and stop. */
void
fz_fail(const char *what, const char *buf, size_t len)
{
	fprintf(stdout, "fuzz_%s: %s: %.*s\n", fz_name, what, (int)len, buf);
	fflush(stdout);
	abort();
}

/*
 * Hand each whole message in in to each, and fail if what who sent is
 * not JSON.
 */
void
fz_take(struct qmp_reader *r, struct evbuffer *in, const char *who,
    void (*each)(struct qmp_msg *, void *), void *arg)
{
	struct qmp_msg	 msg;
	enum qmp_status	 st;
	char		 what[64];

	while ((st = qmp_reader_next(r, in, &msg)) != QMP_NEED_MORE) {
		if (st != QMP_MESSAGE) {
			snprintf(what, sizeof(what), "%s sent invalid JSON",
			    who);
			fz_fail(what, qmp_reader_error(r),
			    strlen(qmp_reader_error(r)));
		}
		each(&msg, arg);
		qmp_msg_clear(&msg);
	}
}

/*
 * One input, as a peer of the socket at path sends it and then shuts
 * down its writing side: the loop turns (and between, if any, after
 * each turn: the fake QEMU) until the server closes the connection,
 * and each whole message sent back goes to each.  Anything sent back
 * that is not JSON, or a server that never closes, is a failure.
 */
void
fz_drive(const char *path, const uint8_t *data, size_t size,
    void (*between)(void), void (*each)(struct qmp_msg *, void *),
    void *arg)
{
	struct fz_peer		*c;
	struct qmp_reader	*r;
	int			 turns;

	if ((r = qmp_reader_new(QMP_SIZE_MAX, QMP_DEPTH_MAX, 0)) == NULL)
		abort();
	c = fz_connect(path);
	evbuffer_add(c->out, data, size);
	fz_peer_shutdown(c);
	for (turns = 0; !c->eof; turns++) {
		if (turns == FZ_TURNS)
			fz_fail("the connection was never closed", path,
			    strlen(path));
		fz_turn();
		fz_peer_io(c);
		if (between != NULL)
			between();
		fz_take(r, c->in, "qmpmuxd", each, arg);
	}
	fz_peer_free(c);
	qmp_reader_free(r);
}
