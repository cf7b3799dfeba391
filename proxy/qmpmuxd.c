/*
 * qmpmuxd: the QMP multiplexing proxy daemon.  This file holds only what
 * a main does: options, the loop, signals.  Everything else is in src/.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "qmpmux.h"

enum {
	OPT_UPSTREAM = 256,
	OPT_LISTEN,
	OPT_NAME,
	OPT_MODE,
	OPT_SLOW_CLIENT,
	OPT_SLOW_CLIENT_TIMEOUT,
	OPT_ALLOW,
	OPT_DENY,
	OPT_READ_ONLY,
	OPT_FULL_ACCESS,
	OPT_HANDSHAKE_TIMEOUT,
	OPT_GREETING_TIMEOUT,
	OPT_BACKOFF_MAX,
	OPT_MAX_UPSTREAM_MESSAGE,
	OPT_MAX_CLIENT_MESSAGE,
	OPT_MAX_CLIENT_OUTPUT,
	OPT_MAX_JSON_DEPTH,
	OPT_COMMAND_TIMEOUT,
	OPT_TIMEOUT,
	OPT_MAX_INFLIGHT,
	OPT_MAX_CLIENT_PIPELINE,
	OPT_MAX_QUEUED_COMMANDS,
	OPT_MAX_QUEUED_EVENTS,
	OPT_MAX_QUEUED_BYTES,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option longopts[] = {
	{ "upstream", required_argument, NULL, OPT_UPSTREAM },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "slow-client", required_argument, NULL, OPT_SLOW_CLIENT },
	{ "slow-client-timeout", required_argument, NULL,
	    OPT_SLOW_CLIENT_TIMEOUT },
	{ "allow", required_argument, NULL, OPT_ALLOW },
	{ "deny", required_argument, NULL, OPT_DENY },
	{ "read-only", no_argument, NULL, OPT_READ_ONLY },
	{ "full-access", no_argument, NULL, OPT_FULL_ACCESS },
	{ "handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT },
	{ "greeting-timeout", required_argument, NULL, OPT_GREETING_TIMEOUT },
	{ "backoff-max", required_argument, NULL, OPT_BACKOFF_MAX },
	{ "max-upstream-message", required_argument, NULL,
	    OPT_MAX_UPSTREAM_MESSAGE },
	{ "max-client-message", required_argument, NULL,
	    OPT_MAX_CLIENT_MESSAGE },
	{ "max-client-output", required_argument, NULL,
	    OPT_MAX_CLIENT_OUTPUT },
	{ "max-json-depth", required_argument, NULL, OPT_MAX_JSON_DEPTH },
	{ "command-timeout", required_argument, NULL, OPT_COMMAND_TIMEOUT },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
	{ "max-client-pipeline", required_argument, NULL,
	    OPT_MAX_CLIENT_PIPELINE },
	{ "max-queued-commands", required_argument, NULL,
	    OPT_MAX_QUEUED_COMMANDS },
	{ "max-queued-events", required_argument, NULL,
	    OPT_MAX_QUEUED_EVENTS },
	{ "max-queued-bytes", required_argument, NULL, OPT_MAX_QUEUED_BYTES },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static struct event_base	*base;
static struct vm		*vm;

static void	usage(FILE *, int) __attribute__((noreturn));
static char	*absolute(const char *);
static char	*socket_path(const char *, const char *);
static void	signal_cb(int, short, void *);
static void	signal_ignore_cb(int, short, void *);
static void	stopped_cb(struct vm *, void *);

/*
 * The signals the daemon catches.  SIGHUP, SIGUSR1 and SIGUSR2 are kept
 * for reload, dump and restart; until then they must not kill it and
 * leave its sockets behind.
 */
static struct signal_def {
	int		 sig;
	const char	*name;
	void		(*cb)(int, short, void *);
	struct event	*ev;
} signals[] = {
	{ SIGTERM, "SIGTERM", signal_cb, NULL },
	{ SIGINT, "SIGINT", signal_cb, NULL },
	{ SIGHUP, "SIGHUP", signal_ignore_cb, NULL },
	{ SIGUSR1, "SIGUSR1", signal_ignore_cb, NULL },
	{ SIGUSR2, "SIGUSR2", signal_ignore_cb, NULL },
};
#define NSIGNALS	(sizeof(signals) / sizeof(signals[0]))

/* The synopsis of qmpmuxd(8). */
static void
usage(FILE *f, int status)
{
	fprintf(f,
	    "usage: qmpmuxd [-dv] --upstream PATH --listen PATH [--name NAME]\n"
	    "               [--mode MODE] [--slow-client block | disconnect]\n"
	    "               [--slow-client-timeout SECONDS] [--allow GLOB]\n"
	    "               [--deny GLOB] [--read-only] [--full-access]\n"
	    "               [--handshake-timeout SECONDS]\n"
	    "               [--greeting-timeout SECONDS] [--backoff-max SECONDS]\n"
	    "               [--max-upstream-message BYTES]\n"
	    "               [--max-client-message BYTES]"
	    " [--max-client-output BYTES]\n"
	    "               [--max-json-depth N]\n"
	    "               [--command-timeout SECONDS]"
	    " [--timeout COMMAND=SECONDS]\n"
	    "               [--max-inflight N] [--max-client-pipeline N]\n"
	    "               [--max-queued-commands N] [--max-queued-events N]\n"
	    "               [--max-queued-bytes BYTES]\n"
	    "       qmpmuxd --help | --version\n");
	exit(status);
}

