/*
 * The metrics: qmpmuxd in front of a real QEMU with --metrics on a
 * port of the kernel's choosing, scraped over plain sockets while
 * commands and events flow.  Every scrape must parse as the Prometheus
 * text format (version 0.0.4), by the parser below; the counters move
 * with the traffic, and the histogram counts every command answered.
 * The key's values, a reload that moves the address (a unix socket's
 * path among them), 404, and the scrapers' bounds: the cap on
 * connections open at once, counted from their accept, the time a
 * request may take however slowly it comes, and a pause, not a spin,
 * when accept runs out of descriptors.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "testlib.h"

#define MAX_SAMPLES	1024
#define MAX_CONNS	3	/* metrics_max_connections, as set below */

/* One sample of a scrape: its name, its labels as written, its value. */
struct sample {
	char	*name;
	char	*labels;	/* between the braces; "" without */
	double	 value;
};

/* A parsed scrape. */
struct scrape {
	char		*text;
	struct sample	 s[MAX_SAMPLES];
	int		 n;
};

/* Whether name is a metric name: [a-zA-Z_:][a-zA-Z0-9_:]*. */
static int
valid_name(const char *p, size_t len)
{
	size_t	 i;

	if (len == 0 || !(isalpha((unsigned char)p[0]) || p[0] == '_' ||
	    p[0] == ':'))
		return (0);
	for (i = 1; i < len; i++) {
		if (!(isalnum((unsigned char)p[i]) || p[i] == '_' ||
		    p[i] == ':'))
			return (0);
	}
	return (1);
}

/*
 * The labels of a sample, from just after '{': name="value" pairs
 * separated by commas, values escaped as the format says (\\, \", \n
 * and nothing else).  Returns the end, just after '}', or NULL.
 */
static const char *
parse_labels(const char *p, int *has_le)
{
	const char	*q;

	*has_le = 0;
	if (*p == '}')
		return (p + 1);
	for (;;) {
		q = p;
		if (!(isalpha((unsigned char)*q) || *q == '_'))
			return (NULL);
		while (isalnum((unsigned char)*q) || *q == '_')
			q++;
		if (q - p == 2 && strncmp(p, "le", 2) == 0)
			*has_le = 1;
		if (q[0] != '=' || q[1] != '"')
			return (NULL);
		for (q += 2; *q != '"'; q++) {
			if (*q == '\0' || *q == '\n')
				return (NULL);
			if (*q == '\\') {
				q++;
				if (*q != '\\' && *q != '"' && *q != 'n')
					return (NULL);
			}
		}
		q++;
		if (*q == '}')
			return (q + 1);
		if (*q != ',')
			return (NULL);
		p = q + 1;
	}
}

/* A sample's value: a float, +Inf, -Inf or NaN. */
static int
parse_value(const char *p, double *v)
{
	char	*end;

	if (strcmp(p, "+Inf") == 0) {
		*v = INFINITY;
		return (0);
	}
	if (strcmp(p, "-Inf") == 0) {
		*v = -INFINITY;
		return (0);
	}
	if (strcmp(p, "NaN") == 0) {
		*v = NAN;
		return (0);
	}
	errno = 0;
	*v = strtod(p, &end);
	return (end == p || *end != '\0' || errno != 0 ? -1 : 0);
}

/*
 * Parse text as the exposition format: every line a HELP or TYPE
 * comment, another comment, or a sample; the samples of a family
 * together, after its TYPE, which comes once; a histogram's samples
 * NAME_bucket (with le), NAME_sum and NAME_count.  Fails the test at
 * the first line that is not so.
 */
