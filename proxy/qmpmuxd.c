/*
 * qmpmuxd: the QMP multiplexing proxy daemon.  This file holds only what
 * a main does, as tmux's main.c and relayd's parent do: the options
 * (args.c makes configuration of them), the signals, the loop.  The
 * server (server.c) owns everything else, and drives start-up and the
 * take-over after a restart or a crash.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <errno.h>
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

static struct event_base	*base;
static struct server		*server;
static int			 stopping;

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
	server_shutdown(server, stopped_cb, NULL);
}

/* SIGHUP: reload the configuration. */
static void
signal_hup_cb(int sig, short events, void *arg)
{
	char	 err[CONF_ERR_MAX];

	if (stopping)
		return;
	log_info("received SIGHUP, reloading");
	server_reload(server, err, sizeof(err));
}

/* SIGUSR1: the diagnostic dump. */
static void
signal_dump_cb(int sig, short events, void *arg)
{
	log_info("received SIGUSR1, dumping");
	server_dump(server);
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
	server_restart(server, 0, NULL, 0, err, sizeof(err));
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

/*
 * Signals are caught before the listeners exist: a SIGTERM as soon as a
 * socket appears must still remove it.  Those held across a restart's
 * exec are read first.  The event, for main to free.
 */
static struct event *
signals_start(int *sigfd)
{
	struct event	*sigev;
	sigset_t	 sigs;
	size_t		 i;

	sigemptyset(&sigs);
	for (i = 0; i < NSIGNALS; i++)
		sigaddset(&sigs, signals[i].sig);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) == -1)
		fatal("sigprocmask");
	if ((*sigfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	if ((sigev = event_new(base, *sigfd, EV_READ | EV_PERSIST,
	    signal_read_cb, NULL)) == NULL || event_add(sigev, NULL) == -1)
		fatalx("cannot read signals");
	return (sigev);
}

int
main(int argc, char *argv[])
{
	struct args		 args;
	struct conf		 conf;
	struct vm_conf		*vc;
	struct event		*sigev;
	char			 err[CONF_ERR_MAX], status[64];
	int			 restored, sigfd;
	size_t			 n = 0;

	args_parse(&args, argc, argv, QMPMUXD_CONF, QMPMUXD_VERSION);
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	server = server_new(base, args.file, &args.entries);
	if (server_load(server, &conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "qmpmuxd: %s\n", err);
		exit(1);
	}
	/* the configuration is good: and the state of the process before? */
	if (args.check_state != -1)
		exit(restart_check(args.check_state));
	if (args.check) {
		TAILQ_FOREACH(vc, &conf.vms, entry)
			n++;
		printf("configuration OK: %zu VMs\n", n);
		conf_clear(&conf);
		server_free(server);
		event_base_free(base);
		args_clear(&args);
		return (0);
	}

	log_init(args.debug, args.verbose);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	restart_init(argv);
	fdstore_init();
	sigev = signals_start(&sigfd);
	/* listeners exist before the fork, so a failure is our exit status */
	if ((restored = server_run(server, &conf)) == -1) {
		server_free(server);
		fatalx("cannot start the VMs");
	}
	/* the process before went to / with daemon(); so does this one */
	if (restored && !args.debug && getenv("NOTIFY_SOCKET") == NULL &&
	    chdir("/") == -1)
		log_warn("chdir /");
	/* a service manager that waits for READY=1 must not see a fork */
	if (!restored && !args.debug && getenv("NOTIFY_SOCKET") == NULL) {
		if (daemon(0, 0) == -1)
			fatal("daemon");
		if (event_reinit(base) == -1)
			fatalx("event_reinit failed");
	}

	log_info("qmpmuxd %s %s", QMPMUXD_VERSION, restored ?
	    "took over" : "started");
	snprintf(status, sizeof(status), "READY=1\nSTATUS=%u VMs",
	    host_count(server));
	fdstore_notify(status);
	event_base_dispatch(base);

	server_free(server);
	event_free(sigev);
	close(sigfd);
	event_base_free(base);
	args_clear(&args);
	log_info("qmpmuxd stopped");
	return (0);
}
