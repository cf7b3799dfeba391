/*
 * Metrics in the Prometheus text format (version 0.0.4), over HTTP on
 * the address of the [global] key metrics, ADDRESS:PORT or a unix
 * socket's path: GET /metrics, and 404 for any other path.  evhttp
 * serves it on the daemon's loop: the response is built in memory from
 * the counters the VMs keep, a family at a time, and handed to evhttp,
 * which writes it without blocking.
 *
 * A slow or greedy scraper is bounded by [global] keys.  Request
 * headers are of metrics_max_request at most, and there is no body.  A
 * response larger than metrics_max_response is not sent: the scrape
 * gets a 500.  At most metrics_max_connections connections are open at
 * once, counted from their accept: evhttp has no cap of its own and
 * reports a connection only once a whole request came, so the
 * connection is seen at the accept through evhttp's bufferevent
 * callback, and one past the cap is closed at once, counted and logged
 * at most once a second.  Each connection has metrics_timeout for a
 * request and its response, from its accept or the end of its previous
 * response, however slowly the peer sends (evhttp's own timeout is
 * for each read and write, and is set too).  An accept that fails
 * (EMFILE) pauses the listener for a second, as every listener's does.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "qmpmux.h"


/* The type of a family, as its TYPE line says it. */
static const char *metrics_types[] = {
	[COUNTER_COUNTER] = "counter",
	[COUNTER_GAUGE] = "gauge",
	[COUNTER_HISTOGRAM] = "histogram",
};

/*
 * A connection, from its accept to its close.  Until the listener's
 * callback is done it is only the bufferevent made for evhttp (bev,
 * held with a reference); then its evhttp connection (evcon), with the
 * close callback that frees this.  deadline runs first right after the
 * listener's callback, then at the end of metrics_timeout.  A refused
 * one is past the cap and is closed the first time.
 */
struct metrics_conn {
	struct metrics			*m;
	struct bufferevent		*bev;
	struct evhttp_connection	*evcon;
	struct event			*deadline;
	int				 refused;
	TAILQ_ENTRY(metrics_conn)	 entry;
};
TAILQ_HEAD(metrics_conns, metrics_conn);

/*
 * The metrics server.  conns are its connections, of which nconns,
 * the ones not refused, count against metrics_max_connections.  evl
 * is evhttp's listener, which retry enables again after a pause.
 */
struct metrics {
	struct server		*server;
	struct evhttp		*http;
	struct evconnlistener	*evl;
	struct event		*retry;
	unsigned int		 accepted;	/* util_accept_paced */
	char			*addr;		/* as configured */
	const char		*path;		/* in addr: a unix socket's */
	char			 bound[sizeof(((struct sockaddr_un *)0)->
				    sun_path) + 16];
	struct metrics_conns	 conns;
	unsigned int		 nconns;
	unsigned long long	 refused;	/* past the cap */
	unsigned long long	 refused_logged;
	struct timeval		 refused_log;	/* its last line */
	LIST_ENTRY(metrics)	 entry;		/* metrics_all */
};

/*
 * Every metrics server, for the listener's error callback, which evhttp
 * calls with its own argument, not ours.
 */
static LIST_HEAD(, metrics) metrics_all = LIST_HEAD_INITIALIZER(metrics_all);

static void	metrics_request_cb(struct evhttp_request *, void *);
static void	metrics_complete_cb(struct evhttp_request *, void *);
static void	metrics_close_cb(struct evhttp_connection *, void *);
static struct bufferevent *metrics_accept_cb(struct event_base *, void *);
static void	metrics_deadline_cb(int, short, void *);
static void	metrics_accept_error_cb(struct evconnlistener *, void *);
static void	metrics_retry_cb(int, short, void *);

/* A label value as the text format escapes it: \\, \" and \n. */
static void
metrics_label(struct evbuffer *b, const char *value)
{
	const char	*p;

	for (p = value; *p != '\0'; p++) {
		switch (*p) {
		case '\\':
			evbuffer_add(b, "\\\\", 2);
			break;
		case '"':
			evbuffer_add(b, "\\\"", 2);
			break;
		case '\n':
			evbuffer_add(b, "\\n", 2);
			break;
		default:
			evbuffer_add(b, p, 1);
		}
	}
}