static void
parse(struct scrape *sc, char *text)
{
	char		*line, *next, *sp, family[256] = "", type[32] = "";
	char		 seen[64][256];
	const char	*p, *lend;
	size_t		 nlen, flen;
	int		 nseen = 0, lineno = 0, i, has_le;

	sc->text = text;
	sc->n = 0;
	ck_assert_msg(*text != '\0' && text[strlen(text) - 1] == '\n',
	    "the scrape does not end with a newline");
	for (line = text; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		*next++ = '\0';
		lineno++;
		if (strncmp(line, "# HELP ", 7) == 0 ||
		    strncmp(line, "# TYPE ", 7) == 0) {
			p = line + 7;
			sp = strchr(p, ' ');
			ck_assert_msg(sp != NULL && valid_name(p,
			    (size_t)(sp - p)), "line %d: %s", lineno, line);
			if (line[2] == 'H')
				continue;
			ck_assert_msg(strcmp(sp + 1, "counter") == 0 ||
			    strcmp(sp + 1, "gauge") == 0 ||
			    strcmp(sp + 1, "histogram") == 0 ||
			    strcmp(sp + 1, "summary") == 0 ||
			    strcmp(sp + 1, "untyped") == 0,
			    "line %d: a TYPE of no type: %s", lineno, line);
			snprintf(family, sizeof(family), "%.*s",
			    (int)(sp - p), p);
			snprintf(type, sizeof(type), "%s", sp + 1);
			for (i = 0; i < nseen; i++)
				ck_assert_msg(strcmp(seen[i], family) != 0,
				    "line %d: a second TYPE of %s", lineno,
				    family);
			ck_assert_int_lt(nseen, 64);
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", family);
			continue;
		}
		if (line[0] == '#')
			continue;
		/* a sample: name{labels} value */
		for (p = line; *p != '\0' && *p != '{' && *p != ' '; p++)
			;
		nlen = (size_t)(p - line);
		ck_assert_msg(valid_name(line, nlen), "line %d: bad name: %s",
		    lineno, line);
		lend = p;
		has_le = 0;
		if (*p == '{') {
			lend = parse_labels(p + 1, &has_le);
			ck_assert_msg(lend != NULL, "line %d: bad labels: %s",
			    lineno, line);
		}
		ck_assert_msg(*lend == ' ', "line %d: no value: %s", lineno,
		    line);
		ck_assert_int_lt(sc->n, MAX_SAMPLES);
		ck_assert_msg(parse_value(lend + 1, &sc->s[sc->n].value) == 0,
		    "line %d: bad value: %s", lineno, line);
		/* its family is the last TYPE'd one */
		flen = strlen(family);
		ck_assert_msg(*family != '\0', "line %d: a sample before any "
		    "TYPE: %s", lineno, line);
		if (strcmp(type, "histogram") == 0) {
			ck_assert_msg(nlen > flen && strncmp(line, family,
			    flen) == 0 && ((strncmp(line + flen, "_bucket",
			    nlen - flen) == 0 && nlen - flen == 7 && has_le) ||
			    (nlen - flen == 4 && strncmp(line + flen, "_sum",
			    4) == 0) || (nlen - flen == 6 &&
			    strncmp(line + flen, "_count", 6) == 0)),
			    "line %d: not a sample of histogram %s: %s",
			    lineno, family, line);
		} else
			ck_assert_msg(nlen == flen && strncmp(line, family,
			    flen) == 0, "line %d: not a sample of %s: %s",
			    lineno, family, line);
		sc->s[sc->n].name = strndup(line, nlen);
		sc->s[sc->n].labels = *p == '{' ? strndup(p + 1,
		    (size_t)(lend - p - 2)) : strdup("");
		for (i = 0; i < sc->n; i++)
			ck_assert_msg(strcmp(sc->s[i].name,
			    sc->s[sc->n].name) != 0 || strcmp(sc->s[i].labels,
			    sc->s[sc->n].labels) != 0, "line %d: a series "
			    "given twice: %s", lineno, line);
		sc->n++;
	}
}

/* Free what parse made. */
static void
scrape_free(struct scrape *sc)
{
	int	 i;

	for (i = 0; i < sc->n; i++) {
		free(sc->s[i].name);
		free(sc->s[i].labels);
	}
	free(sc->text);
	free(sc);
}

/* The value of the series name{labels}, which must be there. */
static double
get(const struct scrape *sc, const char *name, const char *labels)
{
	int	 i;

	for (i = 0; i < sc->n; i++) {
		if (strcmp(sc->s[i].name, name) == 0 &&
		    strcmp(sc->s[i].labels, labels) == 0)
			return (sc->s[i].value);
	}
	ck_abort_msg("no series %s{%s}", name, labels);
	return (0);
}

/* Connect to 127.0.0.1:port, or [::1]:port; -1 if refused. */
static int
tcp_connect(int family, int port)
{
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	int			 fd, r;

	ck_assert_int_ne(fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0),
	    -1);
	if (family == AF_INET) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		r = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	} else {
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons((uint16_t)port);
		sin6.sin6_addr = in6addr_loopback;
		r = connect(fd, (struct sockaddr *)&sin6, sizeof(sin6));
	}
	if (r == -1) {
		close(fd);
		return (-1);
	}
	return (fd);
}

/* Connect to the unix socket at path. */
static int
unix_connect(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert_int_lt(strlen(path), sizeof(sun.sun_path));
	strcpy(sun.sun_path, path);
	ck_assert_int_ne(fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0),
	    -1);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0,
	    "connect to %s: %s", path, strerror(errno));
	return (fd);
}

/*
 * Wait up to ms for the peer to close fd, reading nothing: the time it
 * took, or -1 if it is still open.  Bytes that come fail the test.
 */
static long long
wait_closed(int fd, int ms)
{
	struct pollfd	 pfd;
	long long	 t0 = t_clock_ms(), left;
	char		 buf[256];
	ssize_t		 n;

	while ((left = t0 + ms - t_clock_ms()) > 0) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		if (n == 0 || (n == -1 && errno == ECONNRESET))
			return (t_clock_ms() - t0);
		ck_assert_msg(n == -1, "%zd bytes on a connection that should "
		    "close: %.*s", n, (int)n, buf);
	}
	return (-1);
}

/* Lower pid's RLIMIT_NOFILE to n, soft and hard. */
static void
set_nofile(pid_t pid, int n)
{
	struct rlimit	 rl = { (rlim_t)n, (rlim_t)n };

	ck_assert_msg(prlimit(pid, RLIMIT_NOFILE, &rl, NULL) == 0,
	    "prlimit: %s", strerror(errno));
}

