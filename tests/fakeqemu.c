/*
 * fakeqemu: a scripted fake QEMU QMP monitor, for what a real QEMU cannot
 * do on demand (half-written messages, garbage, silence, floods).
 *
 * usage: fakeqemu SOCKET [options]
 *        fakeqemu --many N DIR [--silent-from K] [options]
 *
 * It listens on the unix socket SOCKET (a stale socket there is removed
 * first; the path appears only once it listens) and serves one client at
 * a time, as QEMU does: while a client is connected the next one waits in
 * the listen backlog.
 *
 * With --many N it is N monitors in one process, for tests of many VMs
 * that should not need a process each: DIR/0.sock to DIR/N-1.sock, made
 * in that order (so once the last has appeared, all listen).  Each is an
 * independent monitor that behaves as the one of SOCKET would, with the
 * same options: its own client at a time, its own seq, its own script.
 * --silent-from K makes monitors K to N-1 stuck, as --silent makes all
 * of them: they accept, but never greet.  The soft limit of open files
 * is raised to fit 2N + 16 descriptors (a socket and a client each), or
 * the fake exits 1 if the hard limit is lower.  Log lines about a
 * connection then begin "monitor I conn C" instead of "conn C".
 *
 * Each client gets the greeting
 *
 *   {"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 9},
 *    "package": "fake"}, "capabilities": ["oob"]}}
 *
 * qmp_capabilities is answered {"return": {}} (with the id, if any), and
 * every other command {"return": {"command": "NAME", "seq": N}, "id": ID},
 * ID being the command's id bytes verbatim (no id, no "id" member) and N
 * counting the commands answered over the life of the monitor.  Before
 * qmp_capabilities, other commands get QEMU's CommandNotFound error.
 * Every message ends with "\r\n".  Events look like QEMU's:
 * {"timestamp": {"seconds": S, "microseconds": U}, "event": NAME,
 *  "data": {...}}.
 *
 * Options (each client plays the script from the start):
 *   --many N                 N monitors, on DIR/0.sock to DIR/N-1.sock
 *   --silent-from K          with --many, monitors K and up are silent
 *   --no-oob                 the greeting offers no capabilities
 *   --silent                 accept, but never send the greeting
 *   --no-caps-reply          greet, but never answer qmp_capabilities
 *   --event-first NAME       send the event NAME, data {"n": 0}, before
 *                            the greeting, and with data {"n": 1} before
 *                            the first reply to qmp_capabilities, as a
 *                            real QEMU may to a client that connects while
 *                            it is still starting
 *   --split N                write every message in pieces of N bytes: one
 *                            piece at a time, the next only once the last
 *                            has left for the socket and a 1 ms tick has
 *                            passed, so the peer sees half-written messages
 *   --garbage-after N        after answering N commands on a connection
 *                            (qmp_capabilities not counted), write
 *                            {"return": nonsense\r\n (invalid JSON)
 *   --oversize BYTES         right after negotiation, send one OVERSIZE event
 *                            of exactly BYTES bytes, "\r\n" not counted (a
 *                            string in "data" is padded to fit)
 *   --no-reply NAME          never answer commands named NAME (repeatable)
 *   --delay NAME=MS          answer NAME only after MS milliseconds
 *                            (repeatable); meanwhile other commands are
 *                            read and answered at once, out of order
 *   --events-during-delay K  while a delayed reply is pending, send K TICK
 *                            events with data {"n": i}, spaced evenly over
 *                            the delay, all before the reply
 *   --flood N                right after negotiation, write N FLOOD events
 *                            with data {"n": i}, i from 0 to N-1, as fast as
 *                            the socket takes them, then go on serving; they
 *                            are made lazily, as the output drains below a
 *                            watermark, so a peer that stops reading holds
 *                            the fake back and its memory stays bounded
 *   --oob                    answer exec-oob at once, even while an in-band
 *                            reply is delayed; on by default when the
 *                            greeting offers oob.  Without it exec-oob gets
 *                            QEMU's "QMP input member 'exec-oob' is
 *                            unexpected"
 *   --shut-read              when the flood starts, shut down the reading
 *                            side of the connection and go on writing: a
 *                            peer that is not dead but takes no input, so
 *                            the proxy's next write fails
 *   --hold-input             when the flood starts, stop reading (the
 *                            socket stays open) and log once, "input held
 *                            unread", when the peer has written to it:
 *                            then a crash leaves that input unread
 *   --exit-after N           after answering N commands (over the life of
 *                            the monitor), flush, close and exit 0; with
 *                            --many, that monitor stops listening (its
 *                            socket goes) and the process exits 0 once
 *                            the last monitor has
 *   --trigger NAME           start what comes "right after negotiation"
 *                            (--oversize, --flood) instead when the first
 *                            command NAME arrives, before answering it, so
 *                            that a client of a proxy is there to see it
 *   -q, --quiet              do not log each command and its answer: a
 *                            log line costs more than the answer, and the
 *                            benchmark measures what the proxy costs
 *   -v, --verbose            also log every message read and written
 *   -h, --help               this text
 *
 * SIGTERM and SIGINT make it remove the socket and exit 0.  SIGUSR1 makes
 * it end at once, as a crashing QEMU does, leaving what it already wrote
 * in the socket for the peer; it logs the number of the last FLOOD event
 * whole in the socket ("last FLOOD in the socket: N"), whole meaning its
 * JSON value: the "\r\n" after it may not be (with --many, one such line
 * for each monitor whose client has had FLOOD events, "crash: monitor
 * I: ...").  What it does is logged to stderr.
 */
#include "config.h"

