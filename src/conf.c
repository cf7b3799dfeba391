/*
 * Configuration: one table of every option, used by the command line,
 * the config file (qmpmuxd.conf(5)) and the control socket alike, so
 * that a bound is named, checked and defaulted in one place.
 *
 * A config is read in two steps.  The entries (key = value, with their
 * file and line) are gathered first, from the file, its includes and
 * the command line; then they are built into a struct conf: [global]
 * first, then the command line's options over it, then each [vm] from
 * those defaults, then each [listener].  Nothing is applied to a
 * running daemon until the whole config has been built without error,
 * so a bad reload changes nothing.
 *
 * The file is read with libinih, through a reader of our own that
 * counts lines, sees section headers (to find a section given twice)
 * and refuses a line too long for inih's buffer rather than let inih
 * read its tail as a line of its own.  A file is read only if it is a
 * regular file of at most CONF_FILE_MAX bytes, so that an include of a
 * FIFO or of /dev/zero cannot hold up a check or a reload.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "qmpmux.h"

#define CONF_LINE_MAX	INI_MAX_LINE	/* what inih reads of a line */
#define CONF_NAME_MAX	64		/* bytes of a VM's name */
#define CONF_FILE_MAX	(1 << 20)	/* bytes of one config file */

/* Where a key may be set. */
#define CONF_VM		0x1	/* [global] as a default, or [vm NAME] */
#define CONF_LISTENER	0x2	/* [listener NAME PATH] */
#define CONF_GLOBAL	0x4	/* [global] only */

enum conf_type {
	CONF_SECONDS,		/* decimal seconds, fractions allowed */
	CONF_SIZE,		/* bytes, K, M or G */
	CONF_UINT,		/* unsigned int in [min, max] */
	CONF_COUNT,		/* size_t in [min, max] */
	CONF_BOOL,
	CONF_MODE,		/* octal file mode */
	CONF_SLOW,		/* block or disconnect */
	CONF_USER,
	CONF_GROUP,
	CONF_UIDS,		/* user names or ids, space separated */
	CONF_ALLOW,		/* command globs, space separated */
	CONF_DENY,
	CONF_PATH,		/* a file's path, made absolute */
	CONF_ADDR,		/* IPv4:PORT, [IPv6]:PORT or a unix path */
	CONF_SOCKET,		/* a socket's path, made absolute, or none */
};

/*
 * Every option: its key (the long option is the key with '-' for '_'),
 * where it may be set, its type, where it lives in its struct, its
 * range, and its default as the text a user would write.  The usage of
 * qmpmuxd is made from it (conf_option_flag, conf_option_arg): the
 * listener keys, the VM keys, then the daemon's, each in this order, as
 * the SYNOPSIS of qmpmuxd(8) has them.
 */
static const struct conf_opt {
	const char	*key;
	int		 where;
	enum conf_type	 type;
	size_t		 off;
	double		 min;
	double		 max;
	const char	*def;
} conf_opts[] = {
#define V(f)	offsetof(struct vm_conf, f)
#define L(f)	offsetof(struct listener_conf, f)
#define G(f)	offsetof(struct conf, lim.f)
	{ "handshake_timeout", CONF_VM, CONF_SECONDS, V(handshake_timeout),
	    0.001, 1e9, "10" },
	{ "greeting_timeout", CONF_VM, CONF_SECONDS, V(greeting_timeout),
	    0.001, 1e9, "30" },
	{ "backoff_max", CONF_VM, CONF_SECONDS, V(backoff_max), 0.001, 1e9,
	    "5" },
	{ "max_upstream_message", CONF_VM, CONF_SIZE,
	    V(max_upstream_message), 1, (double)SIZE_MAX, "16M" },
	/* QEMU's own limits: past them it reads one message as two */
	{ "max_client_message", CONF_VM, CONF_SIZE, V(max_client_message), 1,
	    QMP_SIZE_MAX, "1M" },
	{ "max_client_output", CONF_VM, CONF_SIZE, V(max_client_output), 1,
	    (double)SIZE_MAX, "1M" },
	{ "max_json_depth", CONF_VM, CONF_UINT, V(max_json_depth), 1,
	    QMP_DEPTH_MAX, "1024" },
	{ "command_timeout", CONF_VM, CONF_SECONDS, V(command_timeout), 0,
	    1e9, "30" },
	{ "max_inflight", CONF_VM, CONF_UINT, V(max_inflight), 1, 8, "1" },
	{ "max_client_pipeline", CONF_VM, CONF_UINT, V(max_client_pipeline),
	    1, 65536, "8" },
	{ "max_queued_commands", CONF_VM, CONF_UINT, V(max_queued_commands),
	    0, 1 << 20, "64" },
	{ "max_queued_events", CONF_VM, CONF_COUNT, V(max_queued_events), 1,
	    1 << 24, "1024" },
	{ "max_queued_bytes", CONF_VM, CONF_SIZE, V(max_queued_bytes), 1,
	    (double)SIZE_MAX, "4M" },
	{ "mode", CONF_LISTENER, CONF_MODE, L(mode), 0, 0777, "0600" },
	{ "owner", CONF_LISTENER, CONF_USER, L(owner), 0, 0, NULL },
	{ "group", CONF_LISTENER, CONF_GROUP, L(group), 0, 0, NULL },
	{ "allowed_uids", CONF_LISTENER, CONF_UIDS, L(allowed_uids), 0, 0,
	    NULL },
	{ "read_only", CONF_LISTENER, CONF_BOOL, L(acl.read_only), 0, 0,
	    "no" },
	{ "allow", CONF_LISTENER, CONF_ALLOW, L(acl), 0, 0, NULL },
	{ "deny", CONF_LISTENER, CONF_DENY, L(acl), 0, 0, NULL },
	{ "slow_client", CONF_LISTENER, CONF_SLOW, L(slow_client), 0, 0,
	    "block" },
	{ "slow_client_timeout", CONF_LISTENER, CONF_SECONDS,
	    L(slow_client_timeout), 0.001, 1e9, "10" },
	{ "max_total_queued_bytes", CONF_GLOBAL, CONF_SIZE,
	    offsetof(struct conf, max_memory), 1, (double)SIZE_MAX, "1G" },
	{ "dump_file", CONF_GLOBAL, CONF_PATH, offsetof(struct conf,
	    dump_file), 0, 0, QMPMUX_RUNDIR "/dump.json" },
	{ "control", CONF_GLOBAL, CONF_SOCKET, offsetof(struct conf,
	    control_path), 0, 0, QMPMUX_RUNDIR "/control.sock" },
	{ "control_max_clients", CONF_GLOBAL, CONF_UINT,
	    G(control_max_clients), 1, 65536, "64" },
	{ "control_max_message", CONF_GLOBAL, CONF_SIZE,
	    G(control_max_message), 1, QMP_SIZE_MAX, "1M" },
	{ "control_max_output", CONF_GLOBAL, CONF_SIZE,
	    G(control_max_output), 1, (double)SIZE_MAX, "1M" },
	{ "control_max_fds", CONF_GLOBAL, CONF_UINT, G(control_max_fds), 1,
	    4096, "64" },
	{ "metrics", CONF_GLOBAL, CONF_ADDR, offsetof(struct conf, metrics),
	    0, 0, NULL },
	{ "metrics_timeout", CONF_GLOBAL, CONF_SECONDS, G(metrics_timeout),
	    0.001, 1e9, "10" },
	{ "metrics_max_connections", CONF_GLOBAL, CONF_UINT,
	    G(metrics_max_connections), 1, 65536, "8" },
	{ "metrics_max_request", CONF_GLOBAL, CONF_SIZE,
	    G(metrics_max_request), 256, 1 << 20, "8K" },
	{ "metrics_max_response", CONF_GLOBAL, CONF_SIZE,
	    G(metrics_max_response), 1, (double)SIZE_MAX, "16M" },
	/* the unit's FileDescriptorStoreMax=: what systemd keeps at most */
	{ "fdstore_max_pending", CONF_GLOBAL, CONF_UINT,
	    G(fdstore_max_pending), 0, 1 << 20, "16384" },
#undef V
#undef L
#undef G
};
#define CONF_NOPTS	((int)(sizeof(conf_opts) / sizeof(conf_opts[0])))