/* Send a request for path on fd. */
static void
http_send(int fd, const char *method, const char *path, int keep)
{
	char	 req[512];
	int	 n;

	n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: test\r\n"
	    "%s\r\n", method, path, keep ? "" : "Connection: close\r\n");
	ck_assert_int_eq(write(fd, req, (size_t)n), n);
}

/*
 * Read one response from fd within ms: its status (-1 if none came)
 * and its body, of Content-Length bytes, in *body.
 */
static int
http_read(int fd, char **body, int ms)
{
	struct pollfd	 pfd;
	long long	 end = t_clock_ms() + ms;
	char		*buf = NULL, *hend, *cl;
	size_t		 len = 0, size = 0, hlen, blen = 0;
	ssize_t		 n;
	int		 status = -1, left;

	*body = NULL;
	for (;;) {
		if (buf != NULL && (hend = strstr(buf, "\r\n\r\n")) != NULL) {
			hlen = (size_t)(hend - buf) + 4;
			cl = strcasestr(buf, "\r\nContent-Length: ");
			ck_assert_msg(cl != NULL && cl < hend,
			    "no Content-Length: %s", buf);
			blen = strtoul(cl + 18, NULL, 10);
			if (len >= hlen + blen) {
				ck_assert_int_eq(sscanf(buf, "HTTP/1.1 %d",
				    &status), 1);
				*body = strndup(buf + hlen, blen);
				break;
			}
		}
		if ((left = (int)(end - t_clock_ms())) <= 0)
			break;
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, left) <= 0)
			continue;
		if (size - len < 65537) {
			size = size * 2 + 65537;
			ck_assert_ptr_nonnull(buf = realloc(buf, size));
		}
		if ((n = read(fd, buf + len, size - len - 1)) <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
	}
	free(buf);
	return (status);
}

/* GET /metrics on the connection fd, which it closes, and parse it. */
static struct scrape *
scrape_on(int fd)
{
	struct scrape	*sc;
	char		*body;

	http_send(fd, "GET", "/metrics", 0);
	ck_assert_int_eq(http_read(fd, &body, T_WAIT_MS), 200);
	close(fd);
	ck_assert_ptr_nonnull(sc = calloc(1, sizeof(*sc)));
	parse(sc, body);
	return (sc);
}

/* GET /metrics at port and parse it. */
static struct scrape *
scrape(int family, int port)
{
	int	 fd;

	ck_assert_msg((fd = tcp_connect(family, port)) != -1,
	    "connect to port %d: %s", port, strerror(errno));
	return (scrape_on(fd));
}

/* The port of the nth documented line "metrics: listening on ADDR:". */
static int
metrics_port(const char *addr, int nth)
{
	char	 text[128];
	long	 port;

	snprintf(text, sizeof(text), "metrics: listening on %s:", addr);
	ck_assert_msg(t_wait_log_n("qmpmuxd.log", text, nth, T_WAIT_MS) == 0,
	    "no line \"%s\" in %s/qmpmuxd.log", text, t_dir());
	ck_assert_int_eq(t_log_scan("qmpmuxd.log", text, nth, NULL, &port),
	    nth);
	ck_assert(port > 0 && port < 65536);
	return ((int)port);
}

/* The histogram of VM test: cumulative buckets, +Inf equal to _count. */
static double
check_histogram(const struct scrape *sc)
{
	static const char	*le[] = { "0.0005", "0.001", "0.0025", "0.005",
	    "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
	    "10", "30", "+Inf" };
	char			 labels[64];
	double			 prev = 0, v, count;
	size_t			 i;

	for (i = 0; i < sizeof(le) / sizeof(le[0]); i++) {
		snprintf(labels, sizeof(labels), "vm=\"test\",le=\"%s\"", le[i]);
		v = get(sc, "qmpmux_command_duration_seconds_bucket", labels);
		ck_assert_msg(v >= prev, "bucket le=%s %g below %g", le[i], v,
		    prev);
		prev = v;
	}
	count = get(sc, "qmpmux_command_duration_seconds_count", "vm=\"test\"");
	ck_assert_double_eq(prev, count);
	return (count);
}

/*
 * Scrapes during traffic: 20 commands, then a stop and a cont with
 * their events, each scrape parsed whole, the counters moved by just
 * what was sent and answered, and the histogram counting every
 * command answered.
 */