#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "qmp.h"
#include "qmpmux.h"

#define FAKE_FLOOD_LOW	(16 * 1024)	/* refill the flood below */
#define FAKE_FLOOD_HIGH	(64 * 1024)	/* and up to this */
#define FAKE_MAX_INPUT	(64 << 20)	/* largest message read */
#define FAKE_MAX_DEPTH	1024
#define FAKE_FLOOD_RING	4096		/* FLOOD ends kept: > unwritten */

/* A command name of --no-reply or --delay, with its delay. */
struct fake_name {
	char			*name;
	long			 ms;
	TAILQ_ENTRY(fake_name)	 entry;
};
TAILQ_HEAD(fake_names, fake_name);

struct fake_conn;

/*
 * One monitor: a listening socket and the one client it serves at a
 * time (conn, NULL when none).  While conn is set ev_accept is off, so
 * the next client waits in the backlog.  gone: --exit-after closed it
 * for good, its socket removed.
 */
struct fake_mon {
	int			 index;
	char			*path;
	int			 fd;
	int			 silent;
	struct event		*ev_accept;
	struct fake_conn	*conn;
	int			 next_conn_id;
	unsigned long		 seq;		/* commands answered */
	int			 gone;
};

/* A reply held back by --delay, with its TICK events. */
struct fake_delayed {
	struct fake_conn	*conn;
	char			 name[QMP_NAME_MAX];
	char			*id;		/* id bytes, or NULL */
	size_t			 idlen;
	struct event		*reply;
	struct event		*tick;
	struct timeval		 interval;
	unsigned long		 ticks;		/* TICKs sent */
	TAILQ_ENTRY(fake_delayed) entry;
};

/*
 * The one connected client.  With --split, pending holds what is not yet
 * handed to the bufferevent; at most one piece is in its output at a time
 * (piece_out), and the tick timer runs between two pieces.  Once closing
 * is set nothing more is read, and the connection is freed from the loop
 * when all of its output has gone.
 */
struct fake_conn {
	struct fake_mon		*mon;
	int			 id;
	char			 tag[48];	/* "conn C", for the log */
	struct bufferevent	*bev;
	struct qmp_reader	*reader;
	struct evbuffer		*pending;
	struct event		*tick;
	int			 piece_out;
	int			 negotiated;
	int			 oob;		/* handles exec-oob */
	int			 scripted;	/* script started */
	unsigned long		 answered;	/* on this connection */
	int			 flooding;
	struct event		*held;		/* --hold-input's watch */
	uint64_t		 enqueued;	/* bytes handed to the output */
	/*
	 * where each recent FLOOD event's JSON value ends, in those bytes:
	 * FAKE_FLOOD_RING of them, allocated when a flood starts, so that a
	 * thousand monitors do not each carry the ring
	 */
	uint64_t		*flood_end;
	unsigned long		 flood_next;
	int			 closing;
	int			 exiting;	/* exit 0 once closed */
	int			 dead;		/* free scheduled */
	TAILQ_HEAD(, fake_delayed) delayed;
};

static struct {
	const char		*path;		/* SOCKET, or DIR with --many */
	int			 many;		/* 0: the one SOCKET */
	int			 silent_from;	/* -1: none */
	int			 no_oob;
	int			 silent;
	int			 no_caps_reply;
	const char		*event_first;
	int			 oob;
	size_t			 split;
	unsigned long		 garbage_after;
	size_t			 oversize;
	unsigned long		 events_during_delay;
	unsigned long		 flood;
	unsigned long		 exit_after;
	int			 shut_read;
	int			 hold_input;
	const char		*trigger;
	int			 verbose;
	int			 quiet;
	struct fake_names	 no_reply;
	struct fake_names	 delays;
} opt;

static struct event_base	*base;
static struct fake_mon		*mons;
static int			 nmons;
static int			 nlive;		/* monitors not gone */
static int			 exit_status;

static void	fake_accept_cb(int, short, void *);
static void	fake_read_cb(struct bufferevent *, void *);
static void	fake_write_cb(struct bufferevent *, void *);
static void	fake_event_cb(struct bufferevent *, short, void *);
static void	fake_tick_cb(int, short, void *);
static void	fake_free_cb(int, short, void *);
static void	fake_delayed_reply_cb(int, short, void *);
static void	fake_delayed_tick_cb(int, short, void *);
static void	fake_signal_cb(int, short, void *);
static void	fake_crash_cb(int, short, void *);
static void	fake_held_cb(int, short, void *);

/* The help text, which is also the usage message. */
static void __attribute__((noreturn))
fake_usage(FILE *f, int status)
{
	fprintf(f,
	    "usage: fakeqemu SOCKET [options]\n"
	    "       fakeqemu --many N DIR [--silent-from K] [options]\n"
	    "  --many N                 N monitors, on DIR/0.sock to "
	    "DIR/N-1.sock\n"
	    "  --silent-from K          with --many, monitors K and up never "
	    "greet\n"
	    "  --no-oob                 greeting offers no capabilities\n"
	    "  --silent                 accept but never send the greeting\n"
	    "  --no-caps-reply          greet, never answer qmp_capabilities\n"
	    "  --event-first NAME       send event NAME before the greeting "
	    "and caps reply\n"
	    "  --split N                write messages in N-byte pieces, "
	    "1 ms apart\n"
	    "  --garbage-after N        after N answers on a connection, "
	    "write invalid JSON\n"
	    "  --oversize BYTES         after negotiation, one event of BYTES "
	    "bytes (no CRLF)\n"
	    "  --no-reply NAME          never answer NAME (repeatable)\n"
	    "  --delay NAME=MS          answer NAME after MS ms "
	    "(repeatable)\n"
	    "  --events-during-delay K  K TICK events during each delay, "
	    "before the reply\n"
	    "  --flood N                after negotiation, N FLOOD events, "
	    "made as the socket drains\n"
	    "  --oob                    answer exec-oob at once (default "
	    "when oob is offered)\n"
	    "  --shut-read              with the flood, stop reading and go "
	    "on writing\n"
	    "  --hold-input             with the flood, stop reading, and "
	    "log input held\n"
	    "  --exit-after N           after N answers in all, close and "
	    "exit 0\n"
	    "  --trigger NAME           start --oversize/--flood on the first "
	    "command NAME\n"
	    "  -q, --quiet              do not log each command and "
	    "answer\n"
	    "  -v, --verbose            log every message\n"
	    "  -h, --help               this text\n");
	exit(status);
}

