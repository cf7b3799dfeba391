/*
 * qmpmuxd: the QMP multiplexing proxy daemon.  This file holds only what
 * a main does: options, the loop, signals.  Everything else is in src/;
 * the server owns the VMs.
 *
 * Options become config entries (conf.c), as if from a file: a VM
 * bound such as --command-timeout goes to [global], over the file's
 * value; --name, --upstream and --listen make the one VM of the old
 * command line, [vm NAME] and a [listener NAME PATH] for each --listen,
 * with the listener options given before it.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "qmpmux.h"

#define QMPMUXD_CONF	SYSCONFDIR "/qmpmux/qmpmuxd.conf"

/* The version it says it is; the tests build one that says another. */
#ifndef QMPMUXD_VERSION
#define QMPMUXD_VERSION	PACKAGE_VERSION
#endif

enum {
	OPT_TABLE = 256,	/* + the index in conf.c's table */
	OPT_UPSTREAM = 1024,
	OPT_LISTEN,
	OPT_NAME,
	OPT_TIMEOUT,
	OPT_FULL_ACCESS,
	OPT_HELP,
	OPT_VERSION,
	OPT_CHECK_STATE,
};

static struct event_base	*base;
static struct server		*server;
static struct control		*control;
static int			 stopping;

static void	usage(FILE *, int) __attribute__((noreturn));
static char	*absolute(const char *);
static char	*socket_path(const char *, const char *);
static void	signal_cb(int, short, void *);
static void	signal_hup_cb(int, short, void *);
static void	signal_dump_cb(int, short, void *);
static void	signal_restart_cb(int, short, void *);
static void	signal_read_cb(int, short, void *);
static void	stopped_cb(void *);
static void	raise_nofile(void);

/*
 * The signals the daemon catches.  They are blocked for its whole life
 * and read from a signalfd, one at a time, so that a restart's exec
 * leaves those not yet read pending in the kernel for the new process:
 * none is lost, none kills it.  A handler (libevent's) would take a
 * signal that comes during the restart, and it would go with the exec.
 */
static struct signal_def {
	int		 sig;
	const char	*name;
	void		(*cb)(int, short, void *);
} signals[] = {
	{ SIGTERM, "SIGTERM", signal_cb },
	{ SIGINT, "SIGINT", signal_cb },
	{ SIGHUP, "SIGHUP", signal_hup_cb },
	{ SIGUSR1, "SIGUSR1", signal_dump_cb },
	{ SIGUSR2, "SIGUSR2", signal_restart_cb },
};
#define NSIGNALS	(sizeof(signals) / sizeof(signals[0]))

/* One item of the usage after the others, wrapped at 79 columns. */
static void
usage_item(FILE *f, size_t *col, const char *item)
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
usage_table(FILE *f, size_t *col, int kind)
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
		usage_item(f, col, item);
	}
}

/*
 * The synopsis of qmpmuxd(8), which must say the same: every option of
 * conf.c's table is in it, from the table (tests/check_bounds.c).
 */
static void
usage(FILE *f, int status)
{
	const char	*head = "       qmpmuxd [-dnv] --upstream PATH "
			    "--listen PATH";
	size_t		 col = strlen(head);

	fprintf(f, "usage: qmpmuxd [-dnv] [-f FILE] [--OPTION VALUE ...]\n"
	    "%s", head);
	usage_item(f, &col, "[--name NAME]");
	usage_table(f, &col, 1);
	usage_item(f, &col, "[--full-access]");
	usage_table(f, &col, 0);
	usage_item(f, &col, "[--timeout COMMAND=SECONDS]");
	usage_table(f, &col, -1);
	fprintf(f, "\n"
	    "       qmpmuxd --check-state FD\n"
	    "       qmpmuxd --help | --version\n");
	exit(status);
}