START_TEST(test_metrics_traffic)
{
	const char	*opts[] = { "--metrics", "127.0.0.1:0", NULL };
	struct t_client	*a, *b;
	struct scrape	*s1, *s2;
	const char	*vm = "vm=\"test\"";
	char		*m;
	int		 port, i;
	double		 start;

	t_start_qemu(opts);
	port = metrics_port("127.0.0.1", 1);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	for (i = 0; i < 20; i++) {
		m = t_cmd(a, "{\"execute\":\"query-status\",\"id\":%d}", i);
		ck_assert_ptr_nonnull(m);
		free(m);
	}
	s1 = scrape(AF_INET, port);
	ck_assert_double_eq(get(s1, "qmpmux_vms", ""), 1);
	start = get(s1, "process_start_time_seconds", "");
	ck_assert(start <= (double)time(NULL) + 1 &&
	    start > (double)time(NULL) - 60);
	ck_assert_double_eq(get(s1, "qmpmux_max_total_queued_bytes", ""),
	    1 << 30);
	ck_assert_double_eq(get(s1, "qmpmux_commands_total", vm), 20);
	ck_assert_double_eq(get(s1, "qmpmux_replies_total", vm), 20);
	ck_assert_double_eq(get(s1, "qmpmux_vm_up", vm), 1);
	ck_assert_double_eq(get(s1, "qmpmux_vm_stalled", vm), 0);
	ck_assert_double_eq(get(s1, "qmpmux_clients", vm), 2);
	ck_assert_double_eq(get(s1, "qmpmux_clients_total", vm), 2);
	ck_assert_double_eq(get(s1, "qmpmux_commands_in_flight", vm), 0);
	ck_assert_double_eq(get(s1, "qmpmux_commands_queued", vm), 0);
	ck_assert_double_eq(get(s1, "qmpmux_command_timeouts_total",
	    "vm=\"test\",when=\"sent\""), 0);
	ck_assert_double_eq(check_histogram(s1), 20);
	ck_assert_double_gt(get(s1, "qmpmux_command_duration_seconds_sum",
	    vm), 0);
	ck_assert_double_gt(get(s1, "qmpmux_upstream_bytes_total",
	    "vm=\"test\",direction=\"to_qemu\""), 20 * 30);

	/* stop and cont: two commands, and QEMU's STOP and RESUME events */
	m = t_cmd(a, "{\"execute\":\"stop\",\"id\":\"s\"}");
	ck_assert_msg(m != NULL && strstr(m, "\"return\"") != NULL, "%s", m);
	free(m);
	m = t_cmd(a, "{\"execute\":\"cont\",\"id\":\"c\"}");
	ck_assert_msg(m != NULL && strstr(m, "\"return\"") != NULL, "%s", m);
	free(m);
	/* b sees both events, so qmpmuxd has read them */
	for (i = 0; i < 2; i++) {
		m = t_recv(b, T_WAIT_MS);
		ck_assert_msg(m != NULL && strstr(m, i == 0 ?
		    "\"event\": \"STOP\"" : "\"event\": \"RESUME\"") != NULL,
		    "expected an event: %s", m);
		free(m);
	}
	s2 = scrape(AF_INET, port);
	ck_assert_double_eq(get(s2, "qmpmux_commands_total", vm), 22);
	ck_assert_double_eq(get(s2, "qmpmux_replies_total", vm), 22);
	ck_assert_double_eq(get(s2, "qmpmux_events_total", vm) -
	    get(s1, "qmpmux_events_total", vm), 2);
	ck_assert_double_gt(get(s2, "qmpmux_event_bytes_total", vm),
	    get(s1, "qmpmux_event_bytes_total", vm) + 2 * 60);
	ck_assert_double_gt(get(s2, "qmpmux_upstream_bytes_total",
	    "vm=\"test\",direction=\"from_qemu\""),
	    get(s1, "qmpmux_upstream_bytes_total",
	    "vm=\"test\",direction=\"from_qemu\""));
	ck_assert_double_gt(get(s2, "qmpmux_upstream_bytes_total",
	    "vm=\"test\",direction=\"to_qemu\""),
	    get(s1, "qmpmux_upstream_bytes_total",
	    "vm=\"test\",direction=\"to_qemu\""));
	ck_assert_double_eq(check_histogram(s2), 22);
	ck_assert_double_ge(get(s2, "qmpmux_command_duration_seconds_sum",
	    vm), get(s1, "qmpmux_command_duration_seconds_sum", vm));
	printf("metrics: %d series in a scrape\n", s2->n);
	scrape_free(s1);
	scrape_free(s2);
	t_client_free(a);
	t_client_free(b);
}
END_TEST

/*
 * A command that times out after it was sent to a stopped QEMU is a
 * timeout, and the VM stalled; its late reply is no round trip: the
 * histogram does not count it.
 */
START_TEST(test_metrics_stalled)
{
	const char	*opts[] = { "--metrics", "127.0.0.1:0",
	    "--command-timeout", "1", NULL };
	const char	*vm = "vm=\"test\"";
	struct t_client	*a;
	struct scrape	*sc;
	char		*m;
	int		 port;
	long		 held;

	t_start_qemu(opts);
	port = metrics_port("127.0.0.1", 1);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	free(t_cmd(a, "{\"execute\":\"query-status\"}"));
	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	ck_assert_int_ge(held = t_unread(t_qsock), 0);
	t_send(a, "{\"execute\":\"query-status\",\"id\":\"s\"}\n");
	ck_assert_int_eq(t_wait_unread(t_qsock, held, T_WAIT_MS), 0);
	sc = scrape(AF_INET, port);
	ck_assert_double_eq(get(sc, "qmpmux_commands_in_flight", vm), 1);
	ck_assert_double_eq(check_histogram(sc), 1);
	scrape_free(sc);
	m = t_recv(a, T_WAIT_MS);
	ck_assert_msg(m != NULL && strstr(m, "may still complete") != NULL,
	    "%s", m);
	free(m);
	sc = scrape(AF_INET, port);
	ck_assert_double_eq(get(sc, "qmpmux_vm_stalled", vm), 1);
	ck_assert_double_eq(get(sc, "qmpmux_vm_up", vm), 1);
	ck_assert_double_eq(get(sc, "qmpmux_command_timeouts_total",
	    "vm=\"test\",when=\"sent\""), 1);
	scrape_free(sc);
	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "vm test: late reply to "
	    "query-status after ", T_WAIT_MS), 0);
	sc = scrape(AF_INET, port);
	ck_assert_double_eq(get(sc, "qmpmux_vm_stalled", vm), 0);
	ck_assert_double_eq(get(sc, "qmpmux_late_replies_dropped_total", vm),
	    1);
	ck_assert_double_eq(get(sc, "qmpmux_replies_total", vm), 1);
	ck_assert_double_eq(check_histogram(sc), 1);
	scrape_free(sc);
	t_client_free(a);
}
END_TEST

