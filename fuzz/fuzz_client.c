/*
 * A client's bytes through the whole proxy: the input is what one
 * client sends to a listener of a real qmpmuxd in this process (greeted,
 * then commands with ids of every JSON type, qmp_capabilities,
 * exec-oob, garbage), after which it ends its input.  QEMU is fake: it
 * answers every command it is sent with {"return": {"n": K}} and the id
 * it was given, K counting the commands.
 *
 * Beyond not crashing, it checks what the proxy promises a client:
 * - every command that reaches QEMU is, byte for byte, a message the
 *   client sent, with only its id's value replaced by qmpmuxd's
 *   "EPOCH.SEQ.CLIENT.HEX" (or that id put first when it had none),
 *   HEX being the client's id, as QEMU writes it, in hex ("-" for none, "~" when
 *   too long to carry), each sent once;
 * - the reply to it gives back the client's own id as QEMU writes it
 *   back (qmp_msg_id_text), or no id when the client sent none; any
 *   other reply with an id carries an id the client sent, so written;
 * - each message and each parse error gets exactly one reply, before
 *   the proxy closes the connection at the end of input;
 * - once the client is gone the VM holds no client and no command: a
 *   refused or finished input leaves nothing behind (the leak checker
 *   runs per input too).
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

#define FZ_MAX_MESSAGE	2048

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/*
 * A message the client sent, as the framer reads it.  Two messages that
 * differ only in their ids look the same to QEMU: forwarded marks one
 * of those as sent, and the reply decides which it was by its id, each
 * message answered once (answered).
 */
struct fz_sent {
	char		*buf;
	size_t		 len;
	struct qmp_span	 id;
	int		 forwarded;
	int		 answered;
};

/* A command as QEMU got it: its bytes, and its id's place in them. */
struct fz_wire {
	char		*buf;
	size_t		 len;
	struct qmp_span	 id;
};

static struct fz_peer	*fz_qemu;
static struct qmp_reader *fz_qemu_reader;
static int		 fz_qemu_ready;
static struct vm	*fz_vm;
static char		*fz_client_path;

/* Per input. */
static struct fz_sent	*fz_sent;
static size_t		 fz_nsent;
static struct fz_wire	*fz_wires;	/* by K */
static size_t		 fz_nk;
static int		*fz_answered;	/* per K: replies given */

/* Whether wire is m as the proxy sends it to QEMU, with id value idv. */
static int
fz_is_wire(const struct fz_sent *m, const char *wire, size_t wlen,
    const char *idv, size_t idvlen)
{
	struct evbuffer	*b;
	int		 eq;

	if ((b = evbuffer_new()) == NULL)
		abort();
	if (m->id.len > 0) {
		evbuffer_add(b, m->buf, m->id.off);
		evbuffer_add(b, idv, idvlen);
		evbuffer_add(b, m->buf + m->id.off + m->id.len,
		    m->len - m->id.off - m->id.len);
	} else {
		evbuffer_add_printf(b, "{\"id\": %.*s, ", (int)idvlen, idv);
		evbuffer_add(b, m->buf + 1, m->len - 1);
	}
	eq = evbuffer_get_length(b) == wlen &&
	    memcmp(evbuffer_pullup(b, -1), wire, wlen) == 0;
	evbuffer_free(b);
	return (eq);
}

/*
 * Whether v (len bytes, a JSON string) is an upstream id of qmpmuxd's:
 * "EPOCH.SEQ.CLIENT.HEX", 8 hex digits, two numbers, and hex in pairs
 * or "-" or "~".
 */
static int
fz_is_upstream_id(const char *v, size_t len)
{
	size_t	 i = 1, n;
	int	 part;

	if (len < 2 || v[0] != '"' || v[len - 1] != '"')
		return (0);
	if (strspn(v + i, "0123456789abcdef") != 8 || v[i + 8] != '.')
		return (0);
	i += 9;
	for (part = 0; part < 2; part++) {
		if ((n = strspn(v + i, "0123456789")) == 0 || v[i + n] != '.')
			return (0);
		i += n + 1;
	}
	if (len - 1 - i == 1 && (v[i] == '-' || v[i] == '~'))
		return (1);
	n = strspn(v + i, "0123456789abcdef");
	return (n == len - 1 - i && n > 0 && n % 2 == 0);
}

