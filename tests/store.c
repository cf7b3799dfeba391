/*
 * A fake service manager's file descriptor store (store.h): a notify
 * socket that takes datagrams "FDSTORE=1\nFDNAME=NAME" with an fd in
 * SCM_RIGHTS and "FDSTOREREMOVE=1\nFDNAME=NAME", as systemd documents
 * them, and a child side that starts a service with the fds from 3 and
 * LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

static int	store_holds_file(const struct store *, int);

/* Bind the notify socket at path; -1 (errno) on failure. */
int
store_open(struct store *st, const char *path)
{
	struct sockaddr_un	 sun;
	int			 big = 8 << 20;

	memset(st, 0, sizeof(*st));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	strcpy(sun.sun_path, path);
	if ((st->path = strdup(path)) == NULL ||
	    (st->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) == -1)
		return (-1);
	/* as systemd's: a burst of a host's sockets is not to be lost */
	setsockopt(st->sock, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	unlink(path);
	return (bind(st->sock, (struct sockaddr *)&sun, sizeof(sun)));
}

void
store_close(struct store *st)
{
	size_t	 i;

	for (i = 0; i < st->n; i++) {
		close(st->fd[i]);
		free(st->name[i]);
	}
	st->n = 0;
	if (st->sock > 0)
		close(st->sock);
	if (st->path != NULL)
		unlink(st->path);
	free(st->path);
	st->path = NULL;
	st->sock = -1;
}

static void
store_remove(struct store *st, const char *name)
{
	size_t	 i = 0;

	while (i < st->n) {
		if (strcmp(st->name[i], name) != 0) {
			i++;
			continue;
		}
		close(st->fd[i]);
		free(st->name[i]);
		st->n--;
		st->name[i] = st->name[st->n];
		st->fd[i] = st->fd[st->n];
		st->ino[i] = st->ino[st->n];
		st->dev[i] = st->dev[st->n];
	}
}

/*
 * Take every datagram that has come, as the service manager would;
 * other messages (READY=1, STATUS=...) are read and let go.  -1 on a
 * read error other than none left.
 */
int
store_take(struct store *st)
{
	char		 buf[1024], *name;
	union {
		struct cmsghdr	 hdr;
		char		 buf[CMSG_SPACE(8 * sizeof(int))];
	}		 cmsg;
	struct iovec	 iov;
	struct msghdr	 mh;
	struct cmsghdr	*cm;
	ssize_t		 n;
	size_t		 i;
	struct stat	 sb;
	int		 fd;

	for (;;) {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = buf;
		iov.iov_len = sizeof(buf) - 1;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cmsg.buf;
		mh.msg_controllen = sizeof(cmsg.buf);
		if ((n = recvmsg(st->sock, &mh, MSG_CMSG_CLOEXEC)) == -1)
			return (errno == EAGAIN ? 0 : -1);
		buf[n] = '\0';
		fd = -1;
		for (cm = CMSG_FIRSTHDR(&mh); cm != NULL;
		    cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_type == SCM_RIGHTS)
				memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
		}
		if ((name = strstr(buf, "FDNAME=")) != NULL) {
			name += 7;
			name[strcspn(name, "\n")] = '\0';
		}
		if (strstr(buf, "FDSTOREREMOVE=1") != NULL && name != NULL) {
			store_remove(st, name);
			st->removes++;
		} else if (strstr(buf, "FDSTORE=1") != NULL && name != NULL &&
		    fd != -1) {
			if (st->n == STORE_MAX) {
				st->full = 1;
				close(fd);
				continue;
			}
			/*
			 * systemd keeps one copy of an open file: a second,
			 * whatever its name, is dropped ("Suppressing
			 * duplicate fd", service_add_fd_store).
			 */
			if (store_holds_file(st, fd)) {
				close(fd);
				continue;
			}
			for (i = 0; i < st->n; i++) {
				if (strcmp(st->name[i], name) == 0)
					st->dup = 1;
			}
			if ((st->name[st->n] = strdup(name)) == NULL ||
			    fstat(fd, &sb) == -1)
				abort();
			st->ino[st->n] = sb.st_ino;
			st->dev[st->n] = sb.st_dev;
			st->fd[st->n++] = fd;
			fd = -1;
		}
		if (fd != -1)
			close(fd);
	}
}

/*
 * Whether a and b are one open file, as systemd's same_fd() judges it:
 * by kcmp(KCMP_FILE), or where that is not allowed by the inode and
 * then the file status flags, which tell a pipe's two ends apart.
 */
static int
store_same_file(int a, int b)
{
	struct stat	 sa, sb;
	pid_t		 pid = getpid();
	long		 r;

	r = syscall(SYS_kcmp, pid, pid, KCMP_FILE, a, b);
	if (r >= 0)
		return (r == 0);
	if (fstat(a, &sa) == -1 || fstat(b, &sb) == -1 ||
	    sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino ||
	    S_ISCHR(sa.st_mode) || S_ISBLK(sa.st_mode))
		return (0);
	return (fcntl(a, F_GETFL) == fcntl(b, F_GETFL));
}

/*
 * Whether the store holds fd's open file already, under any name: only
 * an fd of the same inode can be (systemd asks each; with thousands of
 * fds a test's store would fall seconds behind).
 */
static int
store_holds_file(const struct store *st, int fd)
{
	struct stat	 sb;
	size_t		 i;

	if (fstat(fd, &sb) == -1)
		return (0);
	for (i = 0; i < st->n; i++) {
		if (st->ino[i] == sb.st_ino && st->dev[i] == sb.st_dev &&
		    store_same_file(st->fd[i], fd))
			return (1);
	}
	return (0);
}

/* How many fds the store holds whose names begin with prefix. */
size_t
store_count(const struct store *st, const char *prefix)
{
	size_t	 i, n = 0;

	for (i = 0; i < st->n; i++)
		n += strncmp(st->name[i], prefix, strlen(prefix)) == 0;
	return (n);
}

/*
 * In a child: start argv under the store, as systemd starts a service;
 * with recover, with the fds of the store from 3 and LISTEN_FDS,
 * LISTEN_FDNAMES and LISTEN_PID, as after a crash.
 */
void
store_exec(struct store *st, const char *const *argv, int recover)
{
	char	 num[32], *names, *p;
	size_t	 i, len = 1;

	setenv("NOTIFY_SOCKET", st->path, 1);
	if (recover) {
		for (i = 0; i < st->n; i++)
			len += strlen(st->name[i]) + 1;
		if ((names = calloc(1, len)) == NULL)
			_exit(127);
		for (p = names, i = 0; i < st->n; i++)
			p += sprintf(p, "%s%s", i > 0 ? ":" : "",
			    st->name[i]);
		/* out of the way first, then to 3, 4, ... in order */
		for (i = 0; i < st->n; i++)
			st->fd[i] = fcntl(st->fd[i], F_DUPFD, 3 + (int)st->n +
			    (int)i);
		for (i = 0; i < st->n; i++)
			dup2(st->fd[i], 3 + (int)i);
		snprintf(num, sizeof(num), "%zu", st->n);
		setenv("LISTEN_FDS", num, 1);
		setenv("LISTEN_FDNAMES", names, 1);
		snprintf(num, sizeof(num), "%ld", (long)getpid());
		setenv("LISTEN_PID", num, 1);
	}
	close_range(3 + (unsigned int)(recover ? st->n : 0), ~0U, 0);
	execv(argv[0], (char *const *)(uintptr_t)argv);
	_exit(127);
}