/*
 * Any path but /metrics is 404; at most MAX_CONNS connections are open
 * at once, one more is closed unanswered, and a new one is served once
 * one of them closes.
 */
START_TEST(test_metrics_http)
{
	const char	*opts[] = { "--metrics", "[::1]:0",
			    "--metrics-max-connections", T_STR(MAX_CONNS), NULL };
	int		 port, fd[MAX_CONNS + 1], i, base;
	char		*body;

	t_start_qemu(opts);
	port = metrics_port("[::1]", 1);
	/* its fds with no scraper, once the connection to QEMU is made */
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", ": upstream ready: ",
	    T_WAIT_MS), 0);
	base = t_proc_fds(t_proxy_pid, NULL);
	/* evhttp closes the connection after an error */
	for (i = 0; i < 2; i++) {
		ck_assert_int_ne(fd[0] = tcp_connect(AF_INET6, port), -1);
		http_send(fd[0], "GET", i == 0 ? "/" : "/metrics/x", 1);
		ck_assert_int_eq(http_read(fd[0], &body, T_WAIT_MS), 404);
		free(body);
		close(fd[0]);
	}
	/* kept alive: the same connection, counted once */
	for (i = 0; i < MAX_CONNS; i++) {
		ck_assert_int_ne(fd[i] = tcp_connect(AF_INET6, port), -1);
		http_send(fd[i], "GET", "/metrics", 1);
		ck_assert_int_eq(http_read(fd[i], &body, T_WAIT_MS), 200);
		free(body);
	}
	http_send(fd[0], "GET", "/metrics", 1);
	ck_assert_int_eq(http_read(fd[0], &body, T_WAIT_MS), 200);
	free(body);
	/* one more is closed, unanswered, while MAX_CONNS are open */
	ck_assert_int_ne(fd[MAX_CONNS] = tcp_connect(AF_INET6, port), -1);
	http_send(fd[MAX_CONNS], "GET", "/metrics", 1);
	ck_assert_int_ge(wait_closed(fd[MAX_CONNS], T_WAIT_MS), 0);
	close(fd[MAX_CONNS]);
	/* one of them goes (qmpmuxd has seen it go): the next is served */
	/* the closed ones (the 404s, the refused) are gone by then too */
	t_wait_fds(t_proxy_pid, base + MAX_CONNS);
	close(fd[0]);
	t_wait_fds(t_proxy_pid, base + MAX_CONNS - 1);
	ck_assert_int_ne(fd[0] = tcp_connect(AF_INET6, port), -1);
	http_send(fd[0], "GET", "/metrics", 1);
	ck_assert_int_eq(http_read(fd[0], &body, T_WAIT_MS), 200);
	ck_assert_ptr_nonnull(strstr(body, "# TYPE qmpmux_vms gauge\n"));
	free(body);
	for (i = 0; i < MAX_CONNS; i++)
		close(fd[i]);
	ck_assert(t_proxy_alive());
}
END_TEST

/* The values --metrics refuses, with the key's error, and exit 1. */
START_TEST(test_metrics_bad_values)
{
	static const char *bad[] = { "localhost:9100", "1.2.3.4", "[::1]",
	    "::1:9100", "1.2.3.4:65536", "1.2.3.4:", "[::1]9100",
	    "1.2.3.4:-1", "1.2.3.4:+80", "[1.2.3.4]:80", "1.2.3:80", "",
	    "unix:", "unix:metrics.sock", "metrics.sock" };
	char		*up = t_path("q.sock"), *ls = t_path("p.sock");
	char		 want[256];
	size_t		 i;
	pid_t		 pid;
	int		 status;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pid = t_spawn_split((const char *[]){ t_bin("QMPMUXD"), "-d",
		    "--metrics", bad[i], "--upstream", up, "--listen", ls,
		    NULL }, "bad.out", "bad.err");
		status = t_wait_exit(pid, T_WAIT_MS);
		ck_assert_msg(t_exited(status, 1), "--metrics %s: status %d",
		    bad[i], status);
		snprintf(want, sizeof(want), "qmpmuxd: --metrics %s: expected ",
		    bad[i]);
		ck_assert_msg(t_log_count("bad.err", want) == 1 || (*bad[i] ==
		    '\0' && t_log_count("bad.err", "qmpmuxd: --metrics") == 1),
		    "--metrics %s: no \"%s\" in %s/bad.err", bad[i], want,
		    t_dir());
	}
	free(up);
	free(ls);
}
END_TEST