/* Parse a decimal number for an option, or exit with a complaint. */
static unsigned long
fake_number(const char *option, const char *arg, unsigned long min)
{
	unsigned long	 n;
	char		*end;

	errno = 0;
	n = strtoul(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-' ||
	    n < min) {
		fprintf(stderr, "fakeqemu: --%s %s: expected a number of at "
		    "least %lu\n", option, arg, min);
		exit(1);
	}
	return (n);
}

/* Add a name (and its delay) to a list. */
static void
fake_add_name(struct fake_names *list, const char *name, size_t len, long ms)
{
	struct fake_name	*n;

	if ((n = calloc(1, sizeof(*n))) == NULL ||
	    (n->name = strndup(name, len)) == NULL)
		fatal("%s", __func__);
	n->ms = ms;
	TAILQ_INSERT_TAIL(list, n, entry);
}

/* Find a name in a list. */
static struct fake_name *
fake_find_name(struct fake_names *list, const char *name)
{
	struct fake_name	*n;

	TAILQ_FOREACH(n, list, entry) {
		if (strcmp(n->name, name) == 0)
			return (n);
	}
	return (NULL);
}

/* Free a list of names. */
static void
fake_free_names(struct fake_names *list)
{
	struct fake_name	*n;

	while ((n = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, n, entry);
		free(n->name);
		free(n);
	}
}

/* Bytes written by the fake and not yet taken by the socket. */
static size_t
fake_outlen(struct fake_conn *c)
{
	return (evbuffer_get_length(c->pending) +
	    evbuffer_get_length(bufferevent_get_output(c->bev)));
}

/* Schedule the connection's free from the loop, once. */
static void
fake_kill(struct fake_conn *c)
{
	struct timeval	 zero = { 0, 0 };

	if (c->dead)
		return;
	c->dead = 1;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	if (event_base_once(base, -1, EV_TIMEOUT, fake_free_cb, c,
	    &zero) == -1)
		fatalx("event_base_once failed");
}

/* A closing connection whose output has all gone is done with. */
static void
fake_check_closed(struct fake_conn *c)
{
	if (c->closing && !c->dead && fake_outlen(c) == 0) {
		log_info("%s: output flushed, closing", c->tag);
		fake_kill(c);
	}
}

/*
 * Hand the next --split piece to the socket, unless one is still on its
 * way or the tick between two pieces has not passed.
 */
static void
fake_split_next(struct fake_conn *c)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);

	if (c->dead || c->piece_out || evtimer_pending(c->tick, NULL))
		return;
	if (evbuffer_get_length(c->pending) == 0)
		return;
	evbuffer_remove_buffer(c->pending, out, opt.split);
	c->piece_out = 1;
}

/* Write bytes to the client, in pieces with --split. */
static void
fake_write(struct fake_conn *c, const void *buf, size_t len)
{
	if (opt.verbose)
		log_debug("%s: write %.*s", c->tag,
		    (int)(len > 300 ? 300 : len), (const char *)buf);
	c->enqueued += len;
	if (opt.split == 0) {
		bufferevent_write(c->bev, buf, len);
		return;
	}
	evbuffer_add(c->pending, buf, len);
	fake_split_next(c);
}

/* Write an evbuffer's contents to the client and empty it. */
static void
fake_write_buffer(struct fake_conn *c, struct evbuffer *b)
{
	size_t		 len = evbuffer_get_length(b);
	unsigned char	*p = evbuffer_pullup(b, -1);

	fake_write(c, p, len);
	evbuffer_drain(b, len);
}

/* Append the start of an event, up to and including "data": . */
static void
fake_event_head(struct evbuffer *b, const char *name)
{
	struct timeval	 tv;

	gettimeofday(&tv, NULL);
	evbuffer_add_printf(b, "{\"timestamp\": {\"seconds\": %lld, "
	    "\"microseconds\": %ld}, \"event\": ", (long long)tv.tv_sec,
	    (long)tv.tv_usec);
	reply_string(b, name);
	evbuffer_add_printf(b, ", \"data\": ");
}

/* Send an event whose data is {"n": n}. */
static void
fake_event_n(struct fake_conn *c, const char *name, unsigned long n)
{
	struct evbuffer	*b;

	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new failed");
	fake_event_head(b, name);
	evbuffer_add_printf(b, "{\"n\": %lu}}\r\n", n);
	fake_write_buffer(c, b);
	evbuffer_free(b);
}

/* Send an error, QEMU-style: the id first, as QEMU 7 and later do. */
static void
fake_error(struct fake_conn *c, const char *id, size_t idlen,
    const char *class, const char *desc)
{
	struct evbuffer	*b;

	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new failed");
	/* QEMU's format, which the proxy's own errors copy */
	reply_error(b, id, idlen, class, "%s", desc);
	log_info("%s: error %s: %s", c->tag, class, desc);
	fake_write_buffer(c, b);
	evbuffer_free(b);
}