/* The HELP and TYPE lines of a family. */
static void
metrics_family(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* The start of a VM's sample: NAME{vm="VM" and no closing brace. */
static void
metrics_vm_sample(struct evbuffer *b, const char *name, const struct vm *vm)
{
	evbuffer_add_printf(b, "%s{vm=\"", name);
	metrics_label(b, vm->name);
	evbuffer_add(b, "\"", 1);
}

/*
 * A histogram of a VM: its buckets, +Inf, sum and count, with its
 * label if it has one.
 */
static void
metrics_histogram(struct evbuffer *b, const struct counter *c,
    const struct vm *vm)
{
	const char			*comma = c->label != NULL ? "," : "";
	const char			*label = c->label != NULL ? c->label : "";
	const struct counter_hist	*h = counter_hist_of(c, vm);
	unsigned long long		 n = 0;
	char				 fam[64];
	int				 i;

	snprintf(fam, sizeof(fam), "%s_bucket", c->metric);
	for (i = 0; i < COUNTER_NBUCKETS; i++) {
		n += h->buckets[i];
		metrics_vm_sample(b, fam, vm);
		evbuffer_add_printf(b, "%s%s,le=\"%g\"} %llu\n", comma, label,
		    counter_bounds[i], n);
	}
	metrics_vm_sample(b, fam, vm);
	evbuffer_add_printf(b, "%s%s,le=\"+Inf\"} %llu\n", comma, label,
	    (unsigned long long)h->count);
	snprintf(fam, sizeof(fam), "%s_sum", c->metric);
	metrics_vm_sample(b, fam, vm);
	evbuffer_add_printf(b, "%s%s} %.9f\n", comma, label, h->sum);
	snprintf(fam, sizeof(fam), "%s_count", c->metric);
	metrics_vm_sample(b, fam, vm);
	evbuffer_add_printf(b, "%s%s} %llu\n", comma, label,
	    (unsigned long long)h->count);
}

/* The histograms of a VM of the family from c up to next, by label. */
static void
metrics_histograms(struct evbuffer *b, const struct counter *c,
    const struct counter *next, const struct vm *vm)
{
	for (; c != next; c = counter_next(c, COUNTER_METRICS))
		metrics_histogram(b, c, vm);
}

/*
 * The series of a VM of the family whose first counter is c, up to
 * next: one per counter, each told apart by its label.
 */
static void
metrics_series(struct evbuffer *b, const struct counter *c,
    const struct counter *next, const struct vm *vm)
{
	for (; c != next; c = counter_next(c, COUNTER_METRICS)) {
		metrics_vm_sample(b, c->metric, vm);
		if (c->label != NULL)
			evbuffer_add_printf(b, ",%s", c->label);
		evbuffer_add_printf(b, "} %llu\n",
		    (unsigned long long)counter_value(c, vm));
	}
}

/*
 * The whole exposition into b: the process's families, then each
 * per-VM family with a series for every running VM.  -1 as soon as it
 * passes metrics_max_response.
 */
static int
metrics_render(struct metrics *m, struct evbuffer *b)
{
	struct server		*s = m->server;
	const struct counter	*c, *next;
	struct vm		*vm;

	metrics_family(b, "process_start_time_seconds", "gauge",
	    "Start time of the process since the epoch, in seconds.");
	evbuffer_add_printf(b, "process_start_time_seconds %.3f\n",
	    (double)s->started.tv_sec + s->started.tv_usec / 1e6);
	metrics_family(b, "qmpmux_vms", "gauge", "VMs running.");
	evbuffer_add_printf(b, "qmpmux_vms %u\n", host_count(s));
	metrics_family(b, "qmpmux_event_bytes_held", "gauge",
	    "Bytes of the event backlogs of all VMs.");
	evbuffer_add_printf(b, "qmpmux_event_bytes_held %zu\n",
	    s->backlog_bytes);
	metrics_family(b, "qmpmux_max_total_queued_bytes", "gauge",
	    "The host-wide bound of the event backlogs, in bytes.");
	evbuffer_add_printf(b, "qmpmux_max_total_queued_bytes %zu\n",
	    s->max_memory);
	metrics_family(b, "qmpmux_metrics_connections_refused_total",
	    "counter", "Metrics connections closed at their accept: "
	    "metrics_max_connections were open.");
	evbuffer_add_printf(b, "qmpmux_metrics_connections_refused_total "
	    "%llu\n", m->refused);

	/* the table's, a family at a time: its counters in a row */
	for (c = counter_next(NULL, COUNTER_METRICS); c != NULL; c = next) {
		next = counter_next(c, COUNTER_METRICS);
		while (next != NULL && strcmp(next->metric, c->metric) == 0)
			next = counter_next(next, COUNTER_METRICS);
		metrics_family(b, c->metric, metrics_types[c->type], c->help);
		TAILQ_FOREACH(vm, &s->vms, entry) {
			if (c->type == COUNTER_HISTOGRAM)
				metrics_histograms(b, c, next, vm);
			else
				metrics_series(b, c, next, vm);
			if (evbuffer_get_length(b) >
			    s->lim.metrics_max_response)
				return (-1);
		}
	}
	return (0);
}

/*
 * A connection is accepted, and evhttp asks for its bufferevent: count
 * it, or refuse it past the cap.  evhttp makes its connection only after
 * this returns, so the connection is taken up once the listener's
 * callback is done (metrics_deadline_cb, made active), before anything
 * is read from it: a refused one holds its fd for no longer than that.
 */
static struct bufferevent *
metrics_accept_cb(struct event_base *base, void *arg)
{
	struct metrics		*m = arg;
	struct metrics_conn	*mc;

	util_accept_paced(m->evl, m->retry, &m->accepted);
	/* as evhttp makes its own: it closes the fd itself */
	if ((mc = calloc(1, sizeof(*mc))) == NULL ||
	    (mc->bev = bufferevent_socket_new(base, -1, 0)) == NULL ||
	    (mc->deadline = evtimer_new(base, metrics_deadline_cb, mc)) ==
	    NULL)
		fatal("%s", __func__);
	/* ours until evhttp's connection is known, whatever evhttp does */
	bufferevent_incref(mc->bev);
	mc->m = m;
	if (m->nconns >= m->server->lim.metrics_max_connections) {
		mc->refused = 1;
		m->refused++;
	} else
		m->nconns++;
	TAILQ_INSERT_TAIL(&m->conns, mc, entry);
	event_active(mc->deadline, EV_TIMEOUT, 1);
	return (mc->bev);
}

/* Forget a connection, which evhttp has closed or never made. */
static void
metrics_conn_free(struct metrics_conn *mc)
{
	struct metrics	*m = mc->m;

	TAILQ_REMOVE(&m->conns, mc, entry);
	if (!mc->refused)
		m->nconns--;
	if (mc->bev != NULL)
		bufferevent_decref(mc->bev);
	event_free(mc->deadline);
	free(mc);
}

/*
 * Log the connections refused since the last such line, at most once a
 * second: a crowd of them would otherwise fill the log.
 */
static void
metrics_log_refused(struct metrics *m)
{
	if (m->refused_logged != 0 && util_elapsed(&m->refused_log) < 1)
		return;
	log_warnx("metrics: %llu connection%s refused: "
	    "metrics_max_connections (%u) are open",
	    m->refused - m->refused_logged, m->refused - m->refused_logged ==
	    1 ? "" : "s", m->server->lim.metrics_max_connections);
	m->refused_logged = m->refused;
	util_now(&m->refused_log);
}

/*
 * The first time, right after the listener's callback: take up the
 * connection evhttp made around the bufferevent (the argument of its
 * callbacks), close it if it was refused, and give it metrics_timeout.
 * After that, the connection took metrics_timeout over a request and
 * its response: close it.
 */
static void
metrics_deadline_cb(int fd, short events, void *arg)
{
	struct metrics_conn		*mc = arg;
	struct metrics			*m = mc->m;
	struct evhttp_connection	*evcon;
	struct timeval			 tv;
	void				*cbarg;

	if (mc->evcon != NULL) {
		log_debug("metrics: a connection closed after "
		    "metrics_timeout (%gs)", m->server->lim.metrics_timeout);
		evhttp_connection_free(mc->evcon);	/* and mc */
		return;
	}
	bufferevent_getcb(mc->bev, NULL, NULL, NULL, &cbarg);
	evcon = cbarg;
	if (evcon == NULL || evhttp_connection_get_bufferevent(evcon) !=
	    mc->bev) {
		/* evhttp could not make it, and freed the bufferevent */
		metrics_conn_free(mc);
		return;
	}
	bufferevent_decref(mc->bev);
	mc->bev = NULL;
	mc->evcon = evcon;
	evhttp_connection_set_closecb(evcon, metrics_close_cb, mc);
	if (mc->refused) {
		metrics_log_refused(m);
		evhttp_connection_free(evcon);		/* and mc */
		return;
	}
	util_timeval(m->server->lim.metrics_timeout, &tv);
	evtimer_add(mc->deadline, &tv);
}

/* A connection is closed, by evhttp or by us: forget it. */
static void
metrics_close_cb(struct evhttp_connection *evcon, void *arg)
{
	metrics_conn_free(arg);
}

/*
 * A response is written whole, and a connection kept alive waits for
 * its next request: that one has metrics_timeout from now.
 */
static void
metrics_complete_cb(struct evhttp_request *req, void *arg)
{
	struct metrics			*m = arg;
	struct evhttp_connection	*evcon = evhttp_request_get_connection(req);
	struct metrics_conn		*mc;
	struct timeval			 tv;

	TAILQ_FOREACH(mc, &m->conns, entry) {
		if (mc->evcon != evcon)
			continue;
		util_timeval(m->server->lim.metrics_timeout, &tv);
		evtimer_add(mc->deadline, &tv);
		return;
	}
}

/*
 * accept failed (EMFILE and the like): pause for a second, not spin.
 * evhttp gives the listener's callbacks its own argument, so the server
 * is found by its listener.
 */
static void
metrics_accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct metrics	*m;

	LIST_FOREACH(m, &metrics_all, entry) {
		if (m->evl != evl)
			continue;
		log_warn("metrics: accept on %s; pausing for %ds", m->bound,
		    ACCEPT_RETRY_SECONDS);
		util_accept_pause(evl, m->retry);
		return;
	}
}

