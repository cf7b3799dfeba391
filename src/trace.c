/*
 * The live trace: every QMP message of a VM, as it crosses qmpmuxd, is
 * given as a QMPMUX_TRACE event to each control connection that traces
 * the VM.  The four places a message crosses (read from a client, sent
 * to QEMU, read from QEMU, written to a client) call trace_message,
 * which costs a list check when nobody traces the VM: nothing is
 * formatted then.
 *
 * A trace reader is bounded like any slow client: a subscription writes
 * into its connection's output only while that output holds less than
 * its bound; past it messages are skipped and counted, and the count
 * goes out (QMPMUX_TRACE_SKIPPED) before the next message once the
 * output is down to half the bound.  A reader that does not read can
 * neither slow the VM nor grow qmpmuxd's memory past the bound and one
 * message.
 */
#include "config.h"

#include <sys/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "qmpmux.h"

/*
 * One subscription: a control connection tracing one VM.  It is on the
 * VM's list and on its owner's, and freed from both at once.  skipped
 * counts the messages not written since the last that was.
 */
struct trace {
	struct vm		*vm;
	struct trace_list	*owner;
	struct evbuffer		*out;		/* the owner's output */
	size_t			 bound;
	uint64_t		 skipped;
	void			(*kick)(void *);
	void			*arg;
	TAILQ_ENTRY(trace)	 vm_entry;
	TAILQ_ENTRY(trace)	 owner_entry;
};

static const char *trace_dir_names[] = {
	[TRACE_CLIENT_IN] = "client-in",
	[TRACE_QEMU_OUT] = "qemu-out",
	[TRACE_QEMU_IN] = "qemu-in",
	[TRACE_CLIENT_OUT] = "client-out",
};

/*
 * Start tracing vm into out (a control connection's output), on the
 * owner's list; kick(arg) is called when something was queued.  A VM
 * the owner already traces is not traced twice: the one is returned.
 */