static const char *conf_upstream_modes[] = {
	[UPSTREAM_CONNECT] = "connect",
	[UPSTREAM_LISTEN] = "listen",
	[UPSTREAM_FD] = "fd",
};

/* A section header seen in a file, to find one given twice. */
struct conf_section {
	char			*name;
	char			*file;
	int			 line;
	size_t			 at;	/* its place, for the check */
	TAILQ_ENTRY(conf_section) entry;
};
TAILQ_HEAD(conf_sections, conf_section);

/*
 * The entries of one section, in their order: a slice of the entries
 * sorted by section.  Sorting once keeps a host's worth of sections
 * from scanning every entry for each.
 */
struct conf_run {
	struct conf_entry	**e;
	size_t			 n;
	size_t			 at;	/* the first one's place in the list */
};

/* The state of reading one file. */
struct conf_read {
	const char		*file;
	FILE			*f;
	int			 line;
	size_t			 bytes;		/* read so far */
	int			 nested;	/* an included file */
	char			*section;	/* the last header, whole */
	int			 inkey;		/* a key came since it */
	struct conf_entries	*entries;
	struct conf_sections	*sections;
	char			*err;
	size_t			 errlen;
	int			 failed;	/* at this line */
};

static int	conf_apply(void *, int, const char *, const char *, char *,
		    size_t);

/* The key of option i, for the command line's long options. */
const char *
conf_option_name(int i)
{
	return (i >= 0 && i < CONF_NOPTS ? conf_opts[i].key : NULL);
}

/* Whether option i belongs to a listener (it applies to the next). */
int
conf_option_is_listener(int i)
{
	return (conf_opts[i].where == CONF_LISTENER);
}

/* Whether option i is the daemon's, [global] only, for the usage. */
int
conf_option_is_global(int i)
{
	return (conf_opts[i].where == CONF_GLOBAL);
}

/* The long option of option i, without its "--": the key, '-' for '_'. */
void
conf_option_flag(int i, char *buf, size_t len)
{
	char	*p;

	snprintf(buf, len, "%s", conf_opts[i].key);
	for (p = buf; *p != '\0'; p++) {
		if (*p == '_')
			*p = '-';
	}
}

/*
 * What option i takes on the command line, as the usage names it; NULL
 * for nothing: a yes or no key (--read-only) is set to yes by its name.
 */
const char *
conf_option_arg(int i)
{
	static const char	*args[] = {
		[CONF_SECONDS] = "SECONDS",
		[CONF_SIZE] = "BYTES",
		[CONF_UINT] = "N",
		[CONF_COUNT] = "N",
		[CONF_BOOL] = NULL,
		[CONF_MODE] = "MODE",
		[CONF_SLOW] = "block | disconnect",
		[CONF_USER] = "USER",
		[CONF_GROUP] = "GROUP",
		[CONF_UIDS] = "UIDS",
		[CONF_ALLOW] = "GLOB",
		[CONF_DENY] = "GLOB",
		[CONF_PATH] = "PATH",
		[CONF_ADDR] = "ADDRESS:PORT | PATH",
		[CONF_SOCKET] = "PATH | none",
	};

	return (args[conf_opts[i].type]);
}

/* How many options the table has. */
int
conf_option_count(void)
{
	return (CONF_NOPTS);
}

/* The name of an upstream mode. */
const char *
conf_upstream_mode_name(enum upstream_mode mode)
{
	return (conf_upstream_modes[mode]);
}

/* Set an error message, if none is set yet. */
static int
conf_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int
conf_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return (-1);
}

