/*
 * Configuration: one table of every option, used by the command line,
 * the config file (qmpmuxd.conf(5)) and the control socket alike, so
 * that a bound is named, checked and defaulted in one place; each
 * value's parsing, a VM's and a listener's configuration as objects,
 * and what a reload changes (conf_diff).  Reading a whole configuration
 * is conf-load.c's.
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

#include "conf.h"



/*
 * Every option: its key (the long option is the key with '-' for '_'),
 * where it may be set, its type, where it lives in its struct, its
 * range, and its default as the text a user would write.  The usage of
 * qmpmuxd is made from it (conf_option_flag, conf_option_arg): the
 * listener keys, the VM keys, then the daemon's, each in this order, as
 * the SYNOPSIS of qmpmuxd(8) has them.
 */
const struct conf_opt conf_opts[] = {
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
	{ "priority_relief", CONF_VM, CONF_SECONDS, V(priority_relief), 0,
	    1e9, "1" },
	{ "manager_quiet", CONF_VM, CONF_SECONDS, V(manager_quiet), 0, 1e9,
	    "0.25" },
	{ "introspection_cache", CONF_VM, CONF_SIZE, V(introspection_cache),
	    0, (double)SIZE_MAX, "1M" },
	{ "lock_default_hold", CONF_VM, CONF_SECONDS, V(lock_default_hold),
	    0.001, 1e9, "10" },
	{ "lock_max_hold", CONF_VM, CONF_SECONDS, V(lock_max_hold), 0.001,
	    1e9, "20" },
	{ "lock_max_wait", CONF_VM, CONF_SECONDS, V(lock_max_wait), 0, 1e9,
	    "30" },
	{ "lock_max_waiters", CONF_VM, CONF_UINT, V(lock_max_waiters), 0,
	    65536, "16" },
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
	{ "priority", CONF_LISTENER, CONF_PRIO, L(priority), 0, 0, "normal" },
	{ "rate_limit", CONF_LISTENER, CONF_UINT, L(rate_limit), 0, 1 << 20,
	    "0" },
	{ "rate_burst", CONF_LISTENER, CONF_UINT, L(rate_burst), 0, 1 << 20,
	    "0" },
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
const int conf_nopts = (int)(sizeof(conf_opts) / sizeof(conf_opts[0]));

static const char *conf_upstream_modes[] = {
	[UPSTREAM_CONNECT] = "connect",
	[UPSTREAM_LISTEN] = "listen",
	[UPSTREAM_FD] = "fd",
};



/* The key of option i, for the command line's long options. */
const char *
conf_option_name(int i)
{
	return (i >= 0 && i < conf_nopts ? conf_opts[i].key : NULL);
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
		[CONF_PRIO] = "manager | normal | background",
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
	return (conf_nopts);
}

/* The name of an upstream mode. */
const char *
conf_upstream_mode_name(enum upstream_mode mode)
{
	return (conf_upstream_modes[mode]);
}

/* The name of a priority class, as the key priority spells it. */
const char *
conf_prio_name(enum prio prio)
{
	static const char	*names[PRIO_N] = {
		[PRIO_MANAGER] = "manager",
		[PRIO_NORMAL] = "normal",
		[PRIO_BACKGROUND] = "background",
	};

	return (names[prio]);
}

/* Set an error message, if none is set yet. */
int
conf_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return (-1);
}

/* An error at an entry: its file and line, or the command line. */
int
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
const struct conf_opt *
conf_find(const char *key)
{
	int	 i;

	for (i = 0; i < conf_nopts; i++) {
		if (strcmp(conf_opts[i].key, key) == 0)
			return (&conf_opts[i]);
	}
	return (NULL);
}

/* The defaults of the table, into a VM's, a listener's or the conf. */
void
conf_defaults(void *base, int where)
{
	char	 err[CONF_ERR_MAX];
	int	 i;

	for (i = 0; i < conf_nopts; i++) {
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
	TAILQ_INIT(&vc->per_command);
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
	    a->slow_client_timeout == b->slow_client_timeout &&
	    a->priority == b->priority && a->rate_limit == b->rate_limit &&
	    a->rate_burst == b->rate_burst);
}