/* Complain about a bad option value and exit, as getopt would. */
static void __attribute__((noreturn))
badarg(const char *opt, const char *arg, const char *what)
{
	fprintf(stderr, "qmpmuxd: --%s %s: expected %s\n", opt, arg, what);
	exit(1);
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
 * SIGTERM, SIGINT: stop the VM, which answers what it owes its clients
 * first, and leave the loop once it has; a second signal leaves at once.
 */
static void
signal_cb(int sig, short events, void *arg)
{
	static int	 stopping;

	if (stopping) {
		log_info("received signal %d (%s) while shutting down, "
		    "exiting now", sig, strsignal(sig));
		event_base_loopexit(base, NULL);
		return;
	}
	stopping = 1;
	log_info("received signal %d (%s), shutting down", sig,
	    strsignal(sig));
	vm_stop(vm, "qmpmux: shutting down", stopped_cb, NULL);
}

/* A signal kept for what is to come: say so in the log, and go on. */
static void
signal_ignore_cb(int sig, short events, void *arg)
{
	struct signal_def	*sd = arg;

	log_info("received %s, ignored", sd->name);
}

/* Every client of the VM is closed: leave the loop, and main frees it. */
static void
stopped_cb(struct vm *stopped, void *arg)
{
	event_base_loopexit(base, NULL);
}

int
main(int argc, char *argv[])
{
	struct vm_conf		 conf;
	struct listener_conf	*lc;
	struct acl		 acl;
	size_t			 i;
	unsigned int		 n;
	mode_t			 mode = 0600;
	enum slow_client	 slow = SLOW_CLIENT_BLOCK;
	double			 slow_timeout = LISTENER_SLOW_CLIENT_TIMEOUT;
	int			 ch, idx, debug = 0, verbose = 0;
	const char		*optname, *unused = NULL;
	char			*end;
	unsigned long		 m;

	vm_conf_init(&conf);
	memset(&acl, 0, sizeof(acl));
	while ((ch = getopt_long(argc, argv, "dv", longopts, &idx)) != -1) {
		optname = ch >= OPT_UPSTREAM ? longopts[idx].name : "";
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 'v':
			verbose++;
			break;
		case OPT_UPSTREAM:
			free(conf.upstream);
			conf.upstream = socket_path(optname, optarg);
			break;
		case OPT_LISTEN:
			unused = NULL;
			/*
			 * --mode, --slow-client* and the access list apply to
			 * the --listen options after them
			 */
			lc = vm_conf_add_listener(&conf, optarg);
			free(lc->path);
			lc->path = socket_path(optname, optarg);
			lc->mode = mode;
			lc->slow_client = slow;
			lc->slow_client_timeout = slow_timeout;
			acl_copy(&lc->acl, &acl);
			break;
		case OPT_ALLOW:
		case OPT_DENY:
			unused = optname;
			if (*optarg == '\0')
				badarg(optname, optarg, "a command name or glob");
			acl_add(&acl, ch == OPT_DENY, optarg);
			break;
		case OPT_READ_ONLY:
			unused = optname;
			acl.read_only = 1;
			break;
		case OPT_FULL_ACCESS:
			unused = optname;
			acl_clear(&acl);
			break;
		case OPT_SLOW_CLIENT:
			unused = optname;
			if (strcmp(optarg, "block") == 0)
				slow = SLOW_CLIENT_BLOCK;
			else if (strcmp(optarg, "disconnect") == 0)
				slow = SLOW_CLIENT_DISCONNECT;
			else
				badarg(optname, optarg, "block or disconnect");
			break;
		case OPT_SLOW_CLIENT_TIMEOUT:
			unused = optname;
			if (util_parse_seconds(optarg, &slow_timeout) == -1 ||
			    slow_timeout <= 0)
				badarg(optname, optarg, "seconds above 0");
			break;
		case OPT_NAME:
			free(conf.name);
			if ((conf.name = strdup(optarg)) == NULL)
				fatal("strdup");
			break;
		case OPT_MODE:
			unused = optname;
			errno = 0;
			m = strtoul(optarg, &end, 8);
			if (errno != 0 || *end != '\0' || end == optarg ||
			    m > 0777)
				badarg(optname, optarg, "an octal mode");
			mode = (mode_t)m;
			break;
		case OPT_HANDSHAKE_TIMEOUT:
			if (util_parse_seconds(optarg,
			    &conf.handshake_timeout) == -1 || conf.handshake_timeout <= 0)
				badarg(optname, optarg, "seconds above 0");
			break;
		case OPT_GREETING_TIMEOUT:
			if (util_parse_seconds(optarg,
			    &conf.greeting_timeout) == -1 || conf.greeting_timeout <= 0)
				badarg(optname, optarg, "seconds above 0");
			break;
		case OPT_BACKOFF_MAX:
			if (util_parse_seconds(optarg, &conf.backoff_max) == -1 ||
			    conf.backoff_max <= 0)
				badarg(optname, optarg, "seconds above 0");
			break;
		case OPT_MAX_UPSTREAM_MESSAGE:
			if (util_parse_size(optarg,
			    &conf.max_upstream_message) == -1)
				badarg(optname, optarg, "a size in bytes");
			break;
		case OPT_MAX_CLIENT_MESSAGE:
			/* QEMU's own cap: past it, it reads one message as two */
			if (util_parse_size(optarg,
			    &conf.max_client_message) == -1 ||
			    conf.max_client_message > QMP_SIZE_MAX)
				badarg(optname, optarg, "a size in bytes, at "
				    "most 64M");
			break;
		case OPT_MAX_CLIENT_OUTPUT:
			if (util_parse_size(optarg,
			    &conf.max_client_output) == -1)
				badarg(optname, optarg, "a size in bytes");
			break;
		case OPT_MAX_JSON_DEPTH:
			/* likewise QEMU's nesting limit */
			if (util_parse_uint(optarg, 1, QMP_DEPTH_MAX,
			    &conf.max_json_depth) == -1)
				badarg(optname, optarg, "1 to 1024");
			break;
		case OPT_COMMAND_TIMEOUT:
			if (util_parse_seconds(optarg,
			    &conf.command_timeout) == -1)
				badarg(optname, optarg, "seconds (0: none)");
			break;
		case OPT_TIMEOUT:
			if (vm_conf_add_timeout(&conf, optarg) == -1)
				badarg(optname, optarg, "COMMAND=SECONDS");
			break;
		case OPT_MAX_INFLIGHT:
			if (util_parse_uint(optarg, 1, 8, &n) == -1)
				badarg(optname, optarg, "1 to 8");
			conf.max_inflight = n;
			break;
		case OPT_MAX_CLIENT_PIPELINE:
			if (util_parse_uint(optarg, 1, 65536, &n) == -1)
				badarg(optname, optarg, "1 to 65536");
			conf.max_client_pipeline = n;
			break;
		case OPT_MAX_QUEUED_COMMANDS:
			if (util_parse_uint(optarg, 0, 1 << 20, &n) == -1)
				badarg(optname, optarg, "0 to 1048576");
			conf.max_queued_commands = n;
			break;
		case OPT_MAX_QUEUED_EVENTS:
			if (util_parse_uint(optarg, 1, 1 << 24, &n) == -1)
				badarg(optname, optarg, "1 to 16777216");
			conf.max_queued_events = n;
			break;
		case OPT_MAX_QUEUED_BYTES:
			if (util_parse_size(optarg,
			    &conf.max_queued_bytes) == -1)
				badarg(optname, optarg, "a size in bytes");
			break;
		case OPT_HELP:
			usage(stdout, 0);
		case OPT_VERSION:
			printf("qmpmuxd %s\n", PACKAGE_VERSION);
			return (0);
		default:
			usage(stderr, 1);
		}
	}
	if (optind != argc || conf.upstream == NULL ||
	    TAILQ_EMPTY(&conf.listeners))
		usage(stderr, 1);
	if (conf.name == NULL && (conf.name = strdup("vm")) == NULL)
		fatal("strdup");
	acl_clear(&acl);
	/* a listener's option after the last --listen would be ignored */
	if (unused != NULL) {
		fprintf(stderr, "qmpmuxd: --%s after the last --listen applies "
		    "to no listener\n", unused);
		exit(1);
	}
	if (conf.backoff_min > conf.backoff_max)
		conf.backoff_min = conf.backoff_max;

	log_init(debug, verbose);
	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	/*
	 * Signals are caught before the listener exists: a SIGTERM as soon
	 * as its socket appears must still remove it.
	 */
	for (i = 0; i < NSIGNALS; i++) {
		signals[i].ev = evsignal_new(base, signals[i].sig,
		    signals[i].cb, &signals[i]);
		if (signals[i].ev == NULL || evsignal_add(signals[i].ev,
		    NULL) == -1)
			fatalx("cannot catch %s", signals[i].name);
	}
	/* listeners exist before the fork, so a failure is our exit status */
	if ((vm = vm_new(base, &conf)) == NULL)
		fatalx("cannot start vm");
	if (!debug) {
		if (daemon(0, 0) == -1)
			fatal("daemon");
		if (event_reinit(base) == -1)
			fatalx("event_reinit failed");
	}

	log_info("qmpmuxd %s started", PACKAGE_VERSION);
	event_base_dispatch(base);

	vm_free(vm);
	for (i = 0; i < NSIGNALS; i++)
		event_free(signals[i].ev);
	event_base_free(base);
	log_info("qmpmuxd stopped");
	return (0);
}