/* An error at an entry: its file and line, or the command line. */
static int
conf_at(char *err, size_t errlen, const struct conf_entry *e,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int
conf_at(char *err, size_t errlen, const struct conf_entry *e,
    const char *fmt, ...)
{
	char	 text[CONF_ERR_MAX];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (e->line > 0)
		return (conf_err(err, errlen, "%s:%d: %s", e->file, e->line,
		    text));
	return (conf_err(err, errlen, "command line: %s", text));
}

/* Find an option by key, allowed where; NULL if there is none. */
static const struct conf_opt *
conf_find(const char *key)
{
	int	 i;

	for (i = 0; i < CONF_NOPTS; i++) {
		if (strcmp(conf_opts[i].key, key) == 0)
			return (&conf_opts[i]);
	}
	return (NULL);
}

/* The defaults of the table, into a VM's, a listener's or the conf. */
static void
conf_defaults(void *base, int where)
{
	char	 err[CONF_ERR_MAX];
	int	 i;

	for (i = 0; i < CONF_NOPTS; i++) {
		if (conf_opts[i].where != where || conf_opts[i].def == NULL)
			continue;
		conf_apply(base, i, conf_opts[i].key, conf_opts[i].def, err,
		    sizeof(err));
	}
}

/* Fill in the defaults of qmpmuxd.conf(5). */
void
conf_vm_init(struct vm_conf *vc)
{
	memset(vc, 0, sizeof(*vc));
	TAILQ_INIT(&vc->listeners);
	TAILQ_INIT(&vc->timeouts);
	TAILQ_INIT(&vc->given);
	vc->upstream_fd = -1;
	vc->backoff_min = 0.05;
	conf_defaults(vc, CONF_VM);
}

/* A listener at path with the default role. */
struct listener_conf *
conf_listener_new(const char *path)
{
	struct listener_conf	*lc;

	if ((lc = calloc(1, sizeof(*lc))) == NULL ||
	    (lc->path = strdup(path)) == NULL)
		fatal("%s", __func__);
	lc->owner = (uid_t)-1;
	lc->group = (gid_t)-1;
	lc->fd = -1;
	conf_defaults(lc, CONF_LISTENER);
	return (lc);
}

/* Free a listener's conf; NULL is allowed. */
void
conf_listener_free(struct listener_conf *lc)
{
	if (lc == NULL)
		return;
	if (lc->fd != -1)
		close(lc->fd);
	free(lc->path);
	free(lc->allowed_uids);
	acl_clear(&lc->acl);
	free(lc);
}

/* Whether two listeners have the same path and role. */
int
conf_listener_equal(const struct listener_conf *a,
    const struct listener_conf *b)
{
	return (strcmp(a->path, b->path) == 0 && a->mode == b->mode &&
	    a->owner == b->owner && a->group == b->group &&
	    a->nallowed_uids == b->nallowed_uids &&
	    (a->nallowed_uids == 0 || memcmp(a->allowed_uids,
	    b->allowed_uids, a->nallowed_uids * sizeof(uid_t)) == 0) &&
	    acl_equal(&a->acl, &b->acl) && a->slow_client == b->slow_client &&
	    a->slow_client_timeout == b->slow_client_timeout);
}

/* A copy of a listener's conf. */
static struct listener_conf *
conf_listener_copy(const struct listener_conf *src)
{
	struct listener_conf	*lc;

	if ((lc = malloc(sizeof(*lc))) == NULL)
		fatal("%s", __func__);
	*lc = *src;
	lc->fd = -1;		/* an fd has one owner: the copy has none */
	if ((lc->path = strdup(src->path)) == NULL)
		fatal("%s", __func__);
	lc->allowed_uids = NULL;
	if (src->nallowed_uids > 0) {
		if ((lc->allowed_uids = calloc(src->nallowed_uids,
		    sizeof(uid_t))) == NULL)
			fatal("%s", __func__);
		memcpy(lc->allowed_uids, src->allowed_uids,
		    src->nallowed_uids * sizeof(uid_t));
	}
	acl_copy(&lc->acl, &src->acl);
	return (lc);
}

/* Free what a VM's conf holds. */
void
conf_vm_clear(struct vm_conf *vc)
{
	struct listener_conf	*lc;
	struct timeout_conf	*tc;

	while ((lc = TAILQ_FIRST(&vc->listeners)) != NULL) {
		TAILQ_REMOVE(&vc->listeners, lc, entry);
		conf_listener_free(lc);
	}
	while ((tc = TAILQ_FIRST(&vc->timeouts)) != NULL) {
		TAILQ_REMOVE(&vc->timeouts, tc, entry);
		free(tc->name);
		free(tc);
	}
	conf_entries_clear(&vc->given);
	free(vc->name);
	free(vc->upstream);
	free(vc->where);
	vc->name = vc->upstream = vc->where = NULL;
}

/* Make dst, which holds nothing, a deep copy of src. */
void
conf_vm_copy(struct vm_conf *dst, const struct vm_conf *src)
{
	struct listener_conf	*lc;
	struct timeout_conf	*tc, *nt;
	struct conf_entry	*e;

	*dst = *src;
	TAILQ_INIT(&dst->listeners);
	TAILQ_INIT(&dst->timeouts);
	TAILQ_INIT(&dst->given);
	dst->name = dst->upstream = dst->where = NULL;
	/* an fd has one owner: the copy has none */
	dst->upstream_fd = -1;
	if ((src->name != NULL && (dst->name = strdup(src->name)) == NULL) ||
	    (src->upstream != NULL &&
	    (dst->upstream = strdup(src->upstream)) == NULL) ||
	    (src->where != NULL && (dst->where = strdup(src->where)) == NULL))
		fatal("%s", __func__);
	TAILQ_FOREACH(lc, &src->listeners, entry)
		TAILQ_INSERT_TAIL(&dst->listeners, conf_listener_copy(lc),
		    entry);
	TAILQ_FOREACH(tc, &src->timeouts, entry) {
		if ((nt = calloc(1, sizeof(*nt))) == NULL ||
		    (nt->name = strdup(tc->name)) == NULL)
			fatal("%s", __func__);
		nt->seconds = tc->seconds;
		TAILQ_INSERT_TAIL(&dst->timeouts, nt, entry);
	}
	TAILQ_FOREACH(e, &src->given, entry)
		conf_entry_add(&dst->given, e->section, e->key, e->value,
		    e->file, e->line);
}

/* The timeout of a command: its override, else the VM's; 0 for none. */
double
conf_vm_timeout(const struct vm_conf *vc, const char *name)
{
	const struct timeout_conf	*tc;

	TAILQ_FOREACH_REVERSE(tc, &vc->timeouts, timeout_confs, entry) {
		if (strcmp(tc->name, name) == 0)
			return (tc->seconds);
	}
	return (vc->command_timeout);
}

/* A user name or id to a uid; -1 if there is no such user. */
static int
conf_uid(const char *s, uid_t *uid)
{
	struct passwd	*pw;
	unsigned int	 n;

	if (util_parse_uint(s, 0, UINT_MAX - 1, &n) == 0) {
		*uid = (uid_t)n;
		return (0);
	}
	if ((pw = getpwnam(s)) == NULL)
		return (-1);
	*uid = pw->pw_uid;
	return (0);
}

/* A group name or id to a gid; -1 if there is no such group. */
static int
conf_gid(const char *s, gid_t *gid)
{
	struct group	*gr;
	unsigned int	 n;

	if (util_parse_uint(s, 0, UINT_MAX - 1, &n) == 0) {
		*gid = (gid_t)n;
		return (0);
	}
	if ((gr = getgrnam(s)) == NULL)
		return (-1);
	*gid = gr->gr_gid;
	return (0);
}

/* Parse a boolean as qmpmuxd.conf(5) spells it. */
static int
conf_bool(const char *s, int *out)
{
	if (strcmp(s, "yes") == 0 || strcmp(s, "true") == 0 ||
	    strcmp(s, "on") == 0 || strcmp(s, "1") == 0)
		*out = 1;
	else if (strcmp(s, "no") == 0 || strcmp(s, "false") == 0 ||
	    strcmp(s, "off") == 0 || strcmp(s, "0") == 0)
		*out = 0;
	else
		return (-1);
	return (0);
}

/*
 * Each word of a space-separated list, in a copy of s; fn returns -1 to
 * stop.  An empty list is refused.
 */
static int
conf_words(const char *s, int (*fn)(const char *, void *), void *arg)
{
	char	*copy, *p, *w;
	int	 n = 0, rv = 0;

	if ((copy = strdup(s)) == NULL)
		fatal("%s", __func__);
	for (p = copy; rv == 0 && (w = strsep(&p, " \t")) != NULL;) {
		if (*w == '\0')
			continue;
		n++;
		rv = fn(w, arg);
	}
	free(copy);
	return (rv == 0 && n > 0 ? 0 : -1);
}

static int
conf_uid_word(const char *w, void *arg)
{
	struct listener_conf	*lc = arg;
	uid_t			*u;

	if ((u = reallocarray(lc->allowed_uids, lc->nallowed_uids + 1,
	    sizeof(*u))) == NULL)
		fatal("%s", __func__);
	lc->allowed_uids = u;
	if (conf_uid(w, &u[lc->nallowed_uids]) == -1)
		return (-1);
	lc->nallowed_uids++;
	return (0);
}

static int
conf_allow_word(const char *w, void *arg)
{
	acl_add(arg, 0, w);
	return (0);
}

static int
conf_deny_word(const char *w, void *arg)
{
	acl_add(arg, 1, w);
	return (0);
}

/*
 * Set option i, named key, to value, in base: the struct vm_conf,
 * listener_conf or conf the option belongs to; -1 with err filled if
 * the value is not one the option takes.
 */
static int
conf_apply(void *base, int i, const char *key, const char *value,
    char *err, size_t errlen)
{
	const struct conf_opt	*o = &conf_opts[i];
	struct listener_conf	*lc = base;
	char			*p = base;
	double			 d;
	size_t			 z;
	unsigned int		 u;
	unsigned long		 m;
	char			*end, why[128];
	const char		*spath;
	int			 b;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;

	p += o->off;
	switch (o->type) {
	case CONF_SECONDS:
		/* a min above 0 says "above 0", not "from min" */
		if (util_parse_seconds(value, &d) == -1 || d > o->max ||
		    (o->min > 0 ? d <= 0 : d < o->min))
			return (conf_err(err, errlen, "expected %s",
			    o->min > 0 ? "seconds above 0" :
			    "seconds (0: none)"));
		memcpy(p, &d, sizeof(d));
		break;
	case CONF_SIZE:
		if (util_parse_size(value, &z) == -1 || (double)z < o->min ||
		    (double)z > o->max)
			return (conf_err(err, errlen, "expected a size in "
			    "bytes%s", o->max < (double)SIZE_MAX ?
			    ", at most 64M" : ""));
		memcpy(p, &z, sizeof(z));
		break;
	case CONF_UINT:
	case CONF_COUNT:
		if (util_parse_uint(value, (unsigned int)o->min,
		    (unsigned int)o->max, &u) == -1)
			return (conf_err(err, errlen, "expected %.0f to %.0f",
			    o->min, o->max));
		if (o->type == CONF_UINT)
			memcpy(p, &u, sizeof(u));
		else {
			z = u;
			memcpy(p, &z, sizeof(z));
		}
		break;
	case CONF_BOOL:
		if (conf_bool(value, &b) == -1)
			return (conf_err(err, errlen, "expected yes or no"));
		memcpy(p, &b, sizeof(b));
		break;
	case CONF_MODE:
		errno = 0;
		m = strtoul(value, &end, 8);
		if (errno != 0 || *end != '\0' || end == value || m > 0777 ||
		    *value == '-' || *value == '+' || *value == ' ')
			return (conf_err(err, errlen, "expected an octal "
			    "mode from 0 to 0777"));
		lc->mode = (mode_t)m;
		break;
	case CONF_SLOW:
		if (strcmp(value, "block") == 0)
			lc->slow_client = SLOW_CLIENT_BLOCK;
		else if (strcmp(value, "disconnect") == 0)
			lc->slow_client = SLOW_CLIENT_DISCONNECT;
		else
			return (conf_err(err, errlen, "expected block or "
			    "disconnect"));
		break;
	case CONF_USER:
		if (conf_uid(value, &lc->owner) == -1)
			return (conf_err(err, errlen, "no such user"));
		break;
	case CONF_GROUP:
		if (conf_gid(value, &lc->group) == -1)
			return (conf_err(err, errlen, "no such group"));
		break;
	case CONF_UIDS:
		if (conf_words(value, conf_uid_word, lc) == -1)
			return (conf_err(err, errlen, "expected user names or "
			    "ids, each of a user that exists"));
		break;
	case CONF_PATH:
		if (*value != '/')
			return (conf_err(err, errlen, "expected an absolute "
			    "path"));
		free(*(char **)(void *)p);
		if ((*(char **)(void *)p = strdup(value)) == NULL)
			fatal("%s", __func__);
		break;
	case CONF_ADDR:
		if ((spath = util_addr_path(value)) != NULL) {
			if (*spath != '/')
				return (conf_err(err, errlen, "expected "
				    "unix:PATH with an absolute path"));
			if (util_check_sun_path(spath, why, sizeof(why)) ==
			    -1)
				return (conf_err(err, errlen, "%s", why));
		} else if (util_parse_hostport(value, &ss, &sslen) == -1)
			return (conf_err(err, errlen, "expected ADDRESS:PORT, "
			    "an IPv4 address or an IPv6 one in brackets, and a "
			    "port from 0 to 65535, or a unix socket's absolute "
			    "path"));
		free(*(char **)(void *)p);
		if ((*(char **)(void *)p = strdup(value)) == NULL)
			fatal("%s", __func__);
		break;
	case CONF_SOCKET:
		/* "none" turns it off; a path must fit a sockaddr_un */
		free(*(char **)(void *)p);
		*(char **)(void *)p = NULL;
		if (strcmp(value, "none") == 0)
			break;
		if (*value != '/')
			return (conf_err(err, errlen, "expected an absolute "
			    "path, or none"));
		if (util_check_sun_path(value, why, sizeof(why)) == -1)
			return (conf_err(err, errlen, "%s", why));
		if ((*(char **)(void *)p = strdup(value)) == NULL)
			fatal("%s", __func__);
		break;
	case CONF_ALLOW:
	case CONF_DENY:
		if (conf_words(value, o->type == CONF_ALLOW ?
		    conf_allow_word : conf_deny_word, &lc->acl) == -1)
			return (conf_err(err, errlen, "expected command names "
			    "or globs"));
		break;
	}
	return (0);
}

/*
 * Set upstream from "connect:PATH", "listen:PATH" or a bare PATH (the
 * command line's --upstream); fd mode is the control socket's, with an
 * fd it was handed.
 */
int
conf_set_upstream(struct vm_conf *vc, const char *value, char *err,
    size_t errlen)
{
	enum upstream_mode	 mode = UPSTREAM_CONNECT;
	const char		*path = value;
	char			 why[128];

	if (strncmp(value, "connect:", 8) == 0)
		path = value + 8;
	else if (strncmp(value, "listen:", 7) == 0) {
		mode = UPSTREAM_LISTEN;
		path = value + 7;
	} else if (strncmp(value, "fd:", 3) == 0)
		return (conf_err(err, errlen, "an fd upstream is handed over "
		    "with add-vm, not configured"));
	if (*path != '/')
		return (conf_err(err, errlen, "expected connect:PATH or "
		    "listen:PATH, with an absolute path"));
	if (util_check_sun_path(path, why, sizeof(why)) == -1)
		return (conf_err(err, errlen, "%s", why));
	free(vc->upstream);
	if ((vc->upstream = strdup(path)) == NULL)
		fatal("%s", __func__);
	vc->upstream_mode = mode;
	return (0);
}

/* Add a per-command timeout: timeout.NAME = SECONDS. */
static int
conf_set_timeout(struct vm_conf *vc, const char *name, const char *value,
    char *err, size_t errlen)
{
	struct timeout_conf	*tc;
	double			 seconds;

	if (*name == '\0')
		return (conf_err(err, errlen, "expected timeout.COMMAND"));
	if (util_parse_seconds(value, &seconds) == -1)
		return (conf_err(err, errlen, "expected seconds (0: none)"));
	if ((tc = calloc(1, sizeof(*tc))) == NULL ||
	    (tc->name = strdup(name)) == NULL)
		fatal("%s", __func__);
	tc->seconds = seconds;
	TAILQ_INSERT_TAIL(&vc->timeouts, tc, entry);
	return (0);
}

/*
 * Whether value is one key takes, wherever the key belongs: the command
 * line's check, before it knows which VM or listener it is for.
 */
int
conf_check_value(const char *key, const char *value, char *err,
    size_t errlen)
{
	const struct conf_opt	*o = conf_find(key);
	struct vm_conf		 vc;
	struct listener_conf	*lc;
	struct conf		 c;
	int			 rv;

	if (o != NULL && o->where == CONF_LISTENER) {
		lc = conf_listener_new("/");
		rv = conf_set_listener(lc, key, value, err, errlen);
		conf_listener_free(lc);
		return (rv);
	}
	if (o != NULL && o->where == CONF_GLOBAL) {
		/* a relative path is made absolute when the conf is built */
		if (o->type == CONF_PATH || (o->type == CONF_SOCKET &&
		    strcmp(value, "none") != 0))
			return (*value == '\0' ? conf_err(err, errlen,
			    "expected a path") : 0);
		memset(&c, 0, sizeof(c));
		rv = conf_apply(&c, (int)(o - conf_opts), key, value, err,
		    errlen);
		free(c.metrics);
		return (rv);
	}
	conf_vm_init(&vc);
	rv = conf_set_vm(&vc, key, value, err, errlen);
	conf_vm_clear(&vc);
	return (rv);
}

/* Set a key of a VM (or of the defaults): a VM option or timeout.NAME. */
int
conf_set_vm(struct vm_conf *vc, const char *key, const char *value,
    char *err, size_t errlen)
{
	const struct conf_opt	*o;

	if (strncmp(key, "timeout.", 8) == 0)
		return (conf_set_timeout(vc, key + 8, value, err, errlen));
	if ((o = conf_find(key)) == NULL)
		return (conf_err(err, errlen, "unknown key"));
	if (o->where == CONF_LISTENER)
		return (conf_err(err, errlen, "a key of a [listener], not of "
		    "a VM"));
	if (o->where == CONF_GLOBAL)
		return (conf_err(err, errlen, "a key of [global] only"));
	return (conf_apply(vc, (int)(o - conf_opts), key, value, err,
	    errlen));
}

/* Set a key of a listener. */
int
conf_set_listener(struct listener_conf *lc, const char *key,
    const char *value, char *err, size_t errlen)
{
	const struct conf_opt	*o;

	if ((o = conf_find(key)) == NULL)
		return (conf_err(err, errlen, "unknown key"));
	if (o->where != CONF_LISTENER)
		return (conf_err(err, errlen, "not a key of a [listener]"));
	return (conf_apply(lc, (int)(o - conf_opts), key, value, err,
	    errlen));
}

/* Append an entry. */
void
conf_entry_add(struct conf_entries *list, const char *section,
    const char *key, const char *value, const char *file, int line)
{
	struct conf_entry	*e;

	if ((e = calloc(1, sizeof(*e))) == NULL ||
	    (e->section = strdup(section)) == NULL ||
	    (e->key = strdup(key)) == NULL ||
	    (e->value = strdup(value)) == NULL ||
	    (e->file = strdup(file)) == NULL)
		fatal("%s", __func__);
	e->line = line;
	TAILQ_INSERT_TAIL(list, e, entry);
}

/* Free a list of entries. */
void
conf_entries_clear(struct conf_entries *list)
{
	struct conf_entry	*e;

	while ((e = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, e, entry);
		free(e->section);
		free(e->key);
		free(e->value);
		free(e->file);
		free(e);
	}
}

/* Free the section headers seen. */
static void
conf_sections_clear(struct conf_sections *list)
{
	struct conf_section	*s;

	while ((s = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, s, entry);
		free(s->name);
		free(s->file);
		free(s);
	}
}

/* Note a failure of reading, at the current line; the first one counts. */
static int
conf_read_fail(struct conf_read *cr, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int
conf_read_fail(struct conf_read *cr, const char *fmt, ...)
{
	char	 text[CONF_ERR_MAX];
	va_list	 ap;

	if (cr->failed)
		return (0);
	cr->failed = cr->line;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(cr->err, cr->errlen, "%s:%d: %s", cr->file, cr->line, text);
	return (0);
}

/*
 * A section header in one spelling: its words one space apart, with no
 * space around them, so that a section is found again however it was
 * spaced, and a listener's path does not end in a space.  The path, all
 * that follows the kind and the name, keeps the spaces inside it.
 */
static char *
conf_section_name(const char *p, size_t len)
{
	const char	*end = p + len;
	char		*name, *q;
	int		 words = 0;

	if ((name = malloc(len + 1)) == NULL)
		fatal("%s", __func__);
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (q = name; p < end;) {
		if (*p != ' ' && *p != '\t') {
			*q++ = *p++;
			continue;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		*q++ = ' ';
		if (++words == 2) {
			memcpy(q, p, (size_t)(end - p));
			q += end - p;
			p = end;
		}
	}
	*q = '\0';
	return (name);
}

/*
 * inih's reader: one line, counted.  A section header is noted here,
 * whole, since inih tells only of keys, and cuts a section's name at
 * 49 bytes, which would cut a listener's path; an entry with no key
 * marks it, so that a section with no keys is still built.  A line
 * longer than inih's buffer is refused, since inih would read its tail
 * as a line of its own.
 */
static char *
conf_reader(char *str, int num, void *stream)
{
	struct conf_read	*cr = stream;
	struct conf_section	*s;
	size_t			 len;
	char			*p, *end;
	int			 c;

	if (fgets(str, num, cr->f) == NULL)
		return (NULL);
	cr->line++;
	len = strlen(str);
	/* a file that grew since it was opened: read no more of it */
	if ((cr->bytes += len) > CONF_FILE_MAX) {
		conf_read_fail(cr, "the file is larger than %d bytes",
		    CONF_FILE_MAX);
		return (NULL);
	}
	if (len > 0 && str[len - 1] != '\n' && !feof(cr->f)) {
		conf_read_fail(cr, "line longer than %d bytes", num - 2);
		while ((c = fgetc(cr->f)) != EOF && c != '\n' &&
		    ++cr->bytes <= CONF_FILE_MAX)
			;
		str[0] = '\0';
		return (str);
	}
	p = str;
	/* inih skips a UTF-8 byte order mark on the first line */
	if (cr->line == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	for (; *p == ' ' || *p == '\t'; p++)
		;
	/* an indented line after a key continues its value, for inih */
	if (p > str && cr->inkey)
		return (str);
	if (*p == '[' && (end = strchr(p, ']')) != NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL ||
		    (s->file = strdup(cr->file)) == NULL)
			fatal("%s", __func__);
		s->name = conf_section_name(p + 1, (size_t)(end - p - 1));
		s->line = cr->line;
		TAILQ_INSERT_TAIL(cr->sections, s, entry);
		free(cr->section);
		if ((cr->section = strdup(s->name)) == NULL)
			fatal("%s", __func__);
		cr->inkey = 0;
		conf_entry_add(cr->entries, s->name, "", "", cr->file,
		    cr->line);
	}
	return (str);
}

/* inih's handler: keep the entry, with where it was. */
static int
conf_handler(void *user, const char *section, const char *key,
    const char *value)
{
	struct conf_read	*cr = user;

	/* inih's section is cut at 49 bytes: the reader's is whole */
	cr->inkey = 1;
	if (cr->section == NULL)
		return (conf_read_fail(cr, "%s outside of a section", key));
	if (cr->nested && strcmp(key, "include") == 0)
		return (conf_read_fail(cr, "include in an included file"));
	conf_entry_add(cr->entries, cr->section, key, value, cr->file,
	    cr->line);
	return (1);
}

/*
 * Why a file cannot be read: at the include that named it (by), or
 * alone for the main file.
 */
static int
conf_file_err(char *err, size_t errlen, const struct conf_entry *by,
    const char *path, const char *why)
{
	if (by != NULL)
		return (conf_at(err, errlen, by, "include %s: %s: %s",
		    by->value, path, why));
	return (conf_err(err, errlen, "%s: %s", path, why));
}

/*
 * Open a config file, which must be a regular file (symlinks followed)
 * of at most CONF_FILE_MAX bytes: a FIFO or a device is refused before
 * it is opened, and again on the fd, opened non-blocking, should the
 * path change in between.  NULL when err says why.
 */
static FILE *
conf_open(const char *path, const struct conf_entry *by, char *err,
    size_t errlen)
{
	struct stat	 st;
	char		 why[64];
	FILE		*f;
	int		 fd = -1;

	if (stat(path, &st) == -1 || (S_ISREG(st.st_mode) &&
	    ((fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY |
	    O_CLOEXEC)) == -1 || fstat(fd, &st) == -1))) {
		conf_file_err(err, errlen, by, path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		conf_file_err(err, errlen, by, path, "not a regular file");
		goto fail;
	}
	if (st.st_size > CONF_FILE_MAX) {
		snprintf(why, sizeof(why), "larger than %d bytes",
		    CONF_FILE_MAX);
		conf_file_err(err, errlen, by, path, why);
		goto fail;
	}
	if ((f = fdopen(fd, "r")) == NULL)
		fatal("%s", __func__);
	return (f);
fail:
	if (fd != -1)
		close(fd);
	return (NULL);
}

/*
 * Read one file's entries and section headers; by is the include that
 * named it, NULL for the main file.
 */
static int
conf_read_file(const char *path, const struct conf_entry *by,
    struct conf_entries *entries, struct conf_sections *sections, char *err,
    size_t errlen)
{
	struct conf_read	 cr;
	int			 rv, failed;

	memset(&cr, 0, sizeof(cr));
	cr.file = path;
	cr.nested = by != NULL;
	cr.entries = entries;
	cr.sections = sections;
	cr.err = err;
	cr.errlen = errlen;
	if ((cr.f = conf_open(path, by, err, errlen)) == NULL)
		return (-1);
	rv = ini_parse_stream(conf_reader, &cr, conf_handler, &cr);
	failed = ferror(cr.f);
	fclose(cr.f);
	free(cr.section);
	/* inih reads on after a line it cannot parse: the first counts */
	if (rv > 0 && (!cr.failed || rv < cr.failed))
		return (conf_err(err, errlen, "%s:%d: not a section, a "
		    "comment or key = value", path, rv));
	if (cr.failed)
		return (-1);
	if (rv != 0 || failed)
		return (conf_err(err, errlen, "%s: cannot be read", path));
	return (0);
}

/* A path of the file made absolute against dir; NULL if it is too long. */
static char *
conf_path(const char *dir, const char *path)
{
	char	*p;

	if (path[0] == '/')
		p = strdup(path);
	else if (asprintf(&p, "%s/%s", dir, path) == -1)
		p = NULL;
	if (p == NULL)
		fatal("%s", __func__);
	return (p);
}

/* The directory of a file, for what is relative in it. */
static char *
conf_dir(const char *file)
{
	char	*copy, *dir;

	if ((copy = strdup(file)) == NULL ||
	    (dir = strdup(dirname(copy))) == NULL)
		fatal("%s", __func__);
	free(copy);
	return (dir);
}

/* The directory an include's glob could not read, and why. */
static char	conf_glob_path[PATH_MAX];
static int	conf_glob_errno;

/*
 * glob's error callback: a directory that does not exist holds no file,
 * as a pattern that matches none; any other error stops the glob.
 */
static int
conf_glob_err(const char *path, int error)
{
	if (error == ENOENT)
		return (0);
	snprintf(conf_glob_path, sizeof(conf_glob_path), "%s", path);
	conf_glob_errno = error;
	return (1);
}

/*
 * Read a file and the files its includes name, in that order: each
 * include is a glob, relative to the file's directory, its files read
 * in sorted order.
 */
static int
conf_read_all(const char *path, struct conf_entries *entries,
    struct conf_sections *sections, char *err, size_t errlen)
{
	struct conf_entries	 main;
	struct conf_entry	*e;
	glob_t			 g;
	char			*dir, *pattern;
	size_t			 i;
	int			 rv = 0, grv;

	TAILQ_INIT(&main);
	if (conf_read_file(path, NULL, &main, sections, err, errlen) == -1) {
		conf_entries_clear(&main);
		return (-1);
	}
	dir = conf_dir(path);
	TAILQ_CONCAT(entries, &main, entry);
	TAILQ_FOREACH(e, entries, entry) {
		if (strcmp(e->key, "include") != 0)
			continue;
		if (strcmp(e->section, "global") != 0) {
			rv = conf_at(err, errlen, e, "include belongs in "
			    "[global]");
			break;
		}
		pattern = conf_path(dir, e->value);
		conf_glob_errno = 0;
		grv = glob(pattern, 0, conf_glob_err, &g);
		free(pattern);
		if (grv == GLOB_NOMATCH)
			continue;
		if (grv != 0) {
			if (grv == GLOB_ABORTED && conf_glob_errno != 0)
				rv = conf_at(err, errlen, e, "include %s: %s: "
				    "%s", e->value, conf_glob_path,
				    strerror(conf_glob_errno));
			else
				rv = conf_at(err, errlen, e, "include %s: "
				    "cannot be read", e->value);
			globfree(&g);
			break;
		}
		for (i = 0; rv == 0 && i < g.gl_pathc; i++) {
			TAILQ_INIT(&main);
			rv = conf_read_file(g.gl_pathv[i], e, &main, sections,
			    err, errlen);
			TAILQ_CONCAT(entries, &main, entry);
		}
		globfree(&g);
		if (rv != 0)
			break;
	}
	free(dir);
	return (rv);
}

/* Whether a VM's name is one qmpmuxd takes: printable, no space or '/'. */
int
conf_valid_name(const char *s)
{
	size_t	 n = strlen(s), i;

	if (n == 0 || n > CONF_NAME_MAX)
		return (0);
	for (i = 0; i < n; i++) {
		if (s[i] <= ' ' || s[i] >= 0x7f || s[i] == '/' ||
		    s[i] == '"' || s[i] == '\\')
			return (0);
	}
	return (1);
}

/* The VM of that name in conf, or NULL. */
static struct vm_conf *
conf_find_vm(struct conf *conf, const char *name)
{
	struct vm_conf	*vc;

	TAILQ_FOREACH(vc, &conf->vms, entry) {
		if (strcmp(vc->name, name) == 0)
			return (vc);
	}
	return (NULL);
}

/* The listener at that path, in any VM of conf, or NULL. */
static struct listener_conf *
conf_find_listener(struct conf *conf, const char *path)
{
	struct vm_conf		*vc;
	struct listener_conf	*lc;

	TAILQ_FOREACH(vc, &conf->vms, entry) {
		TAILQ_FOREACH(lc, &vc->listeners, entry) {
			if (strcmp(lc->path, path) == 0)
				return (lc);
		}
	}
	return (NULL);
}

/*
 * Split a section header into its kind and its words: "vm NAME" and
 * "listener NAME PATH" (the path being all that follows the name).
 */
static int
conf_split(const char *section, const char **kind, char *name,
    size_t namelen, const char **rest)
{
	const char	*p, *q;

	*rest = NULL;
	if (strcmp(section, "global") == 0) {
		*kind = "global";
		return (0);
	}
	if (strncmp(section, "vm ", 3) == 0)
		*kind = "vm";
	else if (strncmp(section, "listener ", 9) == 0)
		*kind = "listener";
	else
		return (-1);
	p = section + strlen(*kind) + 1;
	while (*p == ' ')
		p++;
	for (q = p; *q != '\0' && *q != ' '; q++)
		;
	if ((size_t)(q - p) >= namelen)
		return (-1);
	memcpy(name, p, (size_t)(q - p));
	name[q - p] = '\0';
	while (*q == ' ')
		q++;
	if (strcmp(*kind, "vm") == 0)
		return (*q == '\0' ? 0 : -1);
	if (*q == '\0')
		return (-1);
	*rest = q;
	return (0);
}

/* The directory an entry's relative paths resolve against. */
static char *
conf_entry_dir(const struct conf_entry *e)
{
	char	 cwd[PATH_MAX];
	char	*dir;

	if (e->line > 0)
		return (conf_dir(e->file));
	if (getcwd(cwd, sizeof(cwd)) == NULL || (dir = strdup(cwd)) == NULL)
		fatal("%s", __func__);
	return (dir);
}

/* Make the [global] defaults from every entry of that section. */
static int
conf_build_global(struct conf *conf, struct conf_entries *entries,
    char *err, size_t errlen)
{
	const struct conf_opt	*o;
	struct conf_entry	*e;
	char			 why[CONF_ERR_MAX], *dir, *path;
	int			 rv;

	TAILQ_FOREACH(e, entries, entry) {
		if (strcmp(e->section, "global") != 0 || *e->key == '\0' ||
		    strcmp(e->key, "include") == 0)
			continue;
		if ((o = conf_find(e->key)) != NULL &&
		    o->where == CONF_GLOBAL) {
			/* relative to the file, or to the command line's cwd */
			dir = conf_entry_dir(e);
			path = (o->type == CONF_PATH || (o->type ==
			    CONF_SOCKET && strcmp(e->value, "none") != 0)) &&
			    *e->value != '\0' ? conf_path(dir, e->value) :
			    NULL;
			free(dir);
			rv = conf_apply(conf, (int)(o - conf_opts), e->key,
			    path != NULL ? path : e->value, why, sizeof(why));
			free(path);
			if (rv == -1)
				return (conf_at(err, errlen, e, "%s = %s: %s",
				    e->key, e->value, why));
			continue;
		}
		if (strcmp(e->key, "upstream") == 0)
			return (conf_at(err, errlen, e, "upstream "
			    "belongs in a [vm] section"));
		if (conf_set_vm(&conf->defaults, e->key, e->value, why,
		    sizeof(why)) == -1)
			return (conf_at(err, errlen, e, "%s = %s: %s",
			    e->key, e->value, why));
	}
	return (0);
}

/* Make the VM of a [vm NAME] section: the defaults, then its keys. */
static int
conf_build_vm(struct conf *conf, const struct conf_run *run,
    const char *name, char *err, size_t errlen)
{
	const struct conf_entry	*first = run->e[0];
	struct vm_conf		*vc;
	struct conf_entry	*e;
	char			 why[CONF_ERR_MAX], *dir, *path, *val;
	const char		*p;
	size_t			 i;

	if ((vc = calloc(1, sizeof(*vc))) == NULL)
		fatal("%s", __func__);
	conf_vm_copy(vc, &conf->defaults);
	if ((vc->name = strdup(name)) == NULL ||
	    (first->line > 0 ? asprintf(&vc->where, "%s:%d", first->file,
	    first->line) : asprintf(&vc->where, "command line")) == -1)
		fatal("%s", __func__);
	vc->from_file = 1;
	TAILQ_INSERT_TAIL(&conf->vms, vc, entry);
	for (i = 0; i < run->n; i++) {
		if (*(e = run->e[i])->key == '\0')
			continue;
		if (strcmp(e->key, "upstream") != 0) {
			if (conf_set_vm(vc, e->key, e->value, why,
			    sizeof(why)) == -1)
				return (conf_at(err, errlen, e, "%s = %s: %s",
				    e->key, e->value, why));
			continue;
		}
		/*
		 * A relative path is the config file's directory's: the
		 * path after the mode, which may itself hold a ':'.  A
		 * bare path (no mode) must be absolute, so that a mistyped
		 * mode is not taken for a file name.
		 */
		p = NULL;
		if (strncmp(e->value, "connect:", 8) == 0)
			p = e->value + 8;
		else if (strncmp(e->value, "listen:", 7) == 0)
			p = e->value + 7;
		val = NULL;
		if (p != NULL && *p != '/' && *p != '\0') {
			dir = conf_entry_dir(e);
			path = conf_path(dir, p);
			if (asprintf(&val, "%.*s%s", (int)(p - e->value),
			    e->value, path) == -1)
				fatal("%s", __func__);
			free(dir);
			free(path);
		}
		if (conf_set_upstream(vc, val != NULL ? val : e->value, why,
		    sizeof(why)) == -1) {
			free(val);
			return (conf_at(err, errlen, e, "%s = %s: %s",
			    e->key, e->value, why));
		}
		free(val);
	}
	if (vc->backoff_min > vc->backoff_max)
		vc->backoff_min = vc->backoff_max;
	if (vc->upstream == NULL)
		return (conf_err(err, errlen, "%s: vm %s has no upstream",
		    vc->where, name));
	return (0);
}

/* Make the listener of a [listener NAME PATH] section. */
static int
conf_build_listener(struct conf *conf, const struct conf_run *run,
    const char *name, const char *rawpath, char *err, size_t errlen)
{
	const struct conf_entry	*first = run->e[0];
	struct vm_conf		*vc;
	struct listener_conf	*lc;
	struct conf_entry	*e;
	char			 why[CONF_ERR_MAX], *dir, *path;
	size_t			 i;

	if ((vc = conf_find_vm(conf, name)) == NULL)
		return (conf_at(err, errlen, first, "a listener of vm %s, "
		    "which has no [vm %s] section",
		    name, name));
	dir = conf_entry_dir(first);
	path = conf_path(dir, rawpath);
	free(dir);
	if (util_check_sun_path(path, why, sizeof(why)) == -1) {
		conf_at(err, errlen, first, "listener %s: %s", path, why);
		free(path);
		return (-1);
	}
	if (conf_find_listener(conf, path) != NULL) {
		conf_at(err, errlen, first, "listener %s is given twice", path);
		free(path);
		return (-1);
	}
	lc = conf_listener_new(path);
	free(path);
	TAILQ_INSERT_TAIL(&vc->listeners, lc, entry);
	for (i = 0; i < run->n; i++) {
		if (*(e = run->e[i])->key == '\0')
			continue;
		if (conf_set_listener(lc, e->key, e->value, why,
		    sizeof(why)) == -1)
			return (conf_at(err, errlen, e, "%s = %s: %s",
			    e->key, e->value, why));
	}
	return (0);
}

/*
 * Check the sections seen: each kind known, well named, and given once.
 * Entries name their section too, for a command line with no headers.
 */
static int
conf_section_cmp(const void *a, const void *b)
{
	const struct conf_section	*const *x = a, *const *y = b;
	int				 c;

	if ((c = strcmp((*x)->name, (*y)->name)) != 0)
		return (c);
	return ((*x)->at < (*y)->at ? -1 : (*x)->at > (*y)->at);
}

static int
conf_check_sections(struct conf_sections *sections, char *err,
    size_t errlen)
{
	struct conf_section	*s, **v, *dup = NULL, *first = NULL;
	const char		*kind, *rest;
	char			 name[CONF_NAME_MAX + 2];
	size_t			 n = 0, i, g = 0;

	/* the first section given again, found by sorting, not scanning */
	TAILQ_FOREACH(s, sections, entry)
		s->at = n++;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		fatal("%s", __func__);
	n = 0;
	TAILQ_FOREACH(s, sections, entry)
		v[n++] = s;
	qsort(v, n, sizeof(*v), conf_section_cmp);
	for (i = 1; i < n; i++) {
		if (strcmp(v[i]->name, v[i - 1]->name) != 0) {
			g = i;
			continue;
		}
		if (strcmp(v[i]->name, "global") != 0 &&
		    (dup == NULL || v[i]->at < dup->at)) {
			dup = v[i];
			first = v[g];
		}
	}
	free(v);

	TAILQ_FOREACH(s, sections, entry) {
		if (conf_split(s->name, &kind, name, sizeof(name), &rest) ==
		    -1)
			return (conf_err(err, errlen, "%s:%d: [%s]: expected "
			    "[global], [vm NAME] or [listener NAME PATH]",
			    s->file, s->line, s->name));
		if (strcmp(kind, "global") != 0 && !conf_valid_name(name))
			return (conf_err(err, errlen, "%s:%d: [%s]: a VM's "
			    "name is 1 to %d printable bytes, without "
			    "spaces, '/', '\"' or '\\'", s->file, s->line,
			    s->name, CONF_NAME_MAX));
		if (s == dup)
			return (conf_err(err, errlen, "%s:%d: [%s] is "
			    "given twice (first at %s:%d)", s->file,
			    s->line, s->name, first->file, first->line));
	}
	return (0);
}

/* Entries by section, then by their place in the list. */
struct conf_sorted {
	struct conf_entry	*e;
	size_t			 at;
};

static int
conf_sorted_cmp(const void *a, const void *b)
{
	const struct conf_sorted	*x = a, *y = b;
	int				 c;

	if ((c = strcmp(x->e->section, y->e->section)) != 0)
		return (c);
	return (x->at < y->at ? -1 : x->at > y->at);
}

static int
conf_run_cmp(const void *a, const void *b)
{
	const struct conf_run	*x = a, *y = b;

	return (x->at < y->at ? -1 : x->at > y->at);
}

/*
 * Group the entries into runs, one per section, in the order each
 * section first appears.  *ev holds the entries the runs point into.
 */
static struct conf_run *
conf_runs(struct conf_entries *entries, struct conf_entry ***ev,
    size_t *nruns)
{
	struct conf_sorted	*v;
	struct conf_entry	*e;
	struct conf_run		*runs;
	size_t			 n = 0, i, r = 0;

	TAILQ_FOREACH(e, entries, entry)
		n++;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL ||
	    (*ev = calloc(n + 1, sizeof(**ev))) == NULL ||
	    (runs = calloc(n + 1, sizeof(*runs))) == NULL)
		fatal("%s", __func__);
	n = 0;
	TAILQ_FOREACH(e, entries, entry) {
		v[n].e = e;
		v[n].at = n;
		n++;
	}
	qsort(v, n, sizeof(*v), conf_sorted_cmp);
	for (i = 0; i < n; i++) {
		(*ev)[i] = v[i].e;
		if (i == 0 || strcmp(v[i].e->section, v[i - 1].e->section) !=
		    0) {
			runs[r].e = &(*ev)[i];
			runs[r].at = v[i].at;
			r++;
		}
		runs[r - 1].n++;
	}
	free(v);
	qsort(runs, r, sizeof(*runs), conf_run_cmp);
	*nruns = r;
	return (runs);
}

/* Build conf from the entries: [global], then each VM, then listeners. */
static int
conf_build(struct conf *conf, struct conf_entries *entries,
    struct conf_sections *sections, char *err, size_t errlen)
{
	struct conf_entry	**ev, *e;
	struct conf_run		*runs;
	struct vm_conf		*vc;
	const char		*kind, *rest;
	char			 name[CONF_NAME_MAX + 2];
	size_t			 nruns, i;
	int			 pass, rv = -1;

	if (conf_check_sections(sections, err, errlen) == -1 ||
	    conf_build_global(conf, entries, err, errlen) == -1)
		return (-1);
	runs = conf_runs(entries, &ev, &nruns);
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < nruns; i++) {
			e = runs[i].e[0];
			if (conf_split(e->section, &kind, name, sizeof(name),
			    &rest) == -1) {
				conf_at(err, errlen, e, "[%s]: expected "
				    "[global], [vm NAME] or [listener NAME "
				    "PATH]", e->section);
				goto out;
			}
			if (pass == 0 && strcmp(kind, "vm") == 0) {
				if (!conf_valid_name(name)) {
					conf_at(err, errlen, e, "vm %s: not a "
					    "name qmpmuxd takes", name);
					goto out;
				}
				if (conf_build_vm(conf, &runs[i], name, err,
				    errlen) == -1)
					goto out;
			} else if (pass == 1 && strcmp(kind, "listener") == 0 &&
			    conf_build_listener(conf, &runs[i], name, rest,
			    err, errlen) == -1)
				goto out;
		}
	}
	/* a VM no client can reach is a mistake, not a config */
	TAILQ_FOREACH(vc, &conf->vms, entry) {
		if (TAILQ_EMPTY(&vc->listeners)) {
			conf_err(err, errlen, "%s: vm %s has no listener",
			    vc->where, vc->name);
			goto out;
		}
	}
	rv = 0;
out:
	free(runs);
	free(ev);
	return (rv);
}

