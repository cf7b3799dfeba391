/* Small helpers shared by the modules: unix sockets and time. */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "qmpmux.h"

/*
 * Fill a unix socket address with path.  A path that does not fit is
 * ENAMETOOLONG, never cut short: the shorter path would name another
 * socket.  An empty one (EINVAL) would mean an abstract socket.  Every
 * connect and bind of the proxy goes through here.
 */
int
util_sun_path(struct sockaddr_un *sun, const char *path)
{
	size_t	 len = strlen(path);

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (len == 0) {
		errno = EINVAL;
		return (-1);
	}
	if (len >= sizeof(sun->sun_path)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	memcpy(sun->sun_path, path, len);
	return (0);
}

/*
 * Check that path can be a unix socket's, where it enters the
 * configuration (an option, the config file, a control command), so a
 * bad one is refused there and not at its first connect.  On failure,
 * err holds why, for the caller to put after the path.
 */
int
util_check_sun_path(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;

	if (util_sun_path(&sun, path) == 0)
		return (0);
	if (*path == '\0')
		snprintf(err, errlen, "a unix socket path cannot be empty");
	else
		snprintf(err, errlen, "the path is %zu bytes long, and a unix "
		    "socket path can be at most %zu bytes", strlen(path),
		    sizeof(sun.sun_path) - 1);
	return (-1);
}

/*
 * Whether something listens on the socket at sun: 1 if so, 0 if it is
 * stale or gone, -1 (errno set) if that cannot be told.  The probe is a
 * non-blocking connect, which on a unix socket answers at once: it
 * never waits on a listener that does not accept, so it may run on a
 * loop that serves other VMs.  A full backlog (EAGAIN) is a listener.
 */
static int
util_unix_live(const struct sockaddr_un *sun)
{
	int	 fd, rc, saved;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return (-1);
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	saved = errno;
	close(fd);
	if (rc == 0 || saved == EAGAIN || saved == EINPROGRESS)
		return (1);
	if (saved == ECONNREFUSED || saved == ENOENT)
		return (0);
	errno = saved;
	return (-1);
}

/*
 * Make way for a socket at base in the directory dfd: nothing is there,
 * or a stale socket, which is removed.  A live socket is EADDRINUSE and
 * anything else EEXIST: only what is proved dead is replaced.
 */
static int
util_unix_clear(int dfd, const char *base, const struct sockaddr_un *sun)
{
	struct stat	 st;
	int		 live;

	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return (errno == ENOENT ? 0 : -1);
	if (!S_ISSOCK(st.st_mode)) {
		errno = EEXIST;
		return (-1);
	}
	if ((live = util_unix_live(sun)) == -1)
		return (-1);
	if (live) {
		errno = EADDRINUSE;
		return (-1);
	}
	if (unlinkat(dfd, base, 0) == -1 && errno != ENOENT)
		return (-1);
	log_info("removed stale socket %s", sun->sun_path);
	return (0);
}

/*
 * Bind fd to a new temporary name, written to tmp, in the directory dir
 * (open as dfd).  Names carry the pid and a count, and a name in use is
 * passed over, as mkstemp does, so two daemons never share one, even
 * in different pid namespaces.  bind() takes no directory descriptor:
 * where dir/name would not fit in sun_path, the directory is reached
 * through /proc/self/fd, so any path that fits can be listened on,
 * however long its directory.  The umask is tightened around bind so
 * the socket is never reachable with a wider mode, even under this name.
 */
static int
util_unix_bind_tmp(int fd, const char *dir, int dfd, char *tmp,
    size_t tmplen)
{
	static unsigned int	 seq;
	struct sockaddr_un	 sun;
	char			 where[sizeof(sun.sun_path)];
	mode_t			 old;
	int			 i, rc, saved;

	for (i = 0; i < 100; i++) {
		snprintf(tmp, tmplen, ".qmpmuxd.%ld.%u", (long)getpid(), seq++);
		if (snprintf(where, sizeof(where), "%s/%s", dir, tmp) >=
		    (int)sizeof(where))
			snprintf(where, sizeof(where), "/proc/self/fd/%d/%s",
			    dfd, tmp);
		if (util_sun_path(&sun, where) == -1)
			return (-1);
		old = umask(0177);
		rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
		saved = errno;
		umask(old);
		if (rc == 0)
			return (0);
		if (saved != EADDRINUSE) {
			errno = saved;
			return (-1);
		}
	}
	errno = EADDRINUSE;
	return (-1);
}

/*
 * Move from to to in the directory dfd, unless to exists: rename()
 * would replace a socket that another daemon put there since the probe.
 * A filesystem without RENAME_NOREPLACE gets link and unlink, which
 * refuse the same way.  A name taken is EADDRINUSE.
 */
static int
util_rename_new(int dfd, const char *from, const char *to)
{
	int	 rc;

	rc = renameat2(dfd, from, dfd, to, RENAME_NOREPLACE);
	if (rc == -1 && (errno == EINVAL || errno == ENOSYS) &&
	    (rc = linkat(dfd, from, dfd, to, 0)) == 0)
		unlinkat(dfd, from, 0);
	if (rc == -1 && errno == EEXIST)
		errno = EADDRINUSE;
	return (rc);
}

/*
 * Give the socket at name in dfd its owner and group ((uid_t)-1 and
 * (gid_t)-1 leave them); on failure, err says why, for the caller to
 * put after the path.
 */
static int
util_unix_chown(int dfd, const char *name, uid_t owner, gid_t group,
    char *err, size_t errlen)
{
	int	 saved;

	if (owner == (uid_t)-1 && group == (gid_t)-1)
		return (0);
	if (fchownat(dfd, name, owner, group, AT_SYMLINK_NOFOLLOW) == 0)
		return (0);
	saved = errno;
	if (group == (gid_t)-1)
		snprintf(err, errlen, "cannot change its owner to uid %lu: %s",
		    (unsigned long)owner, strerror(saved));
	else if (owner == (uid_t)-1)
		snprintf(err, errlen, "cannot change its group to gid %lu: %s",
		    (unsigned long)group, strerror(saved));
	else
		snprintf(err, errlen, "cannot change its owner to uid %lu and "
		    "its group to gid %lu: %s", (unsigned long)owner,
		    (unsigned long)group, strerror(saved));
	errno = saved;
	return (-1);
}

/*
 * Create a listening unix socket at path with the given mode, owner and
 * group ((uid_t)-1 and (gid_t)-1 leave those of the process).  The path
 * appears only once the socket listens with all three: the socket is
 * bound under a temporary name in the same directory, given its owner,
 * group and mode there, made ready, and renamed into place, so a
 * client that connects the moment the path appears is never refused
 * and never finds a wider mode or another owner.  The temporary name
 * is removed on every failure.  A stale socket at path is replaced; a
 * live one (something listens on it) is not, so two daemons cannot
 * steal each other's VMs: EADDRINUSE.  Nothing here blocks.  On
 * failure errno is set, and err says why, for the caller to put after
 * the path.
 */
int
util_unix_listen_as(const char *path, mode_t mode, uid_t owner,
    gid_t group, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	const char		*slash, *base;
	char			*dir = NULL, tmp[64];
	int			 dfd = -1, fd = -1, bound = 0, saved;

	if (util_sun_path(&sun, path) == -1)
		goto fail_errno;
	slash = strrchr(path, '/');
	base = slash != NULL ? slash + 1 : path;
	if (*base == '\0') {
		errno = EISDIR;
		goto fail_errno;
	}
	if (slash == NULL)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (dir == NULL)
		fatal("%s", __func__);

	if ((dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    util_unix_clear(dfd, base, &sun) == -1 ||
	    (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1 ||
	    util_unix_bind_tmp(fd, dir, dfd, tmp, sizeof(tmp)) == -1)
		goto fail_errno;
	bound = 1;
	/* owner, group and mode, all before it listens and appears */
	if (util_unix_chown(dfd, tmp, owner, group, err, errlen) == -1)
		goto fail;
	if (fchmodat(dfd, tmp, mode, 0) == -1 || listen(fd, 128) == -1 ||
	    util_rename_new(dfd, tmp, base) == -1)
		goto fail_errno;
	close(dfd);
	free(dir);
	return (fd);

fail_errno:
	if (errno == EADDRINUSE)
		snprintf(err, errlen, "another process is listening on it");
	else
		snprintf(err, errlen, "%s", strerror(errno));
fail:
	saved = errno;
	if (bound)
		unlinkat(dfd, tmp, 0);
	if (fd != -1)
		close(fd);
	if (dfd != -1)
		close(dfd);
	free(dir);
	errno = saved;
	return (-1);
}

/*
 * Create a listening unix socket at path with the given mode, owned by
 * the process: util_unix_listen_as, for a caller that has no owner to
 * give and reads only errno.
 */
int
util_unix_listen(const char *path, mode_t mode)
{
	char	 err[256];

	return (util_unix_listen_as(path, mode, (uid_t)-1, (gid_t)-1, err,
	    sizeof(err)));
}

/*
 * libevent's listener accepts until the backlog is empty, all in one
 * callback: a peer that connects again as fast as it is refused (or a
 * crowd of them) would keep the loop there, and the close of a client
 * that would make room is never read.  So after ACCEPT_BURST accepts
 * the listener is disabled, and resume (the listener's retry timer) is
 * set to enable it again on the next turn of the loop, after the
 * events already due.  Call it at the end of every accept callback.
 */
void
util_accept_paced(struct evconnlistener *evl, struct event *resume,
    unsigned int *accepted)
{
	static const struct timeval	now = { 0, 0 };

	if (++*accepted < ACCEPT_BURST)
		return;
	*accepted = 0;
	evconnlistener_disable(evl);
	evtimer_add(resume, &now);
}

/*
 * accept failed, and for EMFILE, ENFILE or ENOBUFS would fail again at
 * once: the connection stays in the backlog and the listener's socket
 * stays readable, so the loop would spin and log without end.  Disable
 * the listener, and let resume (its retry timer, which enables it) run
 * in ACCEPT_RETRY_SECONDS, when descriptors may have been freed.  Call
 * it from every listener's error callback.
 */
void
util_accept_pause(struct evconnlistener *evl, struct event *resume)
{
	static const struct timeval	tv = { ACCEPT_RETRY_SECONDS, 0 };

	evconnlistener_disable(evl);
	evtimer_add(resume, &tv);
}

/* Seconds (fractions allowed) to a timeval; -1 if negative or not finite. */
int
util_timeval(double seconds, struct timeval *tv)
{
	if (!isfinite(seconds) || seconds < 0 || seconds > 1e9)
		return (-1);
	tv->tv_sec = (time_t)seconds;
	tv->tv_usec = (suseconds_t)((seconds - (double)tv->tv_sec) * 1e6);
	return (0);
}

/*
 * Put bytes into a bufferevent's input, as if read: a bufferevent
 * freezes its input's end except while it reads, and an add would fail
 * unseen.
 */
void
util_bev_input(struct bufferevent *bev, const void *buf, size_t len)
{
	struct evbuffer	*in = bufferevent_get_input(bev);

	evbuffer_unfreeze(in, 0);
	if (evbuffer_add(in, buf, len) == -1)
		fatalx("%s: evbuffer_add failed", __func__);
	evbuffer_freeze(in, 0);
}

/*
 * Bytes as lowercase hex, two digits each, into dst (2 * len bytes, no
 * NUL): how the restart state, the fd store's names and the upstream
 * ids carry bytes that need not be UTF-8 or printable.
 */
void
util_hex_encode(char *dst, const void *src, size_t len)
{
	static const char	 digits[] = "0123456789abcdef";
	const unsigned char	*p = src;
	size_t			 i;

	for (i = 0; i < len; i++) {
		dst[i * 2] = digits[p[i] >> 4];
		dst[i * 2 + 1] = digits[p[i] & 0xf];
	}
}

static int
util_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	return (-1);
}

/* The len bytes of 2 * len hex digits; -1 if one is not a digit. */
int
util_hex_decode(void *dst, const char *src, size_t len)
{
	unsigned char	*p = dst;
	size_t		 i;
	int		 hi, lo;

	for (i = 0; i < len; i++) {
		if ((hi = util_nibble(src[i * 2])) == -1 ||
		    (lo = util_nibble(src[i * 2 + 1])) == -1)
			return (-1);
		p[i] = (unsigned char)(hi << 4 | lo);
	}
	return (0);
}

/* Move a monotonic time seconds back, as if it had been then. */
void
util_since(struct timeval *tv, double seconds)
{
	struct timeval	 d;

	if (util_timeval(seconds, &d) == 0)
		timersub(tv, &d, tv);
}

/* The monotonic time, as a timeval. */
void
util_now(struct timeval *tv)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
}

/* Seconds elapsed since a monotonic timeval. */
double
util_elapsed(const struct timeval *since)
{
	struct timeval	 now;

	util_now(&now);
	return ((double)(now.tv_sec - since->tv_sec) +
	    (double)(now.tv_usec - since->tv_usec) / 1e6);
}

/* Parse seconds (fractions allowed, >= 0); -1 if invalid. */
int
util_parse_seconds(const char *s, double *out)
{
	struct timeval	 tv;
	char		*end;
	double		 v;
	size_t		 i, digits = 0;
	int		 point = 0;

	/* decimal only: strtod would also take "0x10", " 1", "1e3", "inf" */
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] >= '0' && s[i] <= '9')
			digits++;
		else if (s[i] == '.' && !point)
			point = 1;
		else
			return (-1);
	}
	if (digits == 0)
		return (-1);
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' ||
	    util_timeval(v, &tv) == -1)
		return (-1);
	*out = v;
	return (0);
}

