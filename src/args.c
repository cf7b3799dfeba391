/*
 * qmpmuxd's command line, as configuration: options become config
 * entries (conf.c), as if from a file.  A VM bound such as
 * --command-timeout goes to [global], over the file's value; --name,
 * --upstream and --listen make the one VM of the old command line,
 * [vm NAME] and a [listener NAME PATH] for each --listen, with the
 * listener options given before it.  The usage is made from conf.c's
 * table too, so that it and qmpmuxd(8) say the same
 * (tests/check_bounds.c).  A bad option exits (status 1) with why.
 */
#include "config.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qmpmux.h"

enum {
	OPT_TABLE = 256,	/* + the index in conf.c's table */
	OPT_UPSTREAM = 1024,
	OPT_LISTEN,
	OPT_NAME,
	OPT_TIMEOUT,
	OPT_COST,
	OPT_FULL_ACCESS,
	OPT_HELP,
	OPT_VERSION,
	OPT_CHECK_STATE,
};

static void	args_usage(FILE *, int) __attribute__((noreturn));

/* One item of the usage after the others, wrapped at 79 columns. */
static void
args_usage_item(FILE *f, size_t *col, const char *item)
{
	size_t	 len = strlen(item);

	if (*col + 1 + len > 79) {
		fprintf(f, "\n%15s%s", "", item);
		*col = 15 + len;
	} else {
		fprintf(f, " %s", item);
		*col += 1 + len;
	}
}

/*
 * The options of conf.c's table of one kind (listener: 1, VM: 0,
 * daemon: -1) as items of the usage: [--KEY ARG].
 */
static void
args_usage_table(FILE *f, size_t *col, int kind)
{
	char		 flag[64], item[128];
	const char	*arg;
	int		 i, k;

	for (i = 0; i < conf_option_count(); i++) {
		k = conf_option_is_listener(i) ? 1 :
		    conf_option_is_global(i) ? -1 : 0;
		if (k != kind)
			continue;
		conf_option_flag(i, flag, sizeof(flag));
		arg = conf_option_arg(i);
		snprintf(item, sizeof(item), "[--%s%s%s]", flag,
		    arg != NULL ? " " : "", arg != NULL ? arg : "");
		args_usage_item(f, col, item);
	}
}

/*
 * The synopsis of qmpmuxd(8), which must say the same: every option of
 * conf.c's table is in it, from the table (tests/check_bounds.c).
 */
static void
args_usage(FILE *f, int status)
{
	const char	*head = "       qmpmuxd [-dnv] --upstream PATH "
			    "--listen PATH";
	size_t		 col = strlen(head);

	fprintf(f, "usage: qmpmuxd [-dnv] [-f FILE] [--OPTION VALUE ...]\n"
	    "%s", head);
	args_usage_item(f, &col, "[--name NAME]");
	args_usage_table(f, &col, 1);
	args_usage_item(f, &col, "[--full-access]");
	args_usage_table(f, &col, 0);
	args_usage_item(f, &col, "[--timeout COMMAND=SECONDS]");
	args_usage_item(f, &col, "[--cost COMMAND=N]");
	args_usage_table(f, &col, -1);
	fprintf(f, "\n"
	    "       qmpmuxd --check-state FD\n"
	    "       qmpmuxd --help | --version\n");
	exit(status);
}

/* A path made absolute now, so a later reconnect does not depend on cwd. */
static char *
args_absolute(const char *path)
{
	char	 cwd[4096], *p;

	if (path[0] == '/')
		p = strdup(path);
	else if (getcwd(cwd, sizeof(cwd)) == NULL ||
	    asprintf(&p, "%s/%s", cwd, path) == -1)
		p = NULL;
	if (p == NULL)
		fatal("%s", __func__);
	return (p);
}

/*
 * A socket option's path, made absolute and refused (exit 1) if it
 * cannot be a unix socket's: cut short, it would name another socket.
 */
static char *
args_socket_path(const char *opt, const char *arg)
{
	char	*path = args_absolute(arg), err[128];

	if (util_check_sun_path(path, err, sizeof(err)) == -1) {
		fprintf(stderr, "qmpmuxd: --%s %s: %s\n", opt, path, err);
		exit(1);
	}
	return (path);
}

/*
 * Refuse a bad option value (exit 1), in the words of conf.c: key set
 * to value, told as --opt arg.
 */