/* A copy of a listener's conf. */
struct listener_conf *
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
	struct cmd_conf		*tc;

	while ((lc = TAILQ_FIRST(&vc->listeners)) != NULL) {
		TAILQ_REMOVE(&vc->listeners, lc, entry);
		conf_listener_free(lc);
	}
	while ((tc = TAILQ_FIRST(&vc->per_command)) != NULL) {
		TAILQ_REMOVE(&vc->per_command, tc, entry);
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
	struct listener_conf	*lc, *nl;
	struct cmd_conf		*tc, *nt;
	struct conf_entry	*e;

	*dst = *src;
	TAILQ_INIT(&dst->listeners);
	TAILQ_INIT(&dst->per_command);
	TAILQ_INIT(&dst->given);
	dst->name = dst->upstream = dst->where = NULL;
	/* an fd has one owner: the copy has none */
	dst->upstream_fd = -1;
	if ((src->name != NULL && (dst->name = strdup(src->name)) == NULL) ||
	    (src->upstream != NULL &&
	    (dst->upstream = strdup(src->upstream)) == NULL) ||
	    (src->where != NULL && (dst->where = strdup(src->where)) == NULL))
		fatal("%s", __func__);
	/* TAILQ_INSERT_TAIL names its element four times: a copy each */
	TAILQ_FOREACH(lc, &src->listeners, entry) {
		nl = conf_listener_copy(lc);
		TAILQ_INSERT_TAIL(&dst->listeners, nl, entry);
	}
	TAILQ_FOREACH(tc, &src->per_command, entry) {
		if ((nt = calloc(1, sizeof(*nt))) == NULL ||
		    (nt->name = strdup(tc->name)) == NULL)
			fatal("%s", __func__);
		nt->key = tc->key;
		nt->value = tc->value;
		TAILQ_INSERT_TAIL(&dst->per_command, nt, entry);
	}
	TAILQ_FOREACH(e, &src->given, entry)
		conf_entry_add(&dst->given, e->section, e->key, e->value,
		    e->file, e->line);
}

/*
 * The costs a command has without cost.NAME: what QEMU 7.2 spends on
 * it, in round trips of a query-status (some 0.35 ms), for those that
 * take it many times as long.  QEMU cannot be interrupted in one, so
 * a manager whose command comes just after waits for all of it.
 */
static const struct {
	const char	*name;
	unsigned int	 cost;
} conf_costs[] = {
	{ "query-qmp-schema", 50 },		/* 20 ms, 207 KB */
	{ "query-cpu-definitions", 30 },	/* 12 ms */
	{ "qom-list-types", 5 },
	{ "query-cpu-model-expansion", 5 },
	{ "human-monitor-command", 5 },		/* "info qtree", ... */
	{ "query-command-line-options", 3 },
	{ "query-commands", 2 },
	{ "query-machines", 2 },
};

/*
 * A per-command override of a VM's (the last one given wins), or NULL:
 * timeout.NAME, cost.NAME.
 */
static const struct cmd_conf *
conf_vm_override(const struct vm_conf *vc, enum cmd_key key,
    const char *name)
{
	const struct cmd_conf	*tc;

	TAILQ_FOREACH_REVERSE(tc, &vc->per_command, cmd_confs, entry) {
		if (tc->key == key && strcmp(tc->name, name) == 0)
			return (tc);
	}
	return (NULL);
}

/* The timeout of a command: its override, else the VM's; 0 for none. */
double
conf_vm_timeout(const struct vm_conf *vc, const char *name)
{
	const struct cmd_conf	*tc;

	if ((tc = conf_vm_override(vc, CMD_KEY_TIMEOUT, name)) != NULL)
		return (tc->value);
	return (vc->command_timeout);
}