/* Parse a byte count with an optional K, M or G suffix; -1 if invalid. */
int
util_parse_size(const char *s, size_t *out)
{
	unsigned long long	 v;
	char			*end;
	int			 shift = 0;

	if (*s < '0' || *s > '9')
		return (-1);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
		return (-1);
	switch (*end) {
	case 'K': case 'k':
		shift = 10, end++;
		break;
	case 'M': case 'm':
		shift = 20, end++;
		break;
	case 'G': case 'g':
		shift = 30, end++;
		break;
	}
	if (*end != '\0' || v == 0 || v > (SIZE_MAX >> shift))
		return (-1);
	*out = (size_t)(v << shift);
	return (0);
}

/* Parse an integer in [min, max]; -1 if invalid. */
int
util_parse_uint(const char *s, unsigned int min, unsigned int max,
    unsigned int *out)
{
	unsigned long	 v;
	char		*end;

	if (*s < '0' || *s > '9')
		return (-1);
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return (-1);
	*out = (unsigned int)v;
	return (0);
}

/*
 * The unix socket path in a listening address, "unix:PATH" or a PATH
 * that starts with a slash; NULL if s is not one (then it is
 * ADDRESS:PORT, for util_parse_hostport).
 */
const char *
util_addr_path(const char *s)
{
	if (strncmp(s, "unix:", 5) == 0)
		return (s + 5);
	if (*s == '/')
		return (s);
	return (NULL);
}