/* Close after the output has gone; with exiting, the process ends then. */
static void
fake_close(struct fake_conn *c, int exiting)
{
	c->closing = 1;
	c->exiting = exiting;
	c->flooding = 0;
	bufferevent_disable(c->bev, EV_READ);
	fake_check_closed(c);
}

/*
 * Answer a command: its return, then what the script puts after the
 * Nth answer (garbage, or the end).
 */
static void
fake_answer(struct fake_conn *c, const char *name, const char *id,
    size_t idlen)
{
	static const char	 garbage[] = "{\"return\": nonsense\r\n";
	struct evbuffer		*b;

	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new failed");
	c->mon->seq++;
	c->answered++;
	evbuffer_add_printf(b, "{\"return\": {\"command\": ");
	reply_string(b, name);
	evbuffer_add_printf(b, ", \"seq\": %lu}", c->mon->seq);
	if (id != NULL) {
		evbuffer_add_printf(b, ", \"id\": ");
		evbuffer_add(b, id, idlen);
	}
	evbuffer_add_printf(b, "}\r\n");
	if (!opt.quiet)
		log_info("%s: answered %s (seq %lu)", c->tag, name,
		    c->mon->seq);
	fake_write_buffer(c, b);
	evbuffer_free(b);

	if (opt.garbage_after != 0 && c->answered == opt.garbage_after) {
		log_info("%s: writing garbage after %lu answers", c->tag,
		    c->answered);
		fake_write(c, garbage, sizeof(garbage) - 1);
	}
	if (opt.exit_after != 0 && c->mon->seq == opt.exit_after) {
		log_info("%s: %lu commands answered: exiting", c->tag,
		    c->mon->seq);
		fake_close(c, 1);
	}
}

/* Make FLOOD events while the output is below its watermark. */
static void
fake_flood(struct fake_conn *c)
{
	if (!c->flooding || c->dead || fake_outlen(c) >= FAKE_FLOOD_LOW)
		return;
	while (c->flooding && fake_outlen(c) < FAKE_FLOOD_HIGH) {
		fake_event_n(c, "FLOOD", c->flood_next);
		c->flood_end[c->flood_next % FAKE_FLOOD_RING] = c->enqueued - 2;
		if (++c->flood_next == opt.flood) {
			c->flooding = 0;
			log_info("%s: flood of %lu events written", c->tag,
			    opt.flood);
		}
	}
}

/* Send the OVERSIZE event, exactly opt.oversize bytes before "\r\n". */
static void
fake_oversize(struct fake_conn *c)
{
	static const char	 tail[] = "\"}}";
	struct evbuffer		*b;
	size_t			 head, pad;
	char			*p;

	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new failed");
	fake_event_head(b, "OVERSIZE");
	evbuffer_add_printf(b, "{\"pad\": \"");
	head = evbuffer_get_length(b);
	if (opt.oversize < head + sizeof(tail) - 1) {
		log_warnx("%s: --oversize %zu is below the smallest "
		    "event (%zu bytes): sending that", c->tag, opt.oversize,
		    head + sizeof(tail) - 1);
		pad = 0;
	} else
		pad = opt.oversize - head - (sizeof(tail) - 1);
	if ((p = malloc(pad + 1)) == NULL)
		fatal("%s", __func__);
	memset(p, 'x', pad);
	evbuffer_add(b, p, pad);
	free(p);
	evbuffer_add(b, tail, sizeof(tail) - 1);
	log_info("%s: OVERSIZE event of %zu bytes", c->tag,
	    evbuffer_get_length(b));
	evbuffer_add(b, "\r\n", 2);
	fake_write_buffer(c, b);
	evbuffer_free(b);
}

/* What comes right after negotiation (or on the trigger). */
static void
fake_script(struct fake_conn *c)
{
	c->scripted = 1;
	if (opt.oversize != 0)
		fake_oversize(c);
	if (opt.flood != 0) {
		log_info("%s: flood of %lu events starts", c->tag,
		    opt.flood);
		if (c->flood_end == NULL && (c->flood_end = calloc(
		    FAKE_FLOOD_RING, sizeof(*c->flood_end))) == NULL)
			fatal("%s", __func__);
		c->flooding = 1;
		c->flood_next = 0;
		if (opt.shut_read) {
			log_info("%s: reading side shut down", c->tag);
			bufferevent_disable(c->bev, EV_READ);
			shutdown(bufferevent_getfd(c->bev), SHUT_RD);
		}
		if (opt.hold_input) {
			log_info("%s: holding input", c->tag);
			bufferevent_disable(c->bev, EV_READ);
			c->held = event_new(base, bufferevent_getfd(c->bev),
			    EV_READ, fake_held_cb, c);
			if (c->held == NULL)
				fatalx("event_new failed");
			event_add(c->held, NULL);
		}
		fake_flood(c);
	}
}

/* --hold-input: the peer wrote to us; say so, and leave it unread. */
static void
fake_held_cb(int fd, short events, void *arg)
{
	struct fake_conn	*c = arg;
	int			 n = 0;

	if (ioctl(fd, FIONREAD, &n) == 0 && n > 0)
		log_info("%s: input held unread (%d bytes)", c->tag, n);
	else
		log_info("%s: peer closed, no input held", c->tag);
}

/* Free a held-back reply. */
static void
fake_delayed_free(struct fake_delayed *d)
{
	if (d->reply != NULL)
		event_free(d->reply);
	if (d->tick != NULL)
		event_free(d->tick);
	free(d->id);
	free(d);
}