/* A command reached the fake QEMU: find whose it is, and answer it. */
static void
fz_qemu_command(struct qmp_msg *msg)
{
	struct qmp_span	 id = qmp_msg_id(msg);
	const char	*idv = msg->buf + id.off;
	size_t		 i, k;

	if (!fz_qemu_ready) {
		/* the monitor's own handshake */
		if (strcmp(msg->name, "qmp_capabilities") != 0)
			fz_fail("handshake", msg->buf, msg->len);
		fz_qemu_ready = 1;
		evbuffer_add_printf(fz_qemu->out, "{\"return\": {}}\r\n");
		return;
	}
	if (id.len == 0 || !fz_is_upstream_id(idv, id.len))
		fz_fail("sent to QEMU without an id of qmpmuxd's", msg->buf,
		    msg->len);
	for (i = 0; i < fz_nsent; i++) {
		if (!fz_sent[i].forwarded &&
		    fz_is_wire(&fz_sent[i], msg->buf, msg->len, idv, id.len))
			break;
	}
	if (i == fz_nsent)
		fz_fail("sent to QEMU, and not what the client sent", msg->buf,
		    msg->len);
	k = fz_nk++;
	fz_wires = realloc(fz_wires, fz_nk * sizeof(*fz_wires));
	fz_answered = realloc(fz_answered, fz_nk * sizeof(*fz_answered));
	if (fz_wires == NULL || fz_answered == NULL)
		abort();
	fz_wires[k].len = msg->len;
	fz_wires[k].id = id;
	fz_wires[k].buf = qmp_msg_steal(msg);
	fz_answered[k] = 0;
	fz_sent[i].forwarded = 1;
	evbuffer_add_printf(fz_qemu->out, "{\"return\": {\"n\": %zu}, "
	    "\"id\": %.*s}\r\n", k, (int)id.len, idv);
}

/* One message qmpmuxd sent the fake QEMU: a command, answered. */
static void
fz_qemu_take(struct qmp_msg *msg, void *arg)
{
	if (msg->kind != QMP_KIND_COMMAND)
		fz_fail("qmpmuxd sent QEMU a non-command", msg->buf,
		    msg->len);
	fz_qemu_command(msg);
}

/* The fake QEMU: read what came, answer it. */
static void
fz_qemu_serve(void)
{
	fz_peer_io(fz_qemu);
	if (fz_qemu->eof) {
		fprintf(stdout, "fuzz_client: qmpmuxd hung up on QEMU\n");
		abort();
	}
	fz_take(fz_qemu_reader, fz_qemu->in, "qmpmuxd, to QEMU,",
	    fz_qemu_take, NULL);
	fz_peer_io(fz_qemu);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char	*conf;
	int	 i;

	fz_init("client");
	fz_client_path = fz_path("client.sock");
	/*
	 * The fake QEMU answers each command with a number of its own, so
	 * that each reply is known to be given once: no reply of it stays
	 * the same for its life, as the introspection cache takes QEMU's
	 * query-version and the like to, so the cache is off.
	 */
	if (asprintf(&conf, "[global]\ncontrol = none\n"
	    "max_client_message = %d\n"
	    "[vm fz]\nupstream = listen:%s/qemu.sock\n"
	    "introspection_cache = 0\n"
	    "[listener fz %s]\n", FZ_MAX_MESSAGE, fz_dir,
	    fz_client_path) == -1)
		abort();
	fz_start(conf);
	free(conf);
	if ((fz_vm = host_find(fz_server, "fz")) == NULL)
		abort();
	/* QEMU reads strictly, as it reads commands */
	fz_qemu_reader = qmp_reader_new(QMP_SIZE_MAX, QMP_DEPTH_MAX,
	    QMP_READ_STRICT);
	fz_qemu = fz_connect(fz_vm->conf.upstream);
	evbuffer_add(fz_qemu->out, FZ_GREETING, strlen(FZ_GREETING));
	for (i = 0; !monitor_ready(fz_vm->mon); i++) {
		if (i == FZ_TURNS)
			fatalx("the fake QEMU's handshake did not end");
		fz_turn();
		fz_qemu_serve();
	}
	return (0);
}