/*
 * Parse ADDRESS:PORT, an IPv4 address or an IPv6 one in brackets, with
 * a port from 0 (any free one) to 65535, into ss.  -1 if it is not one.
 */
int
util_parse_hostport(const char *s, struct sockaddr_storage *ss,
    socklen_t *sslen)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)(void *)ss;
	char			 host[INET6_ADDRSTRLEN];
	const char		*colon, *p;
	unsigned long		 port;
	size_t			 n;
	int			 v6 = *s == '[';

	memset(ss, 0, sizeof(*ss));
	if (v6) {
		if ((p = strchr(s, ']')) == NULL || p[1] != ':')
			return (-1);
		colon = p + 1;
		n = (size_t)(p - s - 1);
		s++;
	} else {
		if ((colon = strchr(s, ':')) == NULL ||
		    strchr(colon + 1, ':') != NULL)
			return (-1);
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= sizeof(host))
		return (-1);
	memcpy(host, s, n);
	host[n] = '\0';
	p = colon + 1;
	if (*p == '\0' || strspn(p, "0123456789") != strlen(p) ||
	    strlen(p) > 5 || (port = strtoul(p, NULL, 10)) > 65535)
		return (-1);
	if (v6) {
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return (-1);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*sslen = sizeof(*sin6);
	} else {
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return (-1);
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*sslen = sizeof(*sin);
	}
	return (0);
}