/* Hold a reply back for ms, with TICK events meanwhile. */
static void
fake_delay(struct fake_conn *c, const char *name, const char *id,
    size_t idlen, long ms)
{
	struct fake_delayed	*d;
	struct timeval		 tv;
	long long		 us;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		fatal("%s", __func__);
	d->conn = c;
	snprintf(d->name, sizeof(d->name), "%s", name);
	if (id != NULL) {
		if ((d->id = malloc(idlen)) == NULL)
			fatal("%s", __func__);
		memcpy(d->id, id, idlen);
		d->idlen = idlen;
	}
	if ((d->reply = evtimer_new(base, fake_delayed_reply_cb, d)) == NULL)
		fatalx("evtimer_new failed");
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(d->reply, &tv);
	if (opt.events_during_delay > 0) {
		if ((d->tick = evtimer_new(base, fake_delayed_tick_cb,
		    d)) == NULL)
			fatalx("evtimer_new failed");
		us = (long long)ms * 1000 /
		    (long long)(opt.events_during_delay + 1);
		d->interval.tv_sec = us / 1000000;
		d->interval.tv_usec = us % 1000000;
		evtimer_add(d->tick, &d->interval);
	}
	TAILQ_INSERT_TAIL(&c->delayed, d, entry);
	log_info("%s: %s answered in %ld ms", c->tag, name, ms);
}

/* One TICK event while a reply is held back. */
static void
fake_delayed_tick_cb(int fd, short events, void *arg)
{
	struct fake_delayed	*d = arg;

	if (d->ticks >= opt.events_during_delay)
		return;
	fake_event_n(d->conn, "TICK", d->ticks++);
	if (d->ticks < opt.events_during_delay)
		evtimer_add(d->tick, &d->interval);
}

/* The delay is over: the TICKs that are left, then the reply. */
static void
fake_delayed_reply_cb(int fd, short events, void *arg)
{
	struct fake_delayed	*d = arg;
	struct fake_conn	*c = d->conn;

	while (d->ticks < opt.events_during_delay)
		fake_event_n(c, "TICK", d->ticks++);
	TAILQ_REMOVE(&c->delayed, d, entry);
	if (!c->closing && !c->dead)
		fake_answer(c, d->name, d->id, d->idlen);
	fake_delayed_free(d);
}

/* Whether the arguments of qmp_capabilities ask for oob. */
static int
fake_wants_oob(const struct qmp_msg *msg)
{
	const struct qmp_member	*m;

	if (msg->m_arguments == -1)
		return (0);
	m = &msg->members[msg->m_arguments];
	return (memmem(msg->buf + m->val_off, m->val_end - m->val_off,
	    "\"oob\"", 5) != NULL);
}

/* qmp_capabilities: answer it (unless told not to) and start the script. */
static void
fake_negotiate(struct fake_conn *c, const struct qmp_msg *msg,
    const char *id, size_t idlen)
{
	int	 oob = fake_wants_oob(msg);

	log_info("%s: qmp_capabilities%s", c->tag,
	    oob ? " enabling oob" : " without capabilities");
	if (opt.no_caps_reply) {
		log_info("%s: not answering qmp_capabilities "
		    "(--no-caps-reply)", c->tag);
		return;
	}
	if (c->negotiated) {
		fake_error(c, id, idlen, "CommandNotFound", "Capabilities "
		    "negotiation is already complete, command ignored");
		return;
	}
	if (oob && opt.no_oob) {
		fake_error(c, id, idlen, "GenericError",
		    "Capability 'oob' not available");
		return;
	}
	if (opt.event_first != NULL) {
		fake_event_n(c, opt.event_first, 1);
		log_info("%s: event %s sent before the capabilities' reply",
		    c->tag, opt.event_first);
	}
	if (id != NULL) {
		fake_write(c, "{\"return\": {}, \"id\": ", 21);
		fake_write(c, id, idlen);
		fake_write(c, "}\r\n", 3);
	} else
		fake_write(c, "{\"return\": {}}\r\n", 16);
	c->negotiated = 1;
	if (opt.trigger == NULL)
		fake_script(c);
}

/* One whole message from the client. */
static void
fake_handle(struct fake_conn *c, const struct qmp_msg *msg)
{
	struct qmp_span		 span = qmp_msg_id(msg);
	struct fake_name	*n;
	const char		*id = NULL;
	size_t			 idlen = 0;
	int			 oob = msg->m_exec_oob != -1;

	if (opt.verbose)
		log_debug("%s: read %.*s", c->tag,
		    (int)(msg->len > 300 ? 300 : msg->len), msg->buf);
	if (span.len > 0) {
		id = msg->buf + span.off;
		idlen = span.len;
	}
	if (msg->kind == QMP_KIND_NONOBJECT) {
		fake_error(c, NULL, 0, "GenericError",
		    "QMP input must be a JSON object");
		return;
	}
	if (msg->kind != QMP_KIND_COMMAND) {
		fake_error(c, id, idlen, "GenericError",
		    "QMP input lacks member 'execute'");
		return;
	}
	if (!opt.quiet)
		log_info("%s: %s %s id %.*s", c->tag,
		    oob ? "exec-oob" : "command", msg->name,
		    id != NULL ? (int)idlen : 6, id != NULL ? id : "(none)");
	if (!oob && strcmp(msg->name, "qmp_capabilities") == 0) {
		fake_negotiate(c, msg, id, idlen);
		return;
	}
	if (!c->negotiated) {
		fake_error(c, id, idlen, "CommandNotFound", "Expecting "
		    "capabilities negotiation with 'qmp_capabilities'");
		return;
	}
	if (oob && !c->oob) {
		fake_error(c, id, idlen, "GenericError",
		    "QMP input member 'exec-oob' is unexpected");
		return;
	}
	if (opt.trigger != NULL && !c->scripted &&
	    strcmp(msg->name, opt.trigger) == 0) {
		log_info("%s: trigger %s", c->tag, msg->name);
		fake_script(c);
	}
	if (fake_find_name(&opt.no_reply, msg->name) != NULL) {
		log_info("%s: not answering %s (--no-reply)", c->tag,
		    msg->name);
		return;
	}
	if (!oob && (n = fake_find_name(&opt.delays, msg->name)) != NULL) {
		fake_delay(c, msg->name, id, idlen, n->ms);
		return;
	}
	fake_answer(c, msg->name, id, idlen);
}