/* Write the config file: the key metrics = addr, and VM test. */
static void
write_conf(const char *conf, const char *addr)
{
	FILE	*f;

	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	fprintf(f, "[global]\nmetrics = %s\n[vm test]\nupstream = "
	    "connect:%s\n[listener test %s]\n", addr, t_qsock, t_psock);
	fclose(f);
}

/*
 * A reload that changes the key listens on the new address and closes
 * the old one; one that leaves it alone leaves the socket alone.  A
 * unix socket's path is listened on with mode 0666 and removed when the
 * key moves on.
 */
START_TEST(test_metrics_reload)
{
	char		*conf = t_path("qmpmuxd.conf");
	char		*msock = t_path("metrics.sock"), addr[256], want[320];
	struct stat	 st;
	int		 port, port6;
	struct scrape	*sc;

	write_conf(conf, "127.0.0.1:0");
	t_qemu_pid = t_qemu(t_qsock);
	t_proxy_pid = t_spawn((const char *[]){ t_bin("QMPMUXD"), "-d", "-f",
	    conf, NULL }, "qmpmuxd.log");
	ck_assert_int_eq(t_wait_socket(t_psock, T_WAIT_MS), 0);
	port = metrics_port("127.0.0.1", 1);
	/* unchanged: the same socket */
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "reloaded: ", T_WAIT_MS),
	    0);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "metrics: listening on"),
	    1);
	sc = scrape(AF_INET, port);
	scrape_free(sc);

	/* to a unix socket */
	snprintf(addr, sizeof(addr), "unix:%s", msock);
	write_conf(conf, addr);
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	ck_assert_int_eq(t_wait_log_n("qmpmuxd.log", "reloaded: ", 2,
	    T_WAIT_MS), 0);
	snprintf(want, sizeof(want), "metrics: listening on %s\n", msock);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", want), 1);
	ck_assert_int_eq(stat(msock, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0666);
	sc = scrape_on(unix_connect(msock));
	ck_assert_double_eq(get(sc, "qmpmux_vms", ""), 1);
	scrape_free(sc);
	ck_assert_int_eq(tcp_connect(AF_INET, port), -1);
	ck_assert_int_eq(errno, ECONNREFUSED);

	/* to TCP again: the path is removed */
	write_conf(conf, "[::1]:0");
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	port6 = metrics_port("[::1]", 1);
	ck_assert_int_eq(t_wait_log_n("qmpmuxd.log", "reloaded: ", 3,
	    T_WAIT_MS), 0);
	sc = scrape(AF_INET6, port6);
	ck_assert_double_eq(get(sc, "qmpmux_vms", ""), 1);
	scrape_free(sc);
	ck_assert_int_eq(stat(msock, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
	free(conf);
	free(msock);
}
END_TEST

/* A request of n bytes of headers on fd: GET /metrics, padded. */
static void
http_send_padded(int fd, size_t n)
{
	char	 req[1024];
	size_t	 len;

	len = (size_t)snprintf(req, sizeof(req), "GET /metrics HTTP/1.1\r\n"
	    "Host: test\r\nConnection: close\r\nX-Pad: ");
	ck_assert(n > len + 4 && n < sizeof(req));
	memset(req + len, 'x', n - len - 4);
	memcpy(req + n - 4, "\r\n\r\n", 4);
	ck_assert_int_eq(write(fd, req, n), (ssize_t)n);
}

/*
 * The scrapers' bounds, at their edges: headers of metrics_max_request
 * bytes are served and longer ones are not; a connection that sends
 * nothing is closed after metrics_timeout; a response that would pass
 * metrics_max_response is a 500 and a line in the log.
 */
START_TEST(test_metrics_limits)
{
	const char	*opts[] = { "--metrics", "127.0.0.1:0",
			    "--metrics-max-request", "300",
			    "--metrics-timeout", "0.5",
			    "--metrics-max-response", "700", NULL };
	long long	 t0, took;
	char		*body, buf[64];
	int		 port, fd, status;

	t_start_qemu(opts);
	port = metrics_port("127.0.0.1", 1);

	/*
	 * evhttp counts the request line and the headers without their
	 * line ends, five here: 310 bytes are 300 and are read (to find
	 * the response too large), 311 are not.
	 */
	ck_assert_int_ne(fd = tcp_connect(AF_INET, port), -1);
	http_send_padded(fd, 310);
	status = http_read(fd, &body, T_WAIT_MS);
	ck_assert_int_eq(status, 500);
	free(body);
	close(fd);
	ck_assert_int_ne(fd = tcp_connect(AF_INET, port), -1);
	http_send_padded(fd, 311);
	status = http_read(fd, &body, T_WAIT_MS);
	ck_assert_msg(status != 200 && status != 500, "311 bytes of request: "
	    "status %d", status);
	free(body);
	close(fd);

	/* 700 bytes cannot hold one VM's series: 500, and the log says */
	ck_assert(t_wait_log("qmpmuxd.log", "metrics: the response passes "
	    "700 bytes; not sent", T_WAIT_MS) == 0);

	/* silent: closed after half a second */
	ck_assert_int_ne(fd = tcp_connect(AF_INET, port), -1);
	t0 = t_clock_ms();
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 0);
	took = t_clock_ms() - t0;
	printf("metrics: a silent scraper was closed after %lld ms\n", took);
	ck_assert_msg(took >= 400 && took < 5000, "closed after %lld ms",
	    took);
	close(fd);
	ck_assert(t_proxy_alive());
}
END_TEST

/*
 * Connections count from their accept, and a request has
 * metrics_timeout in all, however slowly it comes.  With a cap of 2,
 * two scrapers that never finish a request hold both places; a third is
 * closed at once, unanswered, counted and logged.  The two send a byte
 * every 100 ms, so no read waits long, and are closed after 1 s all the
 * same; then a scrape is served.  The time starts again at the end of
 * each response: a connection kept alive that asks every 400 ms is
 * served for longer than 1 s.
 */
START_TEST(test_metrics_slow)
{
	const char	*opts[] = { "--metrics", "127.0.0.1:0",
			    "--metrics-max-connections", "2",
			    "--metrics-timeout", "1", NULL };
	static const char req[] = "GET /metrics HTTP/1.1\r\nX-Pad: ";
	struct pollfd	 pfd[2];
	struct scrape	*sc;
	long long	 t0[2], took[2], refused, end;
	size_t		 sent = 0;
	int		 port, fd[3], i, open = 2;
	char		 c, buf[64], *body;

	t_start_qemu(opts);
	port = metrics_port("127.0.0.1", 1);
	for (i = 0; i < 2; i++) {
		ck_assert_int_ne(fd[i] = tcp_connect(AF_INET, port), -1);
		t0[i] = t_clock_ms();
		took[i] = -1;
	}
	ck_assert_int_ne(fd[2] = tcp_connect(AF_INET, port), -1);
	http_send(fd[2], "GET", "/metrics", 0);
	refused = wait_closed(fd[2], T_WAIT_MS);
	close(fd[2]);
	printf("metrics: a connection past the cap was closed after %lld "
	    "ms\n", refused);
	ck_assert_msg(refused >= 0 && refused < 900 * t_slow(), "refused "
	    "after %lld ms", refused);

	/* a byte each every 100 ms, until qmpmuxd closes them */
	end = t_clock_ms() + 5000 * t_slow();
	while (open > 0 && t_clock_ms() < end) {
		c = sent < sizeof(req) - 1 ? req[sent] : 'x';
		sent++;
		for (i = 0; i < 2; i++) {
			pfd[i].fd = took[i] == -1 ? fd[i] : -1;
			pfd[i].events = POLLIN;
			if (took[i] == -1)
				(void)send(fd[i], &c, 1, MSG_NOSIGNAL);
		}
		if (poll(pfd, 2, 100) <= 0)
			continue;
		for (i = 0; i < 2; i++) {
			if (pfd[i].fd == -1 || pfd[i].revents == 0)
				continue;
			ck_assert_int_le(read(fd[i], buf, sizeof(buf)), 0);
			took[i] = t_clock_ms() - t0[i];
			open--;
		}
	}
	for (i = 0; i < 2; i++) {
		printf("metrics: a scraper sending a byte every 100 ms was "
		    "closed after %lld ms\n", took[i]);
		ck_assert_msg(took[i] >= 900 && took[i] < 3000 * t_slow(),
		    "closed after %lld ms, %zu bytes sent", took[i], sent);
		close(fd[i]);
	}
	sc = scrape(AF_INET, port);
	ck_assert_double_eq(get(sc, "qmpmux_metrics_connections_refused_total",
	    ""), 1);
	scrape_free(sc);

	/* kept alive: 4 requests, 400 ms apart, are 1.2 s and more */
	ck_assert_int_ne(fd[0] = tcp_connect(AF_INET, port), -1);
	t0[0] = t_clock_ms();
	for (i = 0; i < 4; i++) {
		if (i > 0)
			poll(NULL, 0, 400);	/* the scraper's pace */
		http_send(fd[0], "GET", "/metrics", 1);
		ck_assert_msg(http_read(fd[0], &body, T_WAIT_MS) == 200,
		    "request %d, %lld ms after the connect", i,
		    t_clock_ms() - t0[0]);
		free(body);
	}
	ck_assert_int_ge(t_clock_ms() - t0[0], 1200);
	close(fd[0]);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "metrics: 1 connection "
	    "refused: metrics_max_connections (2) are open"), 1);
	ck_assert(t_proxy_alive());
}
END_TEST