/*
 * Load a whole config: the file at path (none when NULL), then the
 * command line's entries over it.  conf is made anew; on error it
 * holds nothing, and err says where and why.
 */
int
conf_load(struct conf *conf, const char *path,
    const struct conf_entries *cmdline, char *err, size_t errlen)
{
	struct conf_entries	 entries;
	struct conf_sections	 sections;
	struct conf_entry	*e;
	int			 rv = -1;

	memset(conf, 0, sizeof(*conf));
	conf_vm_init(&conf->defaults);
	TAILQ_INIT(&conf->vms);
	conf_defaults(conf, CONF_GLOBAL);
	TAILQ_INIT(&entries);
	TAILQ_INIT(&sections);
	if (path != NULL) {
		if ((conf->path = strdup(path)) == NULL)
			fatal("%s", __func__);
		if (conf_read_all(path, &entries, &sections, err, errlen) == -1)
			goto out;
	}
	TAILQ_FOREACH(e, cmdline, entry)
		conf_entry_add(&entries, e->section, e->key, e->value, e->file,
		    e->line);
	if (conf_build(conf, &entries, &sections, err, errlen) == -1)
		goto out;
	rv = 0;
out:
	conf_entries_clear(&entries);
	conf_sections_clear(&sections);
	if (rv == -1)
		conf_clear(conf);
	return (rv);
}