/* Accept again, after a pause or a burst. */
static void
metrics_retry_cb(int fd, short events, void *arg)
{
	struct metrics	*m = arg;

	evconnlistener_enable(m->evl);
}

/* A request: GET /metrics, or 404. */
static void
metrics_request_cb(struct evhttp_request *req, void *arg)
{
	struct metrics		*m = arg;
	struct evkeyvalq	*out = evhttp_request_get_output_headers(req);
	const char		*path;
	struct evbuffer		*b;

	evhttp_request_set_on_complete_cb(req, metrics_complete_cb, m);
	path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if (path == NULL || strcmp(path, "/metrics") != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, NULL);
		return;
	}
	if ((b = evbuffer_new()) == NULL)
		fatal("%s", __func__);
	if (metrics_render(m, b) == -1) {
		log_warnx("metrics: the response passes %zu bytes; not sent",
		    m->server->lim.metrics_max_response);
		evbuffer_free(b);
		evhttp_send_error(req, HTTP_INTERNAL, "Response too large");
		return;
	}
	evhttp_add_header(out, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}

/* The address a socket is bound to, as ADDRESS:PORT or [ADDRESS]:PORT. */
static void
metrics_bound(int fd, char *buf, size_t len)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)(void *)&ss;
	socklen_t		 sslen = sizeof(ss);
	char			 host[INET6_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1) {
		snprintf(buf, len, "(unknown)");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
	}
}