/*
 * What the client sent, as s keeps it: its bytes with the id written as
 * QEMU writes it back, which is the id every reply must carry.
 */
static void
fz_canonical(struct fz_sent *s, const struct qmp_msg *msg)
{
	struct qmp_span	 id = qmp_msg_id(msg);
	const char	*text;
	size_t		 tlen;

	if ((text = qmp_msg_id_text(msg, &tlen)) == NULL)
		tlen = 0;
	s->len = msg->len - id.len + tlen;
	if ((s->buf = malloc(s->len + 1)) == NULL)
		abort();
	memcpy(s->buf, msg->buf, id.off);
	if (tlen > 0)
		memcpy(s->buf + id.off, text, tlen);
	memcpy(s->buf + id.off + tlen, msg->buf + id.off + id.len,
	    msg->len - id.off - id.len);
	s->buf[s->len] = '\0';
	s->id.off = id.off;
	s->id.len = tlen;
}

/* Read the client's input as the proxy's reader of it does. */
static size_t
fz_frame(const uint8_t *data, size_t size, int *closed)
{
	struct qmp_reader	*r;
	struct evbuffer		*in;
	struct qmp_msg		 msg;
	enum qmp_status		 st;
	size_t			 replies = 0;

	r = qmp_reader_new(fz_vm->conf.max_client_message,
	    fz_vm->conf.max_json_depth, QMP_READ_STRICT);
	if (r == NULL || (in = evbuffer_new()) == NULL)
		abort();
	evbuffer_add(in, data, size);
	*closed = 0;
	while ((st = qmp_reader_next(r, in, &msg)) != QMP_NEED_MORE) {
		replies++;
		if (st == QMP_ERR_SIZE) {
			*closed = 1;
			break;
		}
		if (st != QMP_MESSAGE)
			continue;
		fz_sent = realloc(fz_sent, (fz_nsent + 1) * sizeof(*fz_sent));
		if (fz_sent == NULL)
			abort();
		fz_canonical(&fz_sent[fz_nsent], &msg);
		fz_sent[fz_nsent].forwarded = 0;
		fz_sent[fz_nsent++].answered = 0;
		qmp_msg_clear(&msg);
	}
	evbuffer_free(in);
	qmp_reader_free(r);
	return (replies);
}

/*
 * QEMU's reply to command K reached the client with id idv (idlen 0:
 * none): the command with that id put back in place of the proxy's
 * must be one the client sent, not yet answered.
 */
static void
fz_restored(size_t k, const char *idv, size_t idlen,
    const struct qmp_msg *reply)
{
	const struct fz_wire	*w = &fz_wires[k];
	struct evbuffer		*b;
	const char		*m;
	char			 pre[64];
	size_t			 len, i, plen;

	if ((b = evbuffer_new()) == NULL)
		abort();
	if (idlen > 0) {
		evbuffer_add(b, w->buf, w->id.off);
		evbuffer_add(b, idv, idlen);
		evbuffer_add(b, w->buf + w->id.off + w->id.len,
		    w->len - w->id.off - w->id.len);
	} else {
		/* the proxy put its id first: the client sent none */
		plen = (size_t)snprintf(pre, sizeof(pre), "{\"id\": %.*s, ",
		    (int)w->id.len, w->buf + w->id.off);
		if (w->len < plen || memcmp(w->buf, pre, plen) != 0)
			fz_fail("the client's id was dropped", reply->buf,
			    reply->len);
		evbuffer_add(b, "{", 1);
		evbuffer_add(b, w->buf + plen, w->len - plen);
	}
	len = evbuffer_get_length(b);
	m = (const char *)evbuffer_pullup(b, -1);
	for (i = 0; i < fz_nsent; i++) {
		if (!fz_sent[i].answered && fz_sent[i].len == len &&
		    memcmp(fz_sent[i].buf, m, len) == 0)
			break;
	}
	if (i == fz_nsent) {
		fprintf(stdout, "fuzz_client: sent to QEMU %.*s\n",
		    (int)w->len, w->buf);
		fz_fail("reply's id is not the client's", reply->buf,
		    reply->len);
	}
	fz_sent[i].answered = 1;
	evbuffer_free(b);
}

