/*
 * fakestore: a service manager's file descriptor store and restart on
 * failure, for the end-to-end test under the real libvirtd, where no
 * systemd runs.  It starts COMMAND with NOTIFY_SOCKET set to its own
 * notify socket, keeps what COMMAND stores there (tests/store.c), and
 * when COMMAND dies of a signal other than the SIGTERM it forwarded, or
 * exits with a status other than 0, starts it again at once with the
 * stored fds (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID), as systemd does
 * with Restart=on-failure.  COMMAND's pid is written to PIDFILE each
 * time.  SIGTERM and SIGINT go to COMMAND; fakestore exits with it.
 *
 * usage: fakestore NOTIFY_SOCKET PIDFILE -- COMMAND [ARG ...]
 */
#include "config.h"

#include <sys/signalfd.h>
#include <sys/wait.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

static struct store	 st;

/* Start the command, with the store's fds if recover; its pid. */
static pid_t
fakestore_spawn(const char *const *argv, const char *pidfile, int recover,
    const sigset_t *mask)
{
	char	 tmp[4096];
	FILE	*f;
	pid_t	 pid;

	store_take(&st);
	if ((pid = fork()) == -1) {
		perror("fakestore: fork");
		exit(1);
	}
	if (pid == 0) {
		sigprocmask(SIG_UNBLOCK, mask, NULL);
		store_exec(&st, argv, recover);
	}
	snprintf(tmp, sizeof(tmp), "%s.new", pidfile);
	if ((f = fopen(tmp, "w")) == NULL || fprintf(f, "%ld\n",
	    (long)pid) < 0 || fclose(f) != 0 || rename(tmp, pidfile) == -1) {
		perror("fakestore: pidfile");
		exit(1);
	}
	fprintf(stderr, "fakestore: started %s, pid %ld%s\n", argv[0],
	    (long)pid, recover ? ", with the fds of the store" : "");
	return (pid);
}

int
main(int argc, char *argv[])
{
	struct signalfd_siginfo	 si;
	struct pollfd		 pfd[2];
	sigset_t		 mask;
	const char		*pidfile;
	const char *const	*cmd;
	pid_t			 pid;
	int			 sfd, status, stopping = 0;

	if (argc < 5 || strcmp(argv[3], "--") != 0) {
		fprintf(stderr, "usage: fakestore NOTIFY_SOCKET PIDFILE -- "
		    "COMMAND [ARG ...]\n");
		return (2);
	}
	pidfile = argv[2];
	cmd = (const char *const *)(argv + 4);
	if (store_open(&st, argv[1]) == -1) {
		perror("fakestore: notify socket");
		return (1);
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1 ||
	    (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) == -1) {
		perror("fakestore: signalfd");
		return (1);
	}
	pid = fakestore_spawn(cmd, pidfile, 0, &mask);
	pfd[0].fd = st.sock;
	pfd[0].events = POLLIN;
	pfd[1].fd = sfd;
	pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			perror("fakestore: poll");
			return (1);
		}
		if (pfd[0].revents & POLLIN)
			store_take(&st);
		if (!(pfd[1].revents & POLLIN) ||
		    read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			stopping = 1;
			kill(pid, SIGTERM);
			continue;
		}
		if (waitpid(pid, &status, WNOHANG) != pid)
			continue;
		/* what it stored before it went is in the store */
		store_take(&st);
		if (stopping || (WIFEXITED(status) &&
		    WEXITSTATUS(status) == 0)) {
			store_close(&st);
			return (WIFEXITED(status) ? WEXITSTATUS(status) : 1);
		}
		fprintf(stderr, "fakestore: pid %ld %s %d; %zu fds in the "
		    "store\n", (long)pid, WIFSIGNALED(status) ? "died of signal"
		    : "exited with", WIFSIGNALED(status) ? WTERMSIG(status) :
		    WEXITSTATUS(status), st.n);
		pid = fakestore_spawn(cmd, pidfile, 1, &mask);
	}
}
