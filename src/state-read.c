/*
 * The reader's members: each reads one member of the document, checks
 * it (its type, its range, an fd's kind) and refuses the whole
 * document with one sentence saying which member and why
 * (state_refuse); state-parse.c reads the document's parts with them.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "state.h"

/*
 * Refuse the document: err says which member (at, then key) and why,
 * as one sentence.  Only the first reason is kept.
 */
int
state_refuse(struct state_rd *rd, const char *at, const char *key,
    const char *fmt, ...)
{
	char	 why[256];
	va_list	 ap;

	if (rd->failed)
		return (-1);
	rd->failed = 1;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(rd->err, rd->errlen, "the state's %s%s%s %s", at,
	    *at != '\0' && key != NULL ? "." : "", key != NULL ? key : "",
	    why);
	return (-1);
}

/* The member key of object o in *v, NULL if none; -1 if given twice. */
int
state_rd_member(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, yajl_val *v)
{
	size_t	 i;

	*v = NULL;
	for (i = 0; i < o->u.object.len; i++) {
		if (strcmp(o->u.object.keys[i], key) != 0)
			continue;
		if (*v != NULL)
			return (state_refuse(rd, at, key, "is given twice"));
		*v = o->u.object.values[i];
	}
	return (0);
}

/* An integer member from min to max; dflt if it is missing. */
int
state_rd_int(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, long long min, long long max, long long dflt,
    int flags, long long *out)
{
	yajl_val	 v;

	if (state_rd_member(rd, o, at, key, &v) == -1)
		return (-1);
	if (v == NULL) {
		*out = dflt;
		return ((flags & STATE_REQ) ? state_refuse(rd, at, key,
		    "is missing") : 0);
	}
	if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < min ||
	    YAJL_GET_INTEGER(v) > max)
		return (state_refuse(rd, at, key, "must be an integer from "
		    "%lld to %lld", min, max));
	*out = YAJL_GET_INTEGER(v);
	return (0);
}

/* A number member from min to max (seconds, mostly); dflt if missing. */
int
state_rd_double(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, double min, double max, double dflt, double *out)
{
	yajl_val	 v;

	*out = dflt;
	if (state_rd_member(rd, o, at, key, &v) == -1)
		return (-1);
	if (v == NULL)
		return (0);
	if (!YAJL_IS_DOUBLE(v) || !isfinite(YAJL_GET_DOUBLE(v)) ||
	    YAJL_GET_DOUBLE(v) < min || YAJL_GET_DOUBLE(v) > max)
		return (state_refuse(rd, at, key, "must be a number from %g "
		    "to %g", min, max));
	*out = YAJL_GET_DOUBLE(v);
	return (0);
}

/* A boolean member; false if it is missing. */
int
state_rd_bool(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, int *out)
{
	yajl_val	 v;

	*out = 0;
	if (state_rd_member(rd, o, at, key, &v) == -1)
		return (-1);
	if (v == NULL)
		return (0);
	if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
		return (state_refuse(rd, at, key, "must be true or false"));
	*out = YAJL_IS_TRUE(v);
	return (0);
}

/* A string member of at most max bytes; NULL if missing (or null). */
int
state_rd_str(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, size_t max, int flags, const char **out)
{
	yajl_val	 v;

	*out = NULL;
	if (state_rd_member(rd, o, at, key, &v) == -1)
		return (-1);
	if (v == NULL || ((flags & STATE_NULL) && YAJL_IS_NULL(v)))
		return ((flags & STATE_REQ) ? state_refuse(rd, at, key,
		    "is missing") : 0);
	if (!YAJL_IS_STRING(v))
		return (state_refuse(rd, at, key, "must be a string"));
	if (strlen(v->u.string) > max)
		return (state_refuse(rd, at, key, "is longer than %zu bytes",
		    max));
	*out = v->u.string;
	return (0);
}