/* Free what a conf holds. */
void
conf_clear(struct conf *conf)
{
	struct vm_conf	*vc;

	while ((vc = TAILQ_FIRST(&conf->vms)) != NULL) {
		TAILQ_REMOVE(&conf->vms, vc, entry);
		conf_vm_clear(vc);
		free(vc);
	}
	conf_vm_clear(&conf->defaults);
	free(conf->path);
	free(conf->dump_file);
	free(conf->metrics);
	free(conf->control_path);
	conf->path = conf->dump_file = conf->metrics = NULL;
	conf->control_path = NULL;
}

/* Whether two lists of per-command timeouts are the same. */
static int
conf_timeouts_equal(const struct timeout_confs *a,
    const struct timeout_confs *b)
{
	const struct timeout_conf	*x, *y;

	for (x = TAILQ_FIRST(a), y = TAILQ_FIRST(b); x != NULL && y != NULL;
	    x = TAILQ_NEXT(x, entry), y = TAILQ_NEXT(y, entry)) {
		if (strcmp(x->name, y->name) != 0 || x->seconds != y->seconds)
			return (0);
	}
	return (x == NULL && y == NULL);
}

/*
 * What differs between a VM's running conf and its new one: bounds
 * (applied in place), the upstream (reconnected), listeners (each
 * changed one reopened).  0: nothing, and the VM is left alone.
 */