/* Read whole commands and handle them, until closing. */
static void
fake_read_cb(struct bufferevent *bev, void *arg)
{
	struct fake_conn	*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct qmp_msg		 msg;

	while (!c->closing && !c->dead) {
		switch (qmp_reader_next(c->reader, in, &msg)) {
		case QMP_NEED_MORE:
			return;
		case QMP_MESSAGE:
			fake_handle(c, &msg);
			qmp_msg_clear(&msg);
			break;
		case QMP_ERR_JSON:
		case QMP_ERR_DEPTH:
			fake_error(c, NULL, 0, "GenericError",
			    qmp_reader_error(c->reader));
			break;
		case QMP_ERR_SIZE:
			fake_error(c, NULL, 0, "GenericError",
			    "JSON parse error, too big");
			break;
		}
	}
}

/* Output has drained: the next piece, more flood, or the close. */
static void
fake_write_cb(struct bufferevent *bev, void *arg)
{
	struct fake_conn	*c = arg;
	struct timeval		 ms = { 0, 1000 };

	if (c->dead)
		return;
	if (c->piece_out &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		c->piece_out = 0;
		evtimer_add(c->tick, &ms);
	}
	fake_flood(c);
	fake_check_closed(c);
}

/* The tick between two --split pieces has passed. */
static void
fake_tick_cb(int fd, short events, void *arg)
{
	struct fake_conn	*c = arg;

	fake_split_next(c);
	fake_flood(c);
	fake_check_closed(c);
}

/* The client left or the socket failed: free the connection. */
static void
fake_event_cb(struct bufferevent *bev, short events, void *arg)
{
	struct fake_conn	*c = arg;

	if (events & BEV_EVENT_EOF)
		log_info("%s: client left", c->tag);
	else if (events & BEV_EVENT_ERROR)
		log_info("%s: %s", c->tag,
		    strerror(EVUTIL_SOCKET_ERROR()));
	else
		return;
	fake_kill(c);
}

/* Free a connection; only from the loop or at exit. */
static void
fake_conn_free(struct fake_conn *c)
{
	struct fake_delayed	*d;

	if (c == NULL)
		return;
	while ((d = TAILQ_FIRST(&c->delayed)) != NULL) {
		TAILQ_REMOVE(&c->delayed, d, entry);
		fake_delayed_free(d);
	}
	if (c->held != NULL)
		event_free(c->held);
	bufferevent_free(c->bev);
	qmp_reader_free(c->reader);
	evbuffer_free(c->pending);
	event_free(c->tick);
	if (c->mon->conn == c)
		c->mon->conn = NULL;
	free(c->flood_end);
	free(c);
}

/*
 * A monitor is done with (--exit-after): stop listening and remove its
 * socket; the process exits once no monitor is left.
 */
static void
fake_mon_close(struct fake_mon *mon)
{
	if (mon->gone)
		return;
	mon->gone = 1;
	event_del(mon->ev_accept);
	unlink(mon->path);
	close(mon->fd);
	mon->fd = -1;
	if (--nlive == 0) {
		exit_status = 0;
		event_base_loopbreak(base);
	}
}

/* A connection is over: accept the next client, or close the monitor. */
static void
fake_free_cb(int fd, short events, void *arg)
{
	struct fake_conn	*c = arg;
	struct fake_mon		*mon = c->mon;
	int			 exiting = c->exiting;

	log_info("%s: closed", c->tag);
	fake_conn_free(c);
	if (exiting) {
		fake_mon_close(mon);
		return;
	}
	event_add(mon->ev_accept, NULL);
}