#define HOLD_CONNS	40

/*
 * Scrapers cannot take the descriptors VM clients need.  qmpmuxd's
 * RLIMIT_NOFILE is lowered to leave it 24 fds; 40 scrapers
 * that send nothing would take all 24, and a VM client would wait for
 * one.  With a cap of 2, 38 are closed at once, qmpmuxd holds 2 fds
 * more than before, and a VM client is served.
 */
START_TEST(test_metrics_fds)
{
	const char	*opts[] = { "--metrics", "127.0.0.1:0",
			    "--metrics-max-connections", "2",
			    "--metrics-timeout", "60", NULL };
	struct t_client	*c;
	char		*m;
	int		 port, fd[HOLD_CONNS], i, nfds;

	t_start_qemu(opts);
	port = metrics_port("127.0.0.1", 1);
	/* counted once the connection to QEMU is made, which adds one */
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", ": upstream ready: ",
	    T_WAIT_MS), 0);
	nfds = t_proc_fds(t_proxy_pid, NULL);
	set_nofile(t_proxy_pid, t_proc_fd_room(t_proxy_pid, 24));
	for (i = 0; i < HOLD_CONNS; i++)
		ck_assert_int_ne(fd[i] = tcp_connect(AF_INET, port), -1);
	for (i = 2; i < HOLD_CONNS; i++)
		ck_assert_msg(wait_closed(fd[i], T_WAIT_MS) >= 0,
		    "connection %d past the cap is open", i);
	t_wait_fds(t_proxy_pid, nfds + 2);
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));
	m = t_cmd(c, "{\"execute\":\"query-status\"}");
	ck_assert_msg(m != NULL && strstr(m, "\"return\"") != NULL, "%s", m);
	free(m);
	t_client_free(c);
	for (i = 0; i < HOLD_CONNS; i++)
		close(fd[i]);
}
END_TEST