static void
args_check_value(const char *opt, const char *arg, const char *key,
    const char *value)
{
	char	 err[CONF_ERR_MAX];

	if (conf_check_value(key, value, err, sizeof(err)) == -1) {
		fprintf(stderr, "qmpmuxd: --%s %s: %s\n", opt, arg, err);
		exit(1);
	}
}

/* Forget the access list of the listener options given so far. */
static void
args_drop_access(struct conf_entries *pending)
{
	struct conf_entries	 keep;
	struct conf_entry	*e;

	TAILQ_INIT(&keep);
	TAILQ_FOREACH(e, pending, entry) {
		if (strcmp(e->key, "allow") != 0 &&
		    strcmp(e->key, "deny") != 0 &&
		    strcmp(e->key, "read_only") != 0)
			conf_entry_add(&keep, e->section, e->key, e->value,
			    e->file, e->line);
	}
	conf_entries_clear(pending);
	TAILQ_CONCAT(pending, &keep, entry);
}

/* The long options: the fixed ones, then one per entry of conf.c's table. */
static struct option *
args_long_options(void)
{
	static const struct option fixed[] = {
		{ "upstream", required_argument, NULL, OPT_UPSTREAM },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "name", required_argument, NULL, OPT_NAME },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "cost", required_argument, NULL, OPT_COST },
		{ "full-access", no_argument, NULL, OPT_FULL_ACCESS },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "check-state", required_argument, NULL, OPT_CHECK_STATE },
	};
	size_t		 nfixed = sizeof(fixed) / sizeof(fixed[0]);
	struct option	*o;
	int		 i, n = conf_option_count();
	char		 flag[64];

	if ((o = calloc(nfixed + (size_t)n + 1, sizeof(*o))) == NULL)
		fatal("%s", __func__);
	memcpy(o, fixed, sizeof(fixed));
	for (i = 0; i < n; i++) {
		conf_option_flag(i, flag, sizeof(flag));
		if ((o[nfixed + i].name = strdup(flag)) == NULL)
			fatal("%s", __func__);
		/* --read-only takes no value: it is read_only = yes */
		o[nfixed + i].has_arg = conf_option_arg(i) == NULL ?
		    no_argument : required_argument;
		o[nfixed + i].val = OPT_TABLE + i;
	}
	return (o);
}

/* Free the long options, with the names made for them. */
static void
args_free_long_options(struct option *o)
{
	struct option	*p;

	for (p = o; p->name != NULL; p++) {
		if (p->val >= OPT_TABLE && p->val < OPT_UPSTREAM)
			free((void *)(uintptr_t)p->name);
	}
	free(o);
}

/* A listener given on the command line, with the options before it. */
struct args_listener {
	char			*path;
	struct conf_entries	 keys;
	TAILQ_ENTRY(args_listener) entry;
};
TAILQ_HEAD(args_listeners, args_listener);

/*
 * Parse the command line into a: its flags, and its options as config
 * entries; dflt_conf is the file read when neither -f nor --upstream
 * names one, version what --version says.
 */