/*
 * A listening socket at addr: a unix socket at its path, mode 0666 (what
 * a port on the loopback gives every local user), or TCP at
 * ADDRESS:PORT.  -1 (logged) if there is none.
 */
static int
metrics_listen(struct metrics *m, const char *addr)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 err[256];
	int			 fd, on = 1;

	if (m->path != NULL) {
		if ((fd = util_unix_listen_as(m->path, 0666, (uid_t)-1,
		    (gid_t)-1, err, sizeof(err))) == -1)
			log_warnx("metrics: cannot listen on %s: %s", m->path,
			    err);
		snprintf(m->bound, sizeof(m->bound), "%s", m->path);
		return (fd);
	}
	if (util_parse_hostport(addr, &ss, &sslen) == -1) {
		log_warnx("metrics: %s: not an ADDRESS:PORT", addr);
		return (-1);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on,
	    sizeof(on)) == -1 || (ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) ==
	    -1) || bind(fd, (struct sockaddr *)&ss, sslen) == -1 ||
	    listen(fd, 16) == -1) {
		log_warn("metrics: cannot listen on %s", addr);
		if (fd != -1)
			close(fd);
		return (-1);
	}
	metrics_bound(fd, m->bound, sizeof(m->bound));
	return (fd);
}

/*
 * Serve the metrics of s at addr, as the key metrics takes it: a unix
 * socket's path, or ADDRESS:PORT, where port 0 is any free one, logged.
 * NULL (logged) if it cannot listen there.
 */
