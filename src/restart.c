/*
 * Restart in place: qmpmuxd executes its own binary again, from its
 * path on disk (so an upgraded binary takes over), as the same process:
 * the same pid, so systemd and anything else watching see nothing.  The
 * new process gets every socket (they stay open across the exec) and
 * the state that goes with them (state.c), in a memfd named by the
 * environment (QMPMUX_STATE_FD), and carries on where this one stopped:
 * nobody connected sees more than a pause.
 *
 * Before the exec the binary on disk is asked, as a short-lived child
 * with the same arguments and --check-state FD, whether it reads this
 * state and the configuration; if it does not, or the exec fails, this
 * process carries on, and says why (the child's own words).
 * Signals that come during the handover are held (blocked for the
 * process's whole life and read from a signalfd, so they stay pending
 * across the exec for the new process), not fatal.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qmpmux.h"

#define RESTART_ENV		"QMPMUX_STATE_FD"
#define RESTART_CHECK_MS	5000	/* for the binary on disk to answer */

static char	**restart_argv;
static char	  restart_exe[PATH_MAX];
static char	  restart_cwd[PATH_MAX];	/* the arguments' paths are from */

/*
 * Remember how this process was started: its arguments, and the path
 * of its binary now, before a new one may be put in its place.
 */
void
restart_init(char **argv)
{
	ssize_t	 n;

	restart_argv = argv;
	if (getcwd(restart_cwd, sizeof(restart_cwd)) == NULL)
		restart_cwd[0] = '\0';
	n = readlink("/proc/self/exe", restart_exe, sizeof(restart_exe) - 1);
	if (n <= 0) {
		log_warn("restart: cannot read /proc/self/exe; restarts will "
		    "use %s", argv[0]);
		snprintf(restart_exe, sizeof(restart_exe), "%s", argv[0]);
		return;
	}
	restart_exe[n] = '\0';
}

/*
 * The state fd a restart handed over, taken out of the environment (no
 * child inherits it); -1 if this process was started afresh.
 */
int
restart_state_fd(void)
{
	const char	*v = getenv(RESTART_ENV);
	char		*end;
	long		 fd;

	if (v == NULL)
		return (-1);
	errno = 0;
	fd = strtol(v, &end, 10);
	unsetenv(RESTART_ENV);
	if (errno != 0 || *end != '\0' || fd < 3 || fd > INT_MAX)
		return (-1);
	return ((int)fd);
}

/*
 * --check-state FD: whether this binary takes the state over, read and
 * checked whole by the reader the take-over uses (state_read), with the
 * fds it names; the exit status, and why not on standard error.
 */
int
restart_check(int fd)
{
	struct state	*st;
	char		 err[512];

	if ((st = state_read(fd, err, sizeof(err))) == NULL) {
		fprintf(stderr, "qmpmuxd: cannot take over: %s\n", err);
		return (1);
	}
	state_free(st);
	return (0);
}

/* Set or clear close-on-exec on fd. */
static void
restart_cloexec(int fd, int on)
{
	int	 flags;

	if ((flags = fcntl(fd, F_GETFD)) == -1)
		return;
	flags = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
	fcntl(fd, F_SETFD, flags);
}

/* qsort's order of fds. */
static int
restart_fd_cmp(const void *a, const void *b)
{
	int	 x = *(const int *)a, y = *(const int *)b;

	return (x < y ? -1 : x > y);
}

/*
 * Ask the binary on disk whether it takes over the state in fd, with
 * the fds it names (fds), as the new process would have them; -1 (err
 * says why) if it does not, cannot be run, or does not answer within
 * RESTART_CHECK_MS.  The loop waits meanwhile: a few milliseconds.
 */