/* One message to the client: the greeting, then replies. */
static void
fz_client_message(struct qmp_msg *msg, size_t nth)
{
	const struct qmp_member	*m;
	struct qmp_span		 id = qmp_msg_id(msg);
	const struct fz_sent	*s;
	unsigned long		 k;
	int			 i, ret = -1;
	size_t			 j;

	if (nth == 0) {
		if (msg->kind != QMP_KIND_GREETING)
			fz_fail("not greeted", msg->buf, msg->len);
		return;
	}
	if (msg->kind != QMP_KIND_RETURN && msg->kind != QMP_KIND_ERROR)
		fz_fail("not a reply", msg->buf, msg->len);
	for (i = 0; i < msg->nmembers; i++) {
		if (msg->members[i].key == QMP_KEY_RETURN)
			ret = i;
	}
	if (ret != -1) {
		m = &msg->members[ret];
		if (sscanf(msg->buf + m->val_off, "{\"n\": %lu}", &k) == 1) {
			/* QEMU's reply: the client's own id, as QEMU writes it */
			if (k >= fz_nk)
				fz_fail("a reply QEMU never sent", msg->buf,
				    msg->len);
			fz_answered[k]++;
			fz_restored(k, msg->buf + id.off, id.len, msg);
			return;
		}
	}
	if (id.len == 0)
		return;
	/* the proxy's own reply: an id the client sent */
	for (j = 0; j < fz_nsent; j++) {
		s = &fz_sent[j];
		if (s->id.len == id.len && memcmp(s->buf + s->id.off,
		    msg->buf + id.off, id.len) == 0)
			return;
	}
	fz_fail("reply with an id the client never sent", msg->buf,
	    msg->len);
}

/* fz_drive's each: the next message the client was sent. */
static void
fz_client_each(struct qmp_msg *msg, void *arg)
{
	size_t	*got = arg;

	fz_client_message(msg, (*got)++);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t			 expect, got = 0, k, i;
	int			 turns, closed;

	fz_nsent = fz_nk = 0;
	expect = fz_frame(data, size, &closed);
	fz_drive(fz_client_path, data, size, fz_qemu_serve, fz_client_each,
	    &got);
	if (!closed) {
		/* every message answered once, QEMU's replies each once */
		if (got != expect + 1) {
			fprintf(stdout, "fuzz_client: %zu replies for %zu "
			    "messages and errors\n", got - 1, expect);
			abort();
		}
		for (k = 0; k < fz_nk; k++) {
			if (fz_answered[k] != 1)
				fz_fail("a reply from QEMU not given once",
				    fz_wires[k].buf, fz_wires[k].len);
		}
	}

	/* the client gone, the VM holds nothing of it */
	for (turns = 0; !TAILQ_EMPTY(&fz_vm->clients) ||
	    !TAILQ_EMPTY(&fz_vm->queue) || !TAILQ_EMPTY(&fz_vm->inflight);
	    turns++) {
		if (turns == FZ_TURNS)
			fz_fail("the VM kept the client or its commands", "",
			    0);
		fz_turn();
		fz_qemu_serve();
	}
	for (i = 0; i < fz_nsent; i++)
		free(fz_sent[i].buf);
	for (k = 0; k < fz_nk; k++)
		free(fz_wires[k].buf);
	return (0);
}