void
args_parse(struct args *a, int argc, char *argv[], const char *dflt_conf,
    const char *version)
{
	struct conf_entries	 pending;
	struct args_listeners	 listeners;
	struct args_listener	*cl;
	struct conf_entry	*e;
	struct option		*longopts = args_long_options();
	const char		*key, *value, *opt;
	char			*upstream = NULL, *name = NULL, *section, *eq;
	char			 unused[64];
	int			 ch, idx;

	memset(a, 0, sizeof(*a));
	a->check_state = -1;
	TAILQ_INIT(&pending);
	TAILQ_INIT(&listeners);
	unused[0] = '\0';
	TAILQ_INIT(&a->entries);
	while ((ch = getopt_long(argc, argv, "df:nv", longopts, &idx)) !=
	    -1) {
		switch (ch) {
		case 'd':
			a->debug = 1;
			break;
		case 'f':
			/* a reload after the chdir of daemon() finds it */
			free(a->file);
			a->file = args_absolute(optarg);
			break;
		case 'n':
			a->check = 1;
			break;
		case 'v':
			a->verbose++;
			break;
		case OPT_UPSTREAM:
			free(upstream);
			upstream = args_socket_path("upstream", optarg);
			break;
		case OPT_LISTEN:
			/* the listener options so far are this one's */
			if ((cl = calloc(1, sizeof(*cl))) == NULL)
				fatal("calloc");
			cl->path = args_socket_path("listen", optarg);
			TAILQ_INIT(&cl->keys);
			TAILQ_FOREACH(e, &pending, entry)
				conf_entry_add(&cl->keys, "", e->key, e->value,
				    "command line", 0);
			TAILQ_INSERT_TAIL(&listeners, cl, entry);
			unused[0] = '\0';
			break;
		case OPT_NAME:
			free(name);
			if ((name = strdup(optarg)) == NULL)
				fatal("strdup");
			break;
		case OPT_TIMEOUT:
		case OPT_COST:
			/* COMMAND=VALUE is the file's timeout.COMMAND */
			opt = ch == OPT_TIMEOUT ? "timeout" : "cost";
			if ((eq = strchr(optarg, '=')) == NULL ||
			    eq == optarg) {
				fprintf(stderr, "qmpmuxd: --%s %s: expected "
				    "COMMAND=%s\n", opt, optarg,
				    ch == OPT_TIMEOUT ? "SECONDS" : "N");
				exit(1);
			}
			if (asprintf(&section, "%s.%.*s", opt,
			    (int)(eq - optarg), optarg) == -1)
				fatal("asprintf");
			args_check_value(opt, optarg, section, eq + 1);
			conf_entry_add(&a->entries, "global", section, eq + 1,
			    "command line", 0);
			free(section);
			break;
		case OPT_FULL_ACCESS:
			/* the listeners after it get no access list */
			args_drop_access(&pending);
			snprintf(unused, sizeof(unused), "full-access");
			break;
		case OPT_HELP:
			args_usage(stdout, 0);
		case OPT_VERSION:
			printf("qmpmuxd %s\n", version);
			exit(0);
		case OPT_CHECK_STATE:
			/* a restart asks: can this binary take over? */
			a->check_state = atoi(optarg);
			break;
		default:
			if (ch < OPT_TABLE || ch >= OPT_TABLE +
			    conf_option_count())
				args_usage(stderr, 1);
			key = conf_option_name(ch - OPT_TABLE);
			if (conf_option_is_listener(ch - OPT_TABLE)) {
				/* --read-only is read_only = yes */
				value = optarg != NULL ? optarg : "yes";
				args_check_value(longopts[idx].name, value, key,
				    value);
				conf_entry_add(&pending, "", key, value,
				    "command line", 0);
				snprintf(unused, sizeof(unused), "%s",
				    longopts[idx].name);
			} else {
				args_check_value(longopts[idx].name, optarg, key,
				    optarg);
				conf_entry_add(&a->entries, "global", key, optarg,
				    "command line", 0);
			}
			break;
		}
	}
	args_free_long_options(longopts);
	if (optind != argc)
		args_usage(stderr, 1);
	/* a listener's option after the last --listen would be ignored */
	if (unused[0] != '\0') {
		fprintf(stderr, "qmpmuxd: --%s after the last --listen applies "
		    "to no listener\n", unused);
		exit(1);
	}
	if (upstream != NULL || !TAILQ_EMPTY(&listeners)) {
		/* the one VM of the command line */
		if (upstream == NULL || TAILQ_EMPTY(&listeners) ||
		    a->file != NULL)
			args_usage(stderr, 1);
		if (asprintf(&section, "vm %s", name != NULL ? name : "vm") ==
		    -1)
			fatal("asprintf");
		/* a bare path: connect mode, as the old command line had it */
		conf_entry_add(&a->entries, section, "upstream", upstream,
		    "command line", 0);
		free(section);
		while ((cl = TAILQ_FIRST(&listeners)) != NULL) {
			TAILQ_REMOVE(&listeners, cl, entry);
			if (asprintf(&section, "listener %s %s",
			    name != NULL ? name : "vm", cl->path) == -1)
				fatal("asprintf");
			/* the header first: a listener may have no keys */
			conf_entry_add(&a->entries, section, "", "",
			    "command line", 0);
			TAILQ_FOREACH(e, &cl->keys, entry)
				conf_entry_add(&a->entries, section, e->key,
				    e->value, "command line", 0);
			free(section);
			conf_entries_clear(&cl->keys);
			free(cl->path);
			free(cl);
		}
	} else if (name != NULL) {
		fprintf(stderr, "qmpmuxd: --name goes with --upstream and "
		    "--listen; a config file names its VMs\n");
		exit(1);
	} else if (a->file == NULL && (a->file = strdup(dflt_conf)) == NULL)
		fatal("strdup");
	conf_entries_clear(&pending);
	free(upstream);
	free(name);
}

/* Free what args_parse made. */
void
args_clear(struct args *a)
{
	conf_entries_clear(&a->entries);
	free(a->file);
	a->file = NULL;
}