struct trace *
trace_new(struct vm *vm, struct trace_list *owner, struct evbuffer *out,
    size_t bound, void (*kick)(void *), void *arg)
{
	struct trace	*t;

	TAILQ_FOREACH(t, owner, owner_entry) {
		if (t->vm == vm)
			return (t);
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		fatal("%s", __func__);
	t->vm = vm;
	t->owner = owner;
	t->out = out;
	t->bound = bound;
	t->kick = kick;
	t->arg = arg;
	TAILQ_INSERT_TAIL(&vm->traces, t, vm_entry);
	TAILQ_INSERT_TAIL(owner, t, owner_entry);
	return (t);
}

/* End a subscription, off both its lists; NULL is allowed. */
void
trace_free(struct trace *t)
{
	if (t == NULL)
		return;
	TAILQ_REMOVE(&t->vm->traces, t, vm_entry);
	TAILQ_REMOVE(t->owner, t, owner_entry);
	free(t);
}

/* The owner goes: end every subscription it holds. */
void
trace_free_all(struct trace_list *owner)
{
	struct trace	*t;

	while ((t = TAILQ_FIRST(owner)) != NULL)
		trace_free(t);
}

/*
 * Append bytes as a JSON string: '"' and '\' escaped, and each byte
 * outside printable ASCII as \u00XX, so that any bytes make valid JSON.
 */
static void
trace_json_bytes(struct evbuffer *b, const char *buf, size_t len)
{
	const unsigned char	*p = (const unsigned char *)buf;
	size_t			 i, start = 0;

	evbuffer_add(b, "\"", 1);
	for (i = 0; i < len; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
			continue;
		evbuffer_add(b, buf + start, i - start);
		if (p[i] == '"' || p[i] == '\\')
			evbuffer_add_printf(b, "\\%c", p[i]);
		else
			evbuffer_add_printf(b, "\\u%04x", p[i]);
		start = i + 1;
	}
	evbuffer_add(b, buf + start, len - start);
	evbuffer_add(b, "\"", 1);
}

/*
 * Whether bytes are one JSON value as RFC 8259 has it, in UTF-8 as a
 * strict reader takes it.  yajl lets through what QEMU also takes and a
 * strict reader refuses (C0 80, QEMU's NUL, and other overlong forms):
 * those bytes go as a string of bytes instead.
 */
static int
trace_is_json(const char *buf, size_t len)
{
	const unsigned char	*p = (const unsigned char *)buf;
	yajl_handle		 h;
	size_t			 i, used;
	int			 ok;

	for (i = 0; i < len; i += used) {
		used = 1;
		if (p[i] >= 0x80 &&
		    utf8_codepoint(p + i, len - i, &used) < 0x80)
			return (0);
	}

	if ((h = yajl_alloc(NULL, NULL, NULL)) == NULL)
		fatalx("%s: yajl_alloc failed", __func__);
	ok = yajl_parse(h, (const unsigned char *)buf, len) == yajl_status_ok &&
	    yajl_complete_parse(h) == yajl_status_ok;
	yajl_free(h);
	return (ok);
}

/*
 * The start of an event of qmpmuxd's, in QEMU's shape and order (the
 * time first), up to its data's first member.
 */
static void
trace_event_open(struct evbuffer *b, const char *name, const char *vm)
{
	struct timeval	 tv;

	gettimeofday(&tv, NULL);
	evbuffer_add_printf(b, "{\"timestamp\": {\"seconds\": %lld, "
	    "\"microseconds\": %ld}, \"event\": \"%s\", \"data\": "
	    "{\"vm\": ", (long long)tv.tv_sec, (long)tv.tv_usec, name);
	trace_json_bytes(b, vm, strlen(vm));
}

/* The end of an event: its data closed, and the line. */
static void
trace_event_close(struct evbuffer *b)
{
	evbuffer_add(b, "}}\r\n", 4);
}

/* Write the count of skipped messages, if any, and start counting again. */
static void
trace_flush_skipped(struct trace *t)
{
	if (t->skipped == 0)
		return;
	trace_event_open(t->out, "QMPMUX_TRACE_SKIPPED", t->vm->name);
	evbuffer_add_printf(t->out, ", \"count\": %llu",
	    (unsigned long long)t->skipped);
	trace_event_close(t->out);
	t->skipped = 0;
}

/*
 * One message of vm crossing qmpmuxd in direction dir, of client c
 * (NULL: none): a QMPMUX_TRACE event to each subscription with room
 * for it.  The message is embedded as it is when it is JSON; else as
 * a JSON string of its bytes, with "raw": true.  A NULL buf is input
 * the framer refused, described by err.
 */
void
trace_message(struct vm *vm, enum trace_dir dir, const struct client *c,
    const char *buf, size_t len, const char *err)
{
	struct evbuffer	*ev;
	struct trace	*t;
	const char	*p;
	size_t		 n, have, limit;

	if (TAILQ_EMPTY(&vm->traces))
		return;
	/* the line's end is not the message's */
	while (buf != NULL && len > 0 && (buf[len - 1] == '\r' ||
	    buf[len - 1] == '\n' || buf[len - 1] == ' ' ||
	    buf[len - 1] == '\t'))
		len--;
	if ((ev = evbuffer_new()) == NULL)
		fatalx("%s: out of memory", __func__);
	trace_event_open(ev, "QMPMUX_TRACE", vm->name);
	evbuffer_add_printf(ev, ", \"direction\": \"%s\", \"client\": ",
	    trace_dir_names[dir]);
	if (c != NULL)
		evbuffer_add_printf(ev, "%d", c->id);
	else
		evbuffer_add(ev, "null", 4);
	evbuffer_add_printf(ev, ", \"message\": ");
	if (buf == NULL) {
		evbuffer_add(ev, "null, \"error\": ", 15);
		trace_json_bytes(ev, err, strlen(err));
	} else if (trace_is_json(buf, len))
		evbuffer_add(ev, buf, len);
	else {
		trace_json_bytes(ev, buf, len);
		evbuffer_add_printf(ev, ", \"raw\": true");
	}
	trace_event_close(ev);

	n = evbuffer_get_length(ev);
	if ((p = (const char *)evbuffer_pullup(ev, -1)) == NULL)
		fatalx("%s: out of memory", __func__);
	TAILQ_FOREACH(t, &vm->traces, vm_entry) {
		/* once behind, it writes again when half its bound is free */
		have = evbuffer_get_length(t->out);
		limit = t->skipped > 0 ? t->bound / 2 : t->bound;
		if (have > 0 && have + n > limit) {
			t->skipped++;
			continue;
		}
		trace_flush_skipped(t);
		evbuffer_add(t->out, p, n);
		t->kick(t->arg);
	}
	evbuffer_free(ev);
}

/*
 * The VM goes: each subscription gets what it skipped and then
 * QMPMUX_TRACE_END, whatever its bound, and ends.
 */
void
trace_vm_gone(struct vm *vm)
{
	struct trace	*t;

	while ((t = TAILQ_FIRST(&vm->traces)) != NULL) {
		trace_flush_skipped(t);
		trace_event_open(t->out, "QMPMUX_TRACE_END", vm->name);
		trace_event_close(t->out);
		t->kick(t->arg);
		trace_free(t);
	}
}

/* The names of the VMs an owner traces, for a restart to trace again. */
void
trace_save(struct trace_list *list, struct yajl_gen_t *g)
{
	struct trace	*t;

	json_array_open(g);
	TAILQ_FOREACH(t, list, owner_entry)
		json_cstr(g, t->vm->name);
	json_array_close(g);
}