/* Take one client of a monitor; no other until it has gone. */
static void
fake_accept_cb(int fd, short events, void *arg)
{
	struct fake_mon		*mon = arg;
	struct fake_conn	*c;
	char			 greeting[256];
	int			 s;

	if ((s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) ==
	    -1) {
		if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("accept");
		return;
	}
	event_del(mon->ev_accept);

	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("%s", __func__);
	c->mon = mon;
	c->id = ++mon->next_conn_id;
	if (opt.many)
		snprintf(c->tag, sizeof(c->tag), "monitor %d conn %d",
		    mon->index, c->id);
	else
		snprintf(c->tag, sizeof(c->tag), "conn %d", c->id);
	c->oob = opt.oob || !opt.no_oob;
	TAILQ_INIT(&c->delayed);
	c->bev = bufferevent_socket_new(base, s, BEV_OPT_CLOSE_ON_FREE);
	c->reader = qmp_reader_new(FAKE_MAX_INPUT, FAKE_MAX_DEPTH,
	    QMP_READ_STRICT);
	c->pending = evbuffer_new();
	c->tick = evtimer_new(base, fake_tick_cb, c);
	if (c->bev == NULL || c->reader == NULL || c->pending == NULL ||
	    c->tick == NULL)
		fatalx("%s: out of memory", __func__);
	bufferevent_setcb(c->bev, fake_read_cb, fake_write_cb, fake_event_cb,
	    c);
	/* split pieces need to know when the output is empty */
	bufferevent_setwatermark(c->bev, EV_WRITE,
	    opt.split != 0 ? 0 : FAKE_FLOOD_LOW, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	mon->conn = c;
	log_info("%s: accepted", c->tag);

	if (mon->silent) {
		log_info("%s: silent, no greeting", c->tag);
		return;
	}
	if (opt.event_first != NULL) {
		fake_event_n(c, opt.event_first, 0);
		log_info("%s: event %s sent before the greeting", c->tag,
		    opt.event_first);
	}
	snprintf(greeting, sizeof(greeting), "{\"QMP\": {\"version\": "
	    "{\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 9}, "
	    "\"package\": \"fake\"}, \"capabilities\": [%s]}}\r\n",
	    opt.no_oob ? "" : "\"oob\"");
	fake_write(c, greeting, strlen(greeting));
	log_info("%s: greeting sent%s", c->tag,
	    opt.no_oob ? " (no capabilities)" : "");
}

/* SIGTERM or SIGINT: leave the loop; main removes the socket. */
static void
fake_signal_cb(int sig, short events, void *arg)
{
	log_info("signal %d (%s): exiting", sig, strsignal(sig));
	exit_status = 0;
	event_base_loopbreak(base);
}

/*
 * SIGUSR1: crash.  What is still in the process is lost; during a flood,
 * those are its last events.  The last FLOOD event whole in the socket
 * is the last whose JSON value, without the "\r\n" after it, has been
 * written.
 */
static void
fake_crash_cb(int sig, short events, void *arg)
{
	struct fake_conn	*conn;
	uint64_t		 unwritten, written;
	unsigned long		 n;
	char			 who[32];
	int			 i;

	for (i = 0; i < nmons; i++) {
		if ((conn = mons[i].conn) == NULL || conn->flood_next == 0)
			continue;
		unwritten = fake_outlen(conn);
		written = conn->enqueued - unwritten;
		for (n = conn->flood_next; n > 0 &&
		    conn->flood_next - n < FAKE_FLOOD_RING; n--)
			if (conn->flood_end[(n - 1) % FAKE_FLOOD_RING] <=
			    written)
				break;
		who[0] = '\0';
		if (opt.many)
			snprintf(who, sizeof(who), "monitor %d: ", i);
		log_info("crash: %s%llu bytes unwritten; last FLOOD in the "
		    "socket: %ld", who, (unsigned long long)unwritten,
		    (long)n - 1);
	}
	log_info("crash: exiting at once");
	_exit(0);
}

/* Remove a stale socket at path; anything else there is an error. */
static void
fake_unlink_stale(const char *path)
{
	struct stat	 st;

	if (lstat(path, &st) == -1)
		return;
	if (!S_ISSOCK(st.st_mode))
		fatalx("%s exists and is not a socket", path);
	if (unlink(path) == -1)
		fatal("unlink %s", path);
	log_info("removed stale socket %s", path);
}

/*
 * Listen on the path, removing a stale socket first.  The socket is
 * bound under a temporary name and renamed once it listens, so whoever
 * waits for the path to appear never finds it refusing connections.
 */
static int
fake_listen(const char *path)
{
	struct sockaddr_un	 sun;
	char			*tmp;
	int			 fd;

	if (asprintf(&tmp, "%s.tmp", path) == -1)
		fatal("%s", __func__);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(tmp) >= sizeof(sun.sun_path))
		fatalx("%s: path too long", tmp);
	strncpy(sun.sun_path, tmp, sizeof(sun.sun_path) - 1);
	fake_unlink_stale(path);
	fake_unlink_stale(tmp);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		fatal("socket");
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("bind %s", tmp);
	if (listen(fd, 16) == -1)
		fatal("listen %s", tmp);
	if (rename(tmp, path) == -1)
		fatal("rename %s to %s", tmp, path);
	free(tmp);
	return (fd);
}

/*
 * With --many, make room for every monitor's two descriptors (its
 * socket and its client) and a few more, within the hard limit.
 */
static void
fake_raise_nofile(int n)
{
	struct rlimit	 rl;
	rlim_t		 want = (rlim_t)n * 2 + 16;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		fatal("getrlimit");
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		fatalx("--many %d needs %llu open files; the hard limit is "
		    "%llu", n, (unsigned long long)want,
		    (unsigned long long)rl.rlim_max);
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		fatal("setrlimit");
}