/* A unix socket's path, as the configuration would take it. */
int
state_rd_path(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, int flags, const char **out)
{
	char	 why[256];

	if (state_rd_str(rd, o, at, key, SIZE_MAX, flags, out) == -1)
		return (-1);
	if (*out != NULL && util_check_sun_path(*out, why, sizeof(why)) ==
	    -1)
		return (state_refuse(rd, at, key, "is not a socket's path: "
		    "%s", why));
	return (0);
}

/* Free bytes of the description, leaving none. */
void
state_bytes_free(struct state_bytes *b)
{
	free(b->buf);
	b->buf = NULL;
	b->len = 0;
}

/* A byte string member: hex, or null (or missing) for none. */
int
state_rd_hex(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, int flags, struct state_bytes *out)
{
	const char	*hex;
	size_t		 n;

	if (state_rd_str(rd, o, at, key, SIZE_MAX, flags | STATE_NULL,
	    &hex) == -1 || hex == NULL)
		return (rd->failed ? -1 : 0);
	n = strlen(hex);
	if (n % 2 != 0)
		return (state_refuse(rd, at, key, "must be hex, two digits a "
		    "byte"));
	if (n == 0 && (flags & STATE_MSG))
		return (state_refuse(rd, at, key, "must hold a message, not "
		    "nothing"));
	if ((out->buf = malloc(n / 2 + 1)) == NULL)
		fatal("%s", __func__);
	if (util_hex_decode(out->buf, hex, n / 2) == -1)
		return (state_refuse(rd, at, key, "must be hex, two digits a "
		    "byte"));
	out->buf[n / 2] = '\0';
	out->len = n / 2;
	return (0);
}

/* Whether fd is what want says; NULL if so, else what it is not. */
static const char *
state_fd_is(int fd, enum state_fd want)
{
	socklen_t	 len;
	int		 v;

	if (fcntl(fd, F_GETFD) == -1)
		return ("not open");
	if (want == STATE_FD_ANY)
		return (NULL);
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) == -1 ||
	    v != AF_UNIX)
		return ("not a unix socket");
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == -1 ||
	    v != SOCK_STREAM)
		return ("not a stream socket");
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == -1)
		return ("not a socket");
	if (v == 0 && want == STATE_FD_LISTENING)
		return ("not listening");
	if (v != 0 && want == STATE_FD_CONNECTED)
		return ("a listening socket");
	return (NULL);
}

/*
 * An fd member: an fd this process has open, of the kind want, named
 * nowhere else in the document.  -1 is none: allowed unless STATE_REQ.
 */
int
state_rd_fd(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, enum state_fd want, int flags, int *out)
{
	long long	 v;
	const char	*why;
	unsigned char	*n;
	size_t		 len;

	*out = -1;
	if (state_rd_int(rd, o, at, key, -1, INT_MAX, -1, flags, &v) == -1)
		return (-1);
	if (v == -1)
		return ((flags & STATE_REQ) ? state_refuse(rd, at, key,
		    "must be an fd, not -1") : 0);
	if (v < 3)
		return (state_refuse(rd, at, key, "is fd %lld, a standard "
		    "stream", v));
	if ((why = state_fd_is((int)v, want)) != NULL)
		return (state_refuse(rd, at, key, "is fd %lld, which is %s",
		    v, why));
	/* open, so below the process's limit on fds: a bit each */
	if ((size_t)v / 8 >= rd->fdslen) {
		len = (size_t)v / 8 + 64;
		if ((n = realloc(rd->fds, len)) == NULL)
			fatal("%s", __func__);
		memset(n + rd->fdslen, 0, len - rd->fdslen);
		rd->fds = n;
		rd->fdslen = len;
	}
	if (rd->fds[v / 8] & (1 << (v % 8)))
		return (state_refuse(rd, at, key, "is fd %lld, which the state "
		    "names twice", v));
	rd->fds[v / 8] |= (unsigned char)(1 << (v % 8));
	*out = (int)v;
	return (0);
}