struct metrics *
metrics_new(struct server *s, const char *addr)
{
	struct metrics			*m;
	struct evhttp_bound_socket	*bs;
	int				 fd;

	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->addr = strdup(addr)) == NULL)
		fatal("%s", __func__);
	m->server = s;
	m->path = util_addr_path(m->addr);
	TAILQ_INIT(&m->conns);
	if ((fd = metrics_listen(m, addr)) == -1) {
		free(m->addr);
		free(m);
		return (NULL);
	}
	if ((m->http = evhttp_new(s->base)) == NULL ||
	    (m->retry = evtimer_new(s->base, metrics_retry_cb, m)) == NULL)
		fatalx("%s: out of memory", __func__);
	metrics_limits(m);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET |
	    EVHTTP_REQ_HEAD);
	evhttp_set_gencb(m->http, metrics_request_cb, m);
	evhttp_set_bevcb(m->http, metrics_accept_cb, m);
	if ((bs = evhttp_accept_socket_with_handle(m->http, fd)) == NULL)
		fatalx("%s: evhttp_accept_socket_with_handle failed",
		    __func__);
	m->evl = evhttp_bound_socket_get_listener(bs);
	evconnlistener_set_error_cb(m->evl, metrics_accept_error_cb);
	LIST_INSERT_HEAD(&metrics_all, m, entry);
	log_info("metrics: listening on %s", m->bound);
	return (m);
}

/* The address the metrics were configured with. */
const char *
metrics_addr(const struct metrics *m)
{
	return (m->addr);
}

/* Stop serving, closing every connection; NULL is allowed. */
void
metrics_free(struct metrics *m)
{
	struct metrics_conn	*mc;

	if (m == NULL)
		return;
	LIST_REMOVE(m, entry);
	evhttp_free(m->http);		/* each connection's mc too */
	/* accepted this turn of the loop, not yet taken up */
	while ((mc = TAILQ_FIRST(&m->conns)) != NULL)
		metrics_conn_free(mc);
	event_free(m->retry);
	if (m->path != NULL)
		unlink(m->path);
	log_info("metrics: no longer listening on %s", m->bound);
	free(m->addr);
	free(m);
}

/*
 * Apply the [global] bounds, at the start and at each reload: a
 * connection open already keeps the deadline it was given.
 */
void
metrics_limits(struct metrics *m)
{
	const struct conf_limits	*lim = &m->server->lim;
	struct timeval			 tv;

	util_timeval(lim->metrics_timeout, &tv);
	evhttp_set_timeout_tv(m->http, &tv);
	evhttp_set_max_headers_size(m->http, lim->metrics_max_request);
}