/* Make the monitors and listen on their sockets, in order. */
static void
fake_mons_open(void)
{
	struct fake_mon	*mon;
	int		 i, silent = 0;

	nmons = opt.many != 0 ? opt.many : 1;
	if ((mons = calloc((size_t)nmons, sizeof(*mons))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < nmons; i++) {
		mon = &mons[i];
		mon->index = i;
		mon->silent = opt.silent ||
		    (opt.silent_from != -1 && i >= opt.silent_from);
		if (opt.many == 0)
			mon->path = strdup(opt.path);
		else if (asprintf(&mon->path, "%s/%d.sock", opt.path, i) == -1)
			mon->path = NULL;
		if (mon->path == NULL)
			fatal("%s", __func__);
		mon->fd = fake_listen(mon->path);
		mon->ev_accept = event_new(base, mon->fd, EV_READ | EV_PERSIST,
		    fake_accept_cb, mon);
		if (mon->ev_accept == NULL)
			fatalx("event_new failed");
		event_add(mon->ev_accept, NULL);
		silent += mon->silent;
	}
	nlive = nmons;
	if (opt.many == 0)
		log_info("listening on %s", opt.path);
	else
		log_info("listening on %s/0.sock to %s/%d.sock (%d monitors, "
		    "%d silent)", opt.path, opt.path, nmons - 1, nmons,
		    silent);
}

/* Close every monitor, its client and its socket, at the exit. */
static unsigned long
fake_mons_free(void)
{
	unsigned long	 seq = 0;
	int		 i;

	for (i = 0; i < nmons; i++) {
		seq += mons[i].seq;
		fake_conn_free(mons[i].conn);
		if (!mons[i].gone) {
			unlink(mons[i].path);
			close(mons[i].fd);
		}
		event_free(mons[i].ev_accept);
		free(mons[i].path);
	}
	free(mons);
	return (seq);
}

/* Parse the options, listen, and serve clients one at a time. */
int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "no-oob", no_argument, NULL, 'O' },
		{ "silent", no_argument, NULL, 's' },
		{ "no-caps-reply", no_argument, NULL, 'C' },
		{ "event-first", required_argument, NULL, 'e' },
		{ "split", required_argument, NULL, 'S' },
		{ "garbage-after", required_argument, NULL, 'g' },
		{ "oversize", required_argument, NULL, 'z' },
		{ "no-reply", required_argument, NULL, 'n' },
		{ "delay", required_argument, NULL, 'D' },
		{ "events-during-delay", required_argument, NULL, 'k' },
		{ "flood", required_argument, NULL, 'f' },
		{ "oob", no_argument, NULL, 'o' },
		{ "exit-after", required_argument, NULL, 'x' },
		{ "shut-read", no_argument, NULL, 'r' },
		{ "hold-input", no_argument, NULL, 'H' },
		{ "trigger", required_argument, NULL, 't' },
		{ "many", required_argument, NULL, 'M' },
		{ "silent-from", required_argument, NULL, 'K' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct event	*ev_term, *ev_int, *ev_usr1;
	unsigned long	 seq;
	const char	*eq;
	int		 ch, idx;

	opt.silent_from = -1;
	TAILQ_INIT(&opt.no_reply);
	TAILQ_INIT(&opt.delays);
	while ((ch = getopt_long(argc, argv, "qvh", longopts, &idx)) != -1) {
		switch (ch) {
		case 'O':
			opt.no_oob = 1;
			break;
		case 's':
			opt.silent = 1;
			break;
		case 'C':
			opt.no_caps_reply = 1;
			break;
		case 'e':
			opt.event_first = optarg;
			break;
		case 'S':
			opt.split = fake_number("split", optarg, 1);
			break;
		case 'g':
			opt.garbage_after = fake_number("garbage-after", optarg,
			    1);
			break;
		case 'z':
			opt.oversize = fake_number("oversize", optarg, 1);
			break;
		case 'n':
			fake_add_name(&opt.no_reply, optarg, strlen(optarg), 0);
			break;
		case 'D':
			eq = strchr(optarg, '=');
			if (eq == NULL || eq == optarg) {
				fprintf(stderr, "fakeqemu: --delay %s: "
				    "expected NAME=MS\n", optarg);
				exit(1);
			}
			fake_add_name(&opt.delays, optarg, eq - optarg,
			    (long)fake_number("delay", eq + 1, 0));
			break;
		case 'k':
			opt.events_during_delay = fake_number(
			    "events-during-delay", optarg, 0);
			break;
		case 'f':
			opt.flood = fake_number("flood", optarg, 0);
			break;
		case 'o':
			opt.oob = 1;
			break;
		case 'x':
			opt.exit_after = fake_number("exit-after", optarg, 1);
			break;
		case 'r':
			opt.shut_read = 1;
			break;
		case 'H':
			opt.hold_input = 1;
			break;
		case 't':
			opt.trigger = optarg;
			break;
		case 'M':
			opt.many = (int)fake_number("many", optarg, 1);
			if (opt.many > 100000) {
				fprintf(stderr, "fakeqemu: --many %s: at most "
				    "100000\n", optarg);
				exit(1);
			}
			break;
		case 'K':
			opt.silent_from = (int)fake_number("silent-from",
			    optarg, 0);
			break;
		case 'q':
			opt.quiet = 1;
			break;
		case 'v':
			opt.verbose = 1;
			break;
		case 'h':
			fake_usage(stdout, 0);
		default:
			fake_usage(stderr, 1);
		}
	}
	if (optind != argc - 1 || (opt.silent_from != -1 && opt.many == 0))
		fake_usage(stderr, 1);
	opt.path = argv[optind];

	log_init(1, opt.verbose);
	signal(SIGPIPE, SIG_IGN);
	if (opt.many != 0)
		fake_raise_nofile(opt.many);
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	ev_term = evsignal_new(base, SIGTERM, fake_signal_cb, NULL);
	ev_int = evsignal_new(base, SIGINT, fake_signal_cb, NULL);
	ev_usr1 = evsignal_new(base, SIGUSR1, fake_crash_cb, NULL);
	if (ev_term == NULL || ev_int == NULL || ev_usr1 == NULL)
		fatalx("event_new failed");
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_usr1, NULL);
	fake_mons_open();

	event_base_dispatch(base);

	seq = fake_mons_free();
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_usr1);
	event_base_free(base);
	fake_free_names(&opt.no_reply);
	fake_free_names(&opt.delays);
	log_info("stopped after answering %lu commands", seq);
	return (exit_status);
}