/* A path made absolute now, so a later reconnect does not depend on cwd. */
static char *
absolute(const char *path)
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
socket_path(const char *opt, const char *arg)
{
	char	*path = absolute(arg), err[128];

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
check_value(const char *opt, const char *arg, const char *key,
    const char *value)
{
	char	 err[CONF_ERR_MAX];

	if (conf_check_value(key, value, err, sizeof(err)) == -1) {
		fprintf(stderr, "qmpmuxd: --%s %s: %s\n", opt, arg, err);
		exit(1);
	}
}

/*
 * SIGTERM, SIGINT: stop every VM, which answers what it owes its
 * clients first, and leave the loop once they have; a second signal
 * leaves at once.
 */
static void
signal_cb(int sig, short events, void *arg)
{
	if (stopping) {
		log_info("received signal %d (%s) while shutting down, "
		    "exiting now", sig, strsignal(sig));
		event_base_loopexit(base, NULL);
		return;
	}
	stopping = 1;
	log_info("received signal %d (%s), shutting down", sig,
	    strsignal(sig));
	fdstore_notify("STOPPING=1");
	/* no command may change the VMs while they stop */
	control_free(control);
	control = NULL;
	server_shutdown(server, stopped_cb, NULL);
}

/* SIGHUP: reload the configuration. */
static void
signal_hup_cb(int sig, short events, void *arg)
{
	char	 status[64], err[CONF_ERR_MAX];

	if (stopping)
		return;
	log_info("received SIGHUP, reloading");
	fdstore_notify("RELOADING=1");
	server_reload(server, err, sizeof(err));
	snprintf(status, sizeof(status), "READY=1\nSTATUS=%u VMs",
	    server_count(server));
	fdstore_notify(status);
}

/* SIGUSR1: the diagnostic dump. */
static void
signal_dump_cb(int sig, short events, void *arg)
{
	size_t	 len;

	log_info("received SIGUSR1, dumping");
	free(server_dump(server, &len));
}

/*
 * SIGUSR2: restart in place, handing everything over (restart.c).  It
 * returns only if the restart did not happen; the log says why.
 */
static void
signal_restart_cb(int sig, short events, void *arg)
{
	char	 err[256];

	if (stopping)
		return;
	log_info("received SIGUSR2, restarting");
	restart(server, control, 0, NULL, 0, err, sizeof(err));
}

/*
 * The next signal of the signalfd, and only one: if it restarts, the
 * others stay pending (the event comes again while there are more).
 */
static void
signal_read_cb(int fd, short events, void *arg)
{
	struct signalfd_siginfo	 si;
	size_t			 i;

	if (read(fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return;
	for (i = 0; i < NSIGNALS; i++) {
		if (signals[i].sig == (int)si.ssi_signo)
			signals[i].cb(signals[i].sig, events, &signals[i]);
	}
}

/* Every VM is stopped: leave the loop, and main frees the rest. */
static void
stopped_cb(void *arg)
{
	event_base_loopexit(base, NULL);
}

/*
 * Two fds per VM and one per client: the soft limit many systems start
 * with (1024) would stop a host at some 500 VMs.  Take the hard one.
 */
static void
raise_nofile(void)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("cannot raise the limit of open files");
}

/* Forget the access list of the listener options given so far. */
static void
drop_access(struct conf_entries *pending)
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
long_options(void)
{
	static const struct option fixed[] = {
		{ "upstream", required_argument, NULL, OPT_UPSTREAM },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "name", required_argument, NULL, OPT_NAME },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
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
free_long_options(struct option *o)
{
	struct option	*p;

	for (p = o; p->name != NULL; p++) {
		if (p->val >= OPT_TABLE && p->val < OPT_UPSTREAM)
			free((void *)(uintptr_t)p->name);
	}
	free(o);
}

/* A listener given on the command line, with the options before it. */
struct cmd_listener {
	char			*path;
	struct conf_entries	 keys;
	TAILQ_ENTRY(cmd_listener) entry;
};
TAILQ_HEAD(cmd_listeners, cmd_listener);

/*
 * The control socket.  One that was asked for must be made, or the
 * daemon exits (the VMs' sockets go first: nothing is left behind).
 * The default's directory is made if it is missing, as systemd's
 * RuntimeDirectory= would; if the default still cannot be made (a user
 * other than root runs one VM by hand) the daemon runs without one and
 * says so.
 */
static void
start_control(const char *path)
{
	int	 dflt;

	dflt = strcmp(path, QMPMUX_RUNDIR "/control.sock") == 0;
	if (dflt && mkdir(QMPMUX_RUNDIR, 0755) == -1 && errno != EEXIST)
		log_debug("control: cannot make %s: %s", QMPMUX_RUNDIR,
		    strerror(errno));
	if ((control = control_new(server, path)) != NULL)
		return;
	if (!dflt) {
		server_free(server);
		fatalx("cannot make the control socket");
	}
	log_warnx("control: running without a control socket: the default, "
	    "%s, cannot be made; set control (--control) to a path or none",
	    path);
}

int
main(int argc, char *argv[])
{
	struct conf_entries	 entries, pending;
	struct cmd_listeners	 listeners;
	struct cmd_listener	*cl;
	struct conf_entry	*e;
	struct option		*longopts = long_options();
	struct conf		 conf;
	struct vm_conf		*vc;
	const char		*key, *value;
	char			*file = NULL;
	char			*upstream = NULL, *name = NULL, *section, *eq;
	char			 err[CONF_ERR_MAX], status[64], unused[64];
	int			 ch, idx, debug = 0, verbose = 0, check = 0;
	int			 sfd, restored, check_state = -1, sigfd;
	struct state		*st = NULL;
	struct event		*sigev;
	sigset_t		 sigs;
	size_t			 i;

	unused[0] = '\0';
	TAILQ_INIT(&entries);
	TAILQ_INIT(&pending);
	TAILQ_INIT(&listeners);
	while ((ch = getopt_long(argc, argv, "df:nv", longopts, &idx)) !=
	    -1) {
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 'f':
			/* a reload after the chdir of daemon() finds it */
			free(file);
			file = absolute(optarg);
			break;
		case 'n':
			check = 1;
			break;
		case 'v':
			verbose++;
			break;
		case OPT_UPSTREAM:
			free(upstream);
			upstream = socket_path("upstream", optarg);
			break;
		case OPT_LISTEN:
			/* the listener options so far are this one's */
			if ((cl = calloc(1, sizeof(*cl))) == NULL)
				fatal("calloc");
			cl->path = socket_path("listen", optarg);
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
			/* COMMAND=SECONDS is the file's timeout.COMMAND */
			if ((eq = strchr(optarg, '=')) == NULL ||
			    eq == optarg) {
				fprintf(stderr, "qmpmuxd: --timeout %s: "
				    "expected COMMAND=SECONDS\n", optarg);
				exit(1);
			}
			if (asprintf(&section, "timeout.%.*s",
			    (int)(eq - optarg), optarg) == -1)
				fatal("asprintf");
			check_value("timeout", optarg, section, eq + 1);
			conf_entry_add(&entries, "global", section, eq + 1,
			    "command line", 0);
			free(section);
			break;
		case OPT_FULL_ACCESS:
			/* the listeners after it get no access list */
			drop_access(&pending);
			snprintf(unused, sizeof(unused), "full-access");
			break;
		case OPT_HELP:
			usage(stdout, 0);
		case OPT_VERSION:
			printf("qmpmuxd %s\n", QMPMUXD_VERSION);
			exit(0);
		case OPT_CHECK_STATE:
			/* a restart asks: can this binary take over? */
			check_state = atoi(optarg);
			break;
		default:
			if (ch < OPT_TABLE || ch >= OPT_TABLE +
			    conf_option_count())
				usage(stderr, 1);
			key = conf_option_name(ch - OPT_TABLE);
			if (conf_option_is_listener(ch - OPT_TABLE)) {
				/* --read-only is read_only = yes */
				value = optarg != NULL ? optarg : "yes";
				check_value(longopts[idx].name, value, key,
				    value);
				conf_entry_add(&pending, "", key, value,
				    "command line", 0);
				snprintf(unused, sizeof(unused), "%s",
				    longopts[idx].name);
			} else {
				check_value(longopts[idx].name, optarg, key,
				    optarg);
				conf_entry_add(&entries, "global", key, optarg,
				    "command line", 0);
			}
			break;
		}
	}
	free_long_options(longopts);
	if (optind != argc)
		usage(stderr, 1);
	/* a listener's option after the last --listen would be ignored */
	if (unused[0] != '\0') {
		fprintf(stderr, "qmpmuxd: --%s after the last --listen applies "
		    "to no listener\n", unused);
		exit(1);
	}
	if (upstream != NULL || !TAILQ_EMPTY(&listeners)) {
		/* the one VM of the command line */
		if (upstream == NULL || TAILQ_EMPTY(&listeners) ||
		    file != NULL)
			usage(stderr, 1);
		if (asprintf(&section, "vm %s", name != NULL ? name : "vm") ==
		    -1)
			fatal("asprintf");
		/* a bare path: connect mode, as the old command line had it */
		conf_entry_add(&entries, section, "upstream", upstream,
		    "command line", 0);
		free(section);
		while ((cl = TAILQ_FIRST(&listeners)) != NULL) {
			TAILQ_REMOVE(&listeners, cl, entry);
			if (asprintf(&section, "listener %s %s",
			    name != NULL ? name : "vm", cl->path) == -1)
				fatal("asprintf");
			/* the header first: a listener may have no keys */
			conf_entry_add(&entries, section, "", "",
			    "command line", 0);
			TAILQ_FOREACH(e, &cl->keys, entry)
				conf_entry_add(&entries, section, e->key,
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
	} else if (file == NULL && (file = strdup(QMPMUXD_CONF)) == NULL)
		fatal("strdup");

	server = NULL;
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	server = server_new(base, file, &entries);
	free(file);
	if (server_load(server, &conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "qmpmuxd: %s\n", err);
		exit(1);
	}
	/* the configuration is good: and the state of the process before? */
	if (check_state != -1)
		exit(restart_check(check_state));
	conf_entries_clear(&entries);
	conf_entries_clear(&pending);
	free(upstream);
	free(name);
	if (check) {
		i = 0;
		TAILQ_FOREACH(vc, &conf.vms, entry)
			i++;
		printf("configuration OK: %zu VMs\n", i);
		conf_clear(&conf);
		server_free(server);
		event_base_free(base);
		return (0);
	}

	log_init(debug, verbose);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	restart_init(argv);
	fdstore_init();
	/* a restart: the process before left its state and sockets */
	if ((sfd = restart_state_fd()) != -1) {
		if ((st = state_read(sfd, err, sizeof(err))) == NULL)
			fatalx("cannot take over from the process before: %s",
			    err);
		close(sfd);
		/* the commands in flight keep their ids */
		server->epoch = (unsigned int)json_get_int(state_root(st),
		    "epoch", server->epoch);
	} else if ((st = fdstore_recover(err, sizeof(err))) == NULL &&
	    err[0] != '\0')
		log_warnx("fdstore: the sockets given back cannot be taken "
		    "over: %s", err);
	server->restore = st;
	/*
	 * Signals are caught before the listeners exist: a SIGTERM as soon
	 * as a socket appears must still remove it.  Those held across a
	 * restart's exec are read first.
	 */
	sigemptyset(&sigs);
	for (i = 0; i < NSIGNALS; i++)
		sigaddset(&sigs, signals[i].sig);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) == -1)
		fatal("sigprocmask");
	if ((sigfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	if ((sigev = event_new(base, sigfd, EV_READ | EV_PERSIST,
	    signal_read_cb, NULL)) == NULL || event_add(sigev, NULL) == -1)
		fatalx("cannot read signals");
	/* taking over: what the file gave up goes before anything binds */
	if (st != NULL)
		state_release(st, &conf);
	/* listeners exist before the fork, so a failure is our exit status */
	if (server_start(server, &conf) == -1)
		fatalx("cannot start the VMs");
	if (st != NULL)
		state_restore_rest(server, st);
	/* after the VMs, so that its first command finds them */
	if (st != NULL)
		control = control_adopt(server, conf.control_path,
		    state_root(st));
	if (control == NULL && conf.control_path != NULL)
		start_control(conf.control_path);
	conf_clear(&conf);
	server->restore = NULL;
	/* what came in the store and was not taken over is let go */
	fdstore_forget_others();
	restored = st != NULL;
	state_free(st);
	/* the process before went to / with daemon(); so does this one */
	if (restored && !debug && getenv("NOTIFY_SOCKET") == NULL &&
	    chdir("/") == -1)
		log_warn("chdir /");
	/* a service manager that waits for READY=1 must not see a fork */
	if (!restored && !debug && getenv("NOTIFY_SOCKET") == NULL) {
		if (daemon(0, 0) == -1)
			fatal("daemon");
		if (event_reinit(base) == -1)
			fatalx("event_reinit failed");
	}

	log_info("qmpmuxd %s %s", QMPMUXD_VERSION, restored ?
	    "took over" : "started");
	snprintf(status, sizeof(status), "READY=1\nSTATUS=%u VMs",
	    server_count(server));
	fdstore_notify(status);
	event_base_dispatch(base);

	control_free(control);
	server_free(server);
	event_free(sigev);
	close(sigfd);
	event_base_free(base);
	log_info("qmpmuxd stopped");
	return (0);
}