/* A member that must be an object; *out NULL if it is missing. */
int
state_rd_object(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, int flags, yajl_val *out)
{
	if (state_rd_member(rd, o, at, key, out) == -1)
		return (-1);
	if (*out == NULL || ((flags & STATE_NULL) && YAJL_IS_NULL(*out))) {
		*out = NULL;
		return ((flags & STATE_REQ) ? state_refuse(rd, at, key,
		    "is missing") : 0);
	}
	if (!YAJL_IS_OBJECT(*out))
		return (state_refuse(rd, at, key, "must be an object"));
	return (0);
}

/*
 * Whether n things fit the bound that the configuration key bound sets,
 * at its most: a count beyond its range is one no qmpmuxd holds, however
 * it was configured.  (A reload may lower the bound below what is held
 * then, so the value the key has now is not the bound here.)
 */
int
state_within(const char *bound, size_t n)
{
	char	 num[32], err[CONF_ERR_MAX];

	snprintf(num, sizeof(num), "%zu", n);
	return (n == 0 || conf_check_value(bound, num, err, sizeof(err)) == 0);
}

/* A number and where it was, for state_dup. */
struct state_num {
	long long		 v;
	size_t			 i;
};

/* qsort's order of numbers, and of their places among equal ones. */
static int
state_num_cmp(const void *a, const void *b)
{
	const struct state_num	*x = a, *y = b;

	if (x->v != y->v)
		return (x->v < y->v ? -1 : 1);
	return (x->i < y->i ? -1 : x->i > y->i);
}

/*
 * Which of n numbers (ids) is one given before it: the first such in
 * their order; -1 if none is.  They are sorted, so that a document of
 * many ids takes no more than a moment.
 */
ssize_t
state_dup(const long long *v, size_t n)
{
	struct state_num	*s;
	ssize_t			 dup = -1;
	size_t			 i;

	if ((s = calloc(n + 1, sizeof(*s))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < n; i++) {
		s[i].v = v[i];
		s[i].i = i;
	}
	qsort(s, n, sizeof(*s), state_num_cmp);
	for (i = 1; i < n; i++) {
		if (s[i].v == s[i - 1].v && (dup == -1 || s[i].i <
		    (size_t)dup))
			dup = (ssize_t)s[i].i;
	}
	free(s);
	return (dup);
}

/* Whether id is one of n sorted numbers. */
int
state_has(const long long *sorted, size_t n, long long id)
{
	size_t	 lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (sorted[mid] == id)
			return (1);
		if (sorted[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (0);
}

/*
 * A member that must be an array; *out NULL if it is missing.  Its
 * length is within what the configuration key bound allows, if any.
 */
int
state_rd_array(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, const char *bound, int flags, yajl_val *out)
{
	if (state_rd_member(rd, o, at, key, out) == -1)
		return (-1);
	if (*out == NULL)
		return ((flags & STATE_REQ) ? state_refuse(rd, at, key,
		    "is missing") : 0);
	if (!YAJL_IS_ARRAY(*out))
		return (state_refuse(rd, at, key, "must be an array"));
	if (bound != NULL && !state_within(bound, (*out)->u.array.len))
		return (state_refuse(rd, at, key, "has %zu entries, more "
		    "than %s allows", (*out)->u.array.len, bound));
	return (0);
}

/* A state name of the monitor's, as the dump and the log name them. */
int
state_monitor_state(const char *name, enum monitor_state *state)
{
	size_t	 i;

	for (i = 0; i <= MONITOR_CLOSED; i++) {
		if (strcmp(monitor_state_name((enum monitor_state)i),
		    name) == 0) {
			*state = (enum monitor_state)i;
			return (0);
		}
	}
	return (-1);
}

/* A client's state, by its name. */
int
state_client_state(const char *name, enum client_state *state)
{
	size_t	 i;

	for (i = 0; i <= CLIENT_CLOSING; i++) {
		if (strcmp(client_state_name((enum client_state)i),
		    name) == 0) {
			*state = (enum client_state)i;
			return (0);
		}
	}
	return (-1);
}

/* A VM's upstream; a VM without one reaches QEMU from the start. */