static int
restart_ask(int fd, const struct state_fds *fds, char *err, size_t errlen)
{
	struct timespec	 ts = { 0, 1000000 };
	char		 arg[16], why[512], opt[] = "--check-state", **argv;
	pid_t		 pid;
	sigset_t	 none;
	int		 status, ms, p[2], *keep, from;
	size_t		 n, i, nkeep;
	ssize_t		 got;

	/* the fds the check keeps, the state's among them, in order */
	if ((keep = calloc(fds->n + 1, sizeof(*keep))) == NULL)
		fatal("%s", __func__);
	memcpy(keep, fds->fd, fds->n * sizeof(*keep));
	keep[fds->n] = fd;
	nkeep = fds->n + 1;
	qsort(keep, nkeep, sizeof(*keep), restart_fd_cmp);

	snprintf(arg, sizeof(arg), "%d", fd);
	/* the same arguments: the configuration is checked too */
	for (n = 0; restart_argv[n] != NULL; n++)
		;
	if ((argv = calloc(n + 3, sizeof(*argv))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < n; i++)
		argv[i] = restart_argv[i];
	argv[n] = opt;
	argv[n + 1] = arg;
	if (pipe2(p, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		free(argv);
		free(keep);
		return (-1);
	}
	switch ((pid = fork())) {
	case -1:
		snprintf(err, errlen, "fork: %s", strerror(errno));
		free(argv);
		free(keep);
		close(p[0]);
		close(p[1]);
		return (-1);
	case 0:
		/*
		 * Its complaint, for ours; nothing else of ours but the
		 * state and its fds, which it checks as the new process
		 * takes them over: open, of their kind.
		 */
		if (dup2(p[1], STDERR_FILENO) == -1)
			_exit(127);
		for (from = 3, i = 0; i < nkeep; i++) {
			if (keep[i] < from)
				continue;
			if (keep[i] > from)
				close_range((unsigned int)from,
				    (unsigned int)keep[i] - 1, 0);
			restart_cloexec(keep[i], 0);
			from = keep[i] + 1;
		}
		close_range((unsigned int)from, ~0U, 0);
		/* qmpmuxd holds its signals (signalfd); the check does not */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(restart_exe, argv);
		_exit(127);
	}
	free(argv);
	free(keep);
	close(p[1]);
	for (ms = 0; ms < RESTART_CHECK_MS; ms++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		nanosleep(&ts, NULL);
	}
	if (ms == RESTART_CHECK_MS) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		close(p[0]);
		snprintf(err, errlen, "%s --check-state did not answer within "
		    "%ds", restart_exe, RESTART_CHECK_MS / 1000);
		return (-1);
	}
	/* it has exited: what it wrote is all there, and short */
	got = read(p[0], why, sizeof(why) - 1);
	close(p[0]);
	why[got > 0 ? got : 0] = '\0';
	why[strcspn(why, "\n")] = '\0';
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return (0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		snprintf(err, errlen, "%s cannot be run", restart_exe);
	else
		snprintf(err, errlen, "%s cannot take over (state version %d): "
		    "%s", restart_exe, STATE_VERSION, why[0] != '\0' ? why :
		    "it said nothing");
	return (-1);
}

/*
 * Every fd of the process closes at the exec but the state's: a socket
 * this process was letting go of (a closing client) must not live on,
 * unseen, in the next.
 */
static void
restart_close_on_exec_all(void)
{
	DIR		*d;
	struct dirent	*de;
	int		 fd;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		fd = atoi(de->d_name);
		if (fd > 2 && fd != dirfd(d))
			restart_cloexec(fd, 1);
	}
	closedir(d);
}

/*
 * Restart: save the state, have the binary on disk confirm it reads
 * it, and execute it with every socket.  Returns only if it did not
 * happen: -1, err says why, and this process goes on as it was.  by
 * and id are the control client that asked and its command's id, for
 * the new process to answer (by 0: a signal).
 */
int
restart(struct server *s, struct control *ctl, int by, const char *id,
    size_t idlen, char *err, size_t errlen)
{
	struct state_fds	 fds;
	char			 num[16], cwd[PATH_MAX];
	size_t			 i;
	int			 sfd, saved;

	memset(&fds, 0, sizeof(fds));
	/* a program of the library's other than qmpmuxd (a fuzz target) */
	if (restart_argv == NULL) {
		snprintf(err, errlen, "this process cannot restart");
		sfd = -1;
		goto fail;
	}
	if ((sfd = state_save(s, ctl, by, id, idlen, &fds, err, errlen)) ==
	    -1)
		goto fail;
	if (restart_ask(sfd, &fds, err, errlen) == -1)
		goto fail;
	log_info("restarting: %s, %zu sockets handed over", restart_exe,
	    fds.n);

	/* the signals are held already (qmpmuxd reads them by signalfd) */
	restart_close_on_exec_all();
	for (i = 0; i < fds.n; i++)
		restart_cloexec(fds.fd[i], 0);
	restart_cloexec(sfd, 0);
	snprintf(num, sizeof(num), "%d", sfd);
	/* daemon() went to /: relative paths of the arguments are from here */
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		snprintf(cwd, sizeof(cwd), "/");
	if (restart_cwd[0] != '\0' && chdir(restart_cwd) == -1)
		log_warn("restart: cannot go back to %s", restart_cwd);
	if (setenv(RESTART_ENV, num, 1) == 0)
		execv(restart_exe, restart_argv);
	saved = errno;
	unsetenv(RESTART_ENV);
	if (chdir(cwd) == -1)
		log_warn("restart: cannot go back to %s", cwd);
	for (i = 0; i < fds.n; i++)
		restart_cloexec(fds.fd[i], 1);
	snprintf(err, errlen, "exec %s: %s", restart_exe, strerror(saved));

fail:
	if (sfd != -1)
		close(sfd);
	free(fds.fd);
	log_warnx("restart failed, going on as before: %s", err);
	return (-1);
}