#define ROOM	8	/* the fds left to qmpmuxd */

/*
 * An accept out of descriptors pauses the metrics listener for a
 * second, as every listener's does, and does not spin.  qmpmuxd's
 * RLIMIT_NOFILE is lowered to leave it ROOM fds, scrapers that send
 * nothing take them, and one more waits in the backlog.  Over
 * 2.5 s the log has at most 4 lines of a failed accept, and qmpmuxd
 * used at most a fifth of a CPU; once the scrapers go, a scrape is
 * served.
 */
START_TEST(test_metrics_emfile)
{
	const char	*opts[] = { "--metrics", "127.0.0.1:0",
			    "--metrics-max-connections", "1000",
			    "--metrics-timeout", "60", NULL };
	struct scrape	*sc;
	long long	 t0, took, cpu;
	int		 port, fd[ROOM], extra, i, nfds, lines;

	t_start_qemu(opts);
	port = metrics_port("127.0.0.1", 1);
	/* counted once the connection to QEMU is made, which adds one */
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", ": upstream ready: ",
	    T_WAIT_MS), 0);
	nfds = t_proc_fds(t_proxy_pid, NULL);
	set_nofile(t_proxy_pid, t_proc_fd_room(t_proxy_pid, ROOM));
	for (i = 0; i < ROOM; i++)
		ck_assert_int_ne(fd[i] = tcp_connect(AF_INET, port), -1);
	t_wait_fds(t_proxy_pid, nfds + ROOM);
	ck_assert_int_ne(extra = tcp_connect(AF_INET, port), -1);

	/* the window the spin would show in: nothing to wait for */
	cpu = t_cpu_ms(t_proxy_pid);
	t0 = t_clock_ms();
	poll(NULL, 0, 2500);
	took = t_clock_ms() - t0;
	cpu = t_cpu_ms(t_proxy_pid) - cpu;
	lines = t_log_count("qmpmuxd.log", "metrics: accept on ") +
	    t_log_count("qmpmuxd.log", "Error from accept() call");
	printf("metrics: out of fds for %lld ms: %d lines, %lld ms of CPU\n",
	    took, lines, cpu);
	ck_assert_msg(lines >= 1 && lines <= 4, "%d lines of a failed accept",
	    lines);
	ck_assert_msg(cpu * 5 <= took, "%lld ms of CPU in %lld ms", cpu, took);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "metrics: accept on "
	    "127.0.0.1:"), lines);
	ck_assert_int_ge(t_log_count("qmpmuxd.log", "; pausing for 1s: Too "
	    "many open files"), 1);

	for (i = 0; i < ROOM; i++)
		close(fd[i]);
	close(extra);
	sc = scrape(AF_INET, port);
	ck_assert_double_eq(get(sc, "qmpmux_vms", ""), 1);
	scrape_free(sc);
	ck_assert(t_proxy_alive());
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite	*s = suite_create("metrics");
	TCase	*tc = t_tcase(s, "real-qemu", 60);

	tcase_add_test(tc, test_metrics_traffic);
	tcase_add_test(tc, test_metrics_stalled);
	tcase_add_test(tc, test_metrics_http);
	tcase_add_test(tc, test_metrics_limits);
	tcase_add_test(tc, test_metrics_slow);
	tcase_add_test(tc, test_metrics_fds);
	tcase_add_test(tc, test_metrics_emfile);
	tcase_add_test(tc, test_metrics_bad_values);
	tcase_add_test(tc, test_metrics_reload);
	return (s);
}

int
main(void)
{
	return (t_run(metrics_suite()));
}
