/*
 * A client's end of a QMP monitor, for the programs that talk to the
 * control socket (qmpmuxctl, qmpmux-qemu): whole messages read with
 * the proxy's own framer, and whole messages sent, an fd riding on
 * the first byte when there is one.  Each waits in poll within the
 * caller's bound; the callers are not event loops.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "qmpmux.h"

/* Milliseconds of CLOCK_MONOTONIC. */
static long long
qc_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/*
 * Wait for events on the connection until end (ms; -1: no bound).
 * 0 when they came; QC_TIMEOUT when the time ran out; QC_SIGNAL when
 * mask is given and a signal came; -1 with err when poll failed.
 */
static int
qc_wait(struct qc *c, short events, long long end, const sigset_t *mask,
    char *err, size_t errlen)
{
	struct pollfd	 pfd;
	struct timespec	 ts;
	long long	 left;
	int		 n;

	for (;;) {
		left = end == -1 ? -1 : end - qc_now();
		if (end != -1 && left <= 0)
			return (QC_TIMEOUT);
		pfd.fd = c->fd;
		pfd.events = events;
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (left % 1000) * 1000000;
		if ((n = ppoll(&pfd, 1, left == -1 ? NULL : &ts, mask)) > 0)
			return (0);
		if (n == -1 && errno == EINTR && mask != NULL)
			return (QC_SIGNAL);
		if (n == -1 && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			return (-1);
		}
	}
}

/*
 * Read and frame on fd: messages of at most max bytes, nested at most
 * depth deep.  -1 when out of memory.
 */
int
qc_init(struct qc *c, int fd, size_t max, unsigned int depth)
{
	c->fd = fd;
	c->in = evbuffer_new();
	c->reader = qmp_reader_new(max, depth, 0);
	return (c->in == NULL || c->reader == NULL ? -1 : 0);
}

/* Free what qc_init made; the fd is the caller's. */
void
qc_clear(struct qc *c)
{
	if (c->in != NULL)
		evbuffer_free(c->in);
	if (c->reader != NULL)
		qmp_reader_free(c->reader);
	c->in = NULL;
	c->reader = NULL;
}

/*
 * The next whole message, into msg (the caller clears it), waiting at
 * most timeout ms for it (-1: no bound) in ppoll under mask (NULL: the
 * mask as it is).  1 for a message; QC_EOF at the end of the stream;
 * QC_TIMEOUT and QC_SIGNAL as qc_wait; -1 with err for an error or
 * input that is no message.
 */
int
qc_next(struct qc *c, struct qmp_msg *msg, int timeout, const sigset_t *mask,
    char *err, size_t errlen)
{
	long long	 end = timeout == -1 ? -1 : qc_now() + timeout;
	int		 n;

	for (;;) {
		switch (qmp_reader_next(c->reader, c->in, msg)) {
		case QMP_MESSAGE:
			return (1);
		case QMP_NEED_MORE:
			break;
		default:
			snprintf(err, errlen, "an invalid message: %s",
			    qmp_reader_error(c->reader));
			return (-1);
		}
		if ((n = qc_wait(c, POLLIN, end, mask, err, errlen)) != 0)
			return (n);
		if ((n = evbuffer_read(c->in, c->fd, 65536)) == 0)
			return (QC_EOF);
		if (n == -1 && errno != EINTR && errno != EAGAIN) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			return (-1);
		}
	}
}

/*
 * Send a whole message, with fd passed on its first byte unless it is
 * -1, waiting at most timeout ms (-1: no bound) while the socket is
 * full.  0 when sent; QC_TIMEOUT; -1 with err when it cannot be.
 */
int
qc_send(struct qc *c, const char *buf, size_t len, int fd, int timeout,
    char *err, size_t errlen)
{
	char		 cbuf[CMSG_SPACE(sizeof(int))];
	long long	 end = timeout == -1 ? -1 : qc_now() + timeout;
	struct iovec	 iov;
	struct msghdr	 mh;
	struct cmsghdr	*cm;
	ssize_t		 n;

	while (len > 0) {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = (void *)(uintptr_t)buf;
		iov.iov_len = len;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		if (fd != -1) {
			memset(cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf;
			mh.msg_controllen = sizeof(cbuf);
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		}
		if ((n = sendmsg(c->fd, &mh, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				snprintf(err, errlen, "send: %s",
				    strerror(errno));
				return (-1);
			}
			if ((n = qc_wait(c, POLLOUT, end, NULL, err,
			    errlen)) != 0)
				return ((int)n);
			continue;
		}
		fd = -1;	/* it went with the first byte */
		buf += n;
		len -= (size_t)n;
	}
	return (0);
}