/* The cost of a command: its override, else its built-in cost, else 1. */
unsigned int
conf_vm_cost(const struct vm_conf *vc, const char *name)
{
	const struct cmd_conf	*tc;
	size_t			 i;

	if ((tc = conf_vm_override(vc, CMD_KEY_COST, name)) != NULL)
		return ((unsigned int)tc->value);
	for (i = 0; i < sizeof(conf_costs) / sizeof(conf_costs[0]); i++) {
		if (strcmp(conf_costs[i].name, name) == 0)
			return (conf_costs[i].cost);
	}
	return (1);
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
int
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
		/* 0 is a size only of a key that takes it for none */
		if (o->min == 0 && strcmp(value, "0") == 0)
			z = 0;
		else if (util_parse_size(value, &z) == -1 ||
		    (double)z < o->min || (double)z > o->max)
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
	case CONF_PRIO:
		for (b = 0; b < PRIO_N; b++) {
			if (strcmp(value, conf_prio_name((enum prio)b)) == 0)
				break;
		}
		if (b == PRIO_N)
			return (conf_err(err, errlen, "expected manager, normal "
			    "or background"));
		lc->priority = (enum prio)b;
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

/*
 * Add a per-command override: timeout.NAME = SECONDS, or cost.NAME = N
 * (at most 1000, a query-qmp-schema of 20 times as costly as QEMU 7.2's).
 */
static int
conf_set_per_command(struct vm_conf *vc, enum cmd_key key, const char *name,
    const char *value, char *err, size_t errlen)
{
	struct cmd_conf	*tc;
	unsigned int	 n;
	double		 v;

	if (*name == '\0')
		return (conf_err(err, errlen, "expected %s.COMMAND",
		    key == CMD_KEY_TIMEOUT ? "timeout" : "cost"));
	if (key == CMD_KEY_TIMEOUT) {
		if (util_parse_seconds(value, &v) == -1)
			return (conf_err(err, errlen,
			    "expected seconds (0: none)"));
	} else {
		if (util_parse_uint(value, 1, 1000, &n) == -1)
			return (conf_err(err, errlen,
			    "expected a whole number from 1 to 1000"));
		v = n;
	}
	if ((tc = calloc(1, sizeof(*tc))) == NULL ||
	    (tc->name = strdup(name)) == NULL)
		fatal("%s", __func__);
	tc->key = key;
	tc->value = v;
	TAILQ_INSERT_TAIL(&vc->per_command, tc, entry);
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

/*
 * Set a key of a VM (or of the defaults): a VM option, timeout.NAME or
 * cost.NAME.
 */
int
conf_set_vm(struct vm_conf *vc, const char *key, const char *value,
    char *err, size_t errlen)
{
	const struct conf_opt	*o;

	if (strncmp(key, "timeout.", 8) == 0)
		return (conf_set_per_command(vc, CMD_KEY_TIMEOUT, key + 8,
		    value, err, errlen));
	if (strncmp(key, "cost.", 5) == 0)
		return (conf_set_per_command(vc, CMD_KEY_COST, key + 5,
		    value, err, errlen));
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

/* Whether two lists of per-command overrides are the same. */
static int
conf_per_command_equal(const struct cmd_confs *a, const struct cmd_confs *b)
{
	const struct cmd_conf	*x, *y;

	for (x = TAILQ_FIRST(a), y = TAILQ_FIRST(b); x != NULL && y != NULL;
	    x = TAILQ_NEXT(x, entry), y = TAILQ_NEXT(y, entry)) {
		if (strcmp(x->name, y->name) != 0 || x->key != y->key ||
		    x->value != y->value)
			return (0);
	}
	return (x == NULL && y == NULL);
}

/*
 * Whether a VM key of the table differs in a and b: every one of them
 * is a bound changed in place, so the table alone says what a reload
 * compares, and a key added to it cannot be forgotten here.
 */
static int
conf_vm_keys_differ(const struct vm_conf *a, const struct vm_conf *b)
{
	const struct conf_opt	*o;
	const char		*pa, *pb;
	int			 i;

	for (i = 0; i < conf_nopts; i++) {
		o = &conf_opts[i];
		if (o->where != CONF_VM)
			continue;
		pa = (const char *)a + o->off;
		pb = (const char *)b + o->off;
		switch (o->type) {
		case CONF_SECONDS:
			if (*(const double *)(const void *)pa !=
			    *(const double *)(const void *)pb)
				return (1);
			break;
		case CONF_SIZE:
		case CONF_COUNT:
			if (*(const size_t *)(const void *)pa !=
			    *(const size_t *)(const void *)pb)
				return (1);
			break;
		case CONF_UINT:
			if (*(const unsigned int *)(const void *)pa !=
			    *(const unsigned int *)(const void *)pb)
				return (1);
			break;
		default:
			fatalx("%s: %s is a VM key of a type it cannot compare",
			    __func__, o->key);
		}
	}
	return (0);
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
	if (conf_vm_keys_differ(a, b) || a->backoff_min != b->backoff_min ||
	    !conf_per_command_equal(&a->per_command, &b->per_command))
		diff |= CONF_DIFF_BOUNDS;
	return (diff);
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