/*
 * Whether bytes for bev may go to its socket at once: nothing waits
 * before them in its output, and its writes are on.
 */
static int
util_bev_idle(struct bufferevent *bev)
{
	return (evbuffer_get_length(bufferevent_get_output(bev)) == 0 &&
	    (bufferevent_get_enabled(bev) & EV_WRITE) != 0 &&
	    bufferevent_getfd(bev) != -1);
}

/*
 * Send the pieces iov[0, n) to bev's socket now, if it is idle, and
 * queue in its output what the socket did not take, in order.  Through
 * the output alone, a command or a reply would arm the write event,
 * wait a turn of the loop for it, be written, and disarm it: two
 * epoll_ctl and an epoll_wait more on each leg of a round trip.  An
 * error is left to the bufferevent, which meets it at its next write,
 * as it would have.  Since the bytes written never enter the output, no
 * write callback runs for them: a caller whose callback must (a closing
 * client's) queues instead.
 */
void
util_bev_writev(struct bufferevent *bev, const struct iovec *iov, int n)
{
	struct msghdr	 mh;
	ssize_t		 w = 0;
	size_t		 skip;
	int		 i;

	if (util_bev_idle(bev)) {
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = (struct iovec *)(uintptr_t)iov;
		mh.msg_iovlen = (size_t)n;
		w = sendmsg(bufferevent_getfd(bev), &mh,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0)
			w = 0;
	}
	for (i = 0; i < n; i++) {
		skip = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
		w -= (ssize_t)skip;
		if (skip < iov[i].iov_len)
			bufferevent_write(bev, (const char *)iov[i].iov_base +
			    skip, iov[i].iov_len - skip);
	}
}

/* The same for the bytes of buf, which is left empty. */
void
util_bev_write_buffer(struct bufferevent *bev, struct evbuffer *buf)
{
	struct evbuffer_iovec	 v[8];
	struct iovec		 iov[8];
	struct msghdr		 mh;
	ssize_t			 w;
	int			 i, n;

	if (util_bev_idle(bev) &&
	    (n = evbuffer_peek(buf, -1, NULL, v, 8)) > 0) {
		if (n > 8)
			n = 8;
		for (i = 0; i < n; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
		}
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)n;
		w = sendmsg(bufferevent_getfd(bev), &mh,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0)
			evbuffer_drain(buf, (size_t)w);
	}
	if (evbuffer_get_length(buf) > 0)
		bufferevent_write_buffer(bev, buf);
}

/*
 * FNV-1a of a path: a socket's name in the fd store, and how a client
 * knows its listener, since a socket cannot say its path.
 */
unsigned int
util_hash(const char *s)
{
	unsigned int	 h = 2166136261U;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619U;
	return (h);
}
