/*
 * The control socket's requests (src/control.c): the input is what one
 * control client sends to the control socket of a real qmpmuxd in this
 * process, after which it ends its input.  Every command runs for real:
 * add-vm makes VMs (their sockets only in the target's directory, see
 * fuzzlib.h), trace subscribes, dump writes the dump file there.
 *
 * Beyond not crashing:
 * - each message and each parse error gets exactly one reply, in order,
 *   before the connection closes at the end of input;
 * - the reply to a message gives back its id as QEMU writes it, and a reply
 *   to a non-object or a parse error has none;
 * - once the client is gone and the VMs it added are removed, the
 *   server holds nothing more than before (the leak checker runs per
 *   input too).
 */
#include "config.h"

#include <sys/queue.h>
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "log.h"
#include "qmp.h"
#include "qmpmux.h"
#include "fuzzlib.h"


int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* A request as the control socket's reader takes it. */
struct fz_req {
	char		*buf;		/* NULL: a parse error */
	size_t		 len;
	char		*id;		/* as QEMU writes it; NULL: none */
	size_t		 idlen;
};

static struct control	*fz_control;
static char		*fz_control_path;
static struct fz_req	*fz_reqs;
static size_t		 fz_nreqs;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char	*conf;

	fz_init("control");
	fz_control_path = fz_path("control.sock");
	if (asprintf(&conf, "[global]\ncontrol = %s\n"
	    "dump_file = %s/dump.json\n", fz_control_path, fz_dir) == -1)
		abort();
	fz_start(conf);
	free(conf);
	if (server_control(fz_server, fz_control_path) == -1)
		abort();
	fz_control = fz_server->control;
	return (0);
}

/* Read the input as the control socket's reader does. */
static void
fz_frame(const uint8_t *data, size_t size)
{
	struct qmp_reader	*r;
	struct evbuffer		*in;
	struct qmp_msg		 msg;
	enum qmp_status		 st;
	struct fz_req		*q;
	const char		*idt;

	r = qmp_reader_new(fz_server->lim.control_max_message, QMP_DEPTH_MAX,
	    QMP_READ_STRICT);
	if (r == NULL || (in = evbuffer_new()) == NULL)
		abort();
	evbuffer_add(in, data, size);
	fz_nreqs = 0;
	while ((st = qmp_reader_next(r, in, &msg)) != QMP_NEED_MORE) {
		fz_reqs = realloc(fz_reqs, (fz_nreqs + 1) * sizeof(*fz_reqs));
		if (fz_reqs == NULL)
			abort();
		q = &fz_reqs[fz_nreqs++];
		memset(q, 0, sizeof(*q));
		if (st == QMP_ERR_SIZE)
			break;
		if (st != QMP_MESSAGE)
			continue;
		if (msg.kind != QMP_KIND_NONOBJECT &&
		    (idt = qmp_msg_id_text(&msg, &q->idlen)) != NULL &&
		    (q->id = strndup(idt, q->idlen)) == NULL)
			abort();
		q->len = msg.len;
		q->buf = qmp_msg_steal(&msg);
	}
	evbuffer_free(in);
	qmp_reader_free(r);
}

/* The reply to request n. */
static void
fz_reply(struct qmp_msg *msg, size_t n)
{
	struct qmp_span	 id = qmp_msg_id(msg);
	struct fz_req	*q;

	if (msg->kind != QMP_KIND_RETURN && msg->kind != QMP_KIND_ERROR)
		fz_fail("not a reply", msg->buf, msg->len);
	if (n >= fz_nreqs)
		fz_fail("a reply to no request", msg->buf, msg->len);
	q = &fz_reqs[n];
	if (id.len != (q->id != NULL ? q->idlen : 0) || (id.len > 0 &&
	    memcmp(msg->buf + id.off, q->id, id.len) != 0)) {
		if (q->buf != NULL)
			fprintf(stdout, "fuzz_control: request %.*s\n",
			    (int)q->len, q->buf);
		fz_fail("the reply's id is not the request's", msg->buf,
		    msg->len);
	}
}

/* What the control socket has sent so far, for fz_control_each. */
struct fz_replies {
	size_t	 got;		/* replies */
	int	 greeted;
};

/* fz_drive's each: the greeting first, then replies; events pass. */
static void
fz_control_each(struct qmp_msg *msg, void *arg)
{
	struct fz_replies	*rp = arg;

	if (!rp->greeted) {
		if (msg->kind != QMP_KIND_GREETING)
			fz_fail("not greeted", msg->buf, msg->len);
		rp->greeted = 1;
	} else if (msg->kind != QMP_KIND_EVENT)
		fz_reply(msg, rp->got++);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_replies	 rp = { 0, 0 };
	struct vm		*vm;
	size_t			 i;
	int			 turns;

	fz_frame(data, size);
	fz_drive(fz_control_path, data, size, NULL, fz_control_each, &rp);
	if (rp.got != fz_nreqs) {
		fprintf(stdout, "fuzz_control: %zu replies to %zu requests\n",
		    rp.got, fz_nreqs);
		abort();
	}

	/* what the input added goes; then the server is as it was */
	while ((vm = TAILQ_FIRST(&fz_server->vms)) != NULL)
		host_remove(fz_server, vm, "qmpmux: fuzz input done");
	for (turns = 0; fz_server->nvms > 0; turns++) {
		if (turns == FZ_TURNS)
			fz_fail("a removed VM was never freed", "", 0);
		fz_turn();
	}
	for (i = 0; i < fz_nreqs; i++) {
		free(fz_reqs[i].buf);
		free(fz_reqs[i].id);
	}
	return (0);
}
