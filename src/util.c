/* Small helpers shared by the modules: unix sockets and time. */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
 * Create a listening unix socket at path with the given mode.  A stale
 * socket file is replaced; a live one (something listens on it) is not,
 * so two daemons cannot steal each other's VMs: EADDRINUSE.  Nothing
 * here blocks.  The umask is tightened around bind so the socket is
 * never reachable with a wider mode.
 */
int
util_unix_listen(const char *path, mode_t mode)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	mode_t			 old;
	int			 fd, live, saved;

	if (util_sun_path(&sun, path) == -1)
		return (-1);

	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		if ((live = util_unix_live(&sun)) == -1)
			return (-1);
		if (live) {
			errno = EADDRINUSE;
			return (-1);
		}
		if (unlink(path) == -1 && errno != ENOENT)
			return (-1);
		log_info("removed stale socket %s", path);
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return (-1);
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		umask(old);
		close(fd);
		errno = saved;
		return (-1);
	}
	umask(old);
	if (chmod(path, mode) == -1 || listen(fd, 128) == -1) {
		saved = errno;
		unlink(path);
		close(fd);
		errno = saved;
		return (-1);
	}
	return (fd);
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