int
conf_diff(const struct vm_conf *a, const struct vm_conf *b)
{
	const struct listener_conf	*x, *y;
	int				 diff = 0;

	if (a->upstream_mode != b->upstream_mode ||
	    (a->upstream == NULL) != (b->upstream == NULL) ||
	    (a->upstream != NULL && strcmp(a->upstream, b->upstream) != 0))
		diff |= CONF_DIFF_UPSTREAM;
	for (x = TAILQ_FIRST(&a->listeners), y = TAILQ_FIRST(&b->listeners);
	    x != NULL && y != NULL;
	    x = TAILQ_NEXT(x, entry), y = TAILQ_NEXT(y, entry)) {
		if (!conf_listener_equal(x, y))
			break;
	}
	if (x != NULL || y != NULL)
		diff |= CONF_DIFF_LISTENERS;
	if (a->handshake_timeout != b->handshake_timeout ||
	    a->greeting_timeout != b->greeting_timeout ||
	    a->backoff_min != b->backoff_min ||
	    a->backoff_max != b->backoff_max ||
	    a->max_upstream_message != b->max_upstream_message ||
	    a->max_client_message != b->max_client_message ||
	    a->max_client_output != b->max_client_output ||
	    a->max_json_depth != b->max_json_depth ||
	    a->max_inflight != b->max_inflight ||
	    a->max_client_pipeline != b->max_client_pipeline ||
	    a->max_queued_commands != b->max_queued_commands ||
	    a->command_timeout != b->command_timeout ||
	    a->max_queued_events != b->max_queued_events ||
	    a->max_queued_bytes != b->max_queued_bytes ||
	    !conf_timeouts_equal(&a->timeouts, &b->timeouts))
		diff |= CONF_DIFF_BOUNDS;
	return (diff);
}
