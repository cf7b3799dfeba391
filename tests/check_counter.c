/*
 * The table of counters (src/counter.c), in-process: every counter of
 * it is shown in each place it is marked for, with its value, and in
 * no other: query-vm's JSON, the dump's JSON and its log line, the
 * metrics and the state document (which its reader accepts).  A
 * counter added to the table, or a place that no longer walks it, fails
 * here.  The library's server runs in this process in front of a real
 * QEMU, and each counter kept in struct vm_stats is given a value of
 * its own, so that one shown in the place of another is seen too.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "qmpmux.h"
#include "testlib.h"

#define C_WAIT_MS	10000	/* for QEMU, and for the metrics' reply */

static struct event_base	*c_base;
static struct server		*c_srv;
static pid_t			 c_qemu;

/* Run the server's loop for a tenth of a second at most. */
static void
c_turn(void)
{
	struct timeval	 tv = { 0, 100000 };

	ck_assert_int_eq(event_base_loopexit(c_base, &tv), 0);
	ck_assert_int_ne(event_base_dispatch(c_base), -1);
}

/*
 * The server, in this process, with vm1 in front of a real QEMU once
 * its upstream is ready, and the metrics on a unix socket; then a value
 * of its own in each counter vm1 keeps, and three round trips in its
 * histograms.
 */
static struct vm *
c_start(void)
{
	struct conf_entries	 cmdline;
	struct conf		 conf;
	const struct counter	*c;
	struct vm		*vm;
	char			*qsock = t_path("qemu.sock");
	char			*path = t_path("qmpmuxd.conf");
	char			 err[CONF_ERR_MAX];
	long long		 start = t_clock_ms();
	FILE			*f;

	signal(SIGPIPE, SIG_IGN);
	log_init(1, 0);
	c_qemu = t_qemu(qsock);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fprintf(f, "[global]\nmetrics = %s/metrics.sock\n"
	    "[vm vm1]\nupstream = connect:%s\n"
	    "[listener vm1 %s/vm1.sock]\n", t_dir(), qsock, t_dir());
	ck_assert_int_eq(fclose(f), 0);
	TAILQ_INIT(&cmdline);
	ck_assert_ptr_nonnull(c_base = event_base_new());
	c_srv = server_new(c_base, path, &cmdline);
	ck_assert_msg(server_load(c_srv, &conf, err, sizeof(err)) == 0, "%s",
	    err);
	ck_assert_int_eq(server_start(c_srv, &conf, NULL), 0);
	conf_clear(&conf);
	free(path);
	free(qsock);
	ck_assert_ptr_nonnull(vm = host_find(c_srv, "vm1"));
	while (vm->mon->state != MONITOR_READY) {
		ck_assert_msg(t_clock_ms() - start < C_WAIT_MS,
		    "vm1's upstream is not ready");
		c_turn();
	}
	for (c = counter_table; c < counter_table + counter_count; c++) {
		if (c->get != NULL)
			continue;
		if (c->type == COUNTER_HISTOGRAM) {
			counter_observe(counter_hist(c, &vm->stats), 0.003);
			counter_observe(counter_hist(c, &vm->stats), 0.7);
			counter_observe(counter_hist(c, &vm->stats), 99);
		} else
			*counter_ptr(c, &vm->stats) = 1000 +
			    (uint64_t)(c - counter_table);
	}
	return (vm);
}

/* Stop the server and QEMU. */
static void
c_stop(void)
{
	server_free(c_srv);
	event_base_free(c_base);
	t_stop(c_qemu, SIGKILL);
}

/* What a generator made, as a string of the caller's. */
static char *
c_gen_str(yajl_gen g)
{
	const unsigned char	*buf;
	size_t			 len;
	char			*s;

	json_buf(g, &buf, &len);
	ck_assert_ptr_nonnull(s = strndup((const char *)buf, len));
	json_free(g);
	return (s);
}

/* query-vm's answer for vm, as control.c makes it. */
static char *
c_query_vm(struct vm *vm)
{
	yajl_gen	 g = json_new();

	dump_vm(g, vm);
	return (c_gen_str(g));
}

/* The state document a restart would hand over. */
static char *
c_state(void)
{
	struct state_fds	 fds = { NULL, 0, 0 };
	struct evbuffer		*b;
	char			 err[256], *doc;
	int			 fd, n;

	fd = state_save(c_srv, NULL, 0, "", 0, &fds, err, sizeof(err));
	ck_assert_msg(fd != -1, "%s", err);
	free(fds.fd);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	ck_assert_ptr_nonnull(b = evbuffer_new());
	while ((n = evbuffer_read(b, fd, -1)) > 0)
		;
	ck_assert_int_eq(n, 0);
	close(fd);
	evbuffer_add(b, "", 1);
	ck_assert_ptr_nonnull(doc = strdup((char *)evbuffer_pullup(b, -1)));
	evbuffer_free(b);
	return (doc);
}

/* GET /metrics of the server's, served by its loop; the body. */
static char *
c_metrics(void)
{
	struct sockaddr_un	 sun;
	struct evbuffer		*b;
	struct pollfd		 pfd;
	long long		 start = t_clock_ms();
	const char		*req = "GET /metrics HTTP/1.0\r\n\r\n", *body;
	char			 buf[4096], *text;
	ssize_t			 n;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/metrics.sock",
	    t_dir());
	ck_assert_int_ne(fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK,
	    0), -1);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)),
	    0);
	ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	ck_assert_ptr_nonnull(b = evbuffer_new());
	for (;;) {
		ck_assert_msg(t_clock_ms() - start < C_WAIT_MS,
		    "no whole reply from the metrics");
		event_base_loop(c_base, EVLOOP_NONBLOCK);
		if ((n = read(fd, buf, sizeof(buf))) == 0)
			break;
		if (n > 0) {
			evbuffer_add(b, buf, (size_t)n);
			continue;
		}
		ck_assert_int_eq(errno, EAGAIN);
		pfd.fd = fd;
		pfd.events = POLLIN;
		poll(&pfd, 1, 10);
	}
	close(fd);
	evbuffer_add(b, "", 1);
	text = (char *)evbuffer_pullup(b, -1);
	ck_assert_msg(strncmp(text, "HTTP/1.0 200", 12) == 0 ||
	    strncmp(text, "HTTP/1.1 200", 12) == 0, "%s", text);
	ck_assert_ptr_nonnull(body = strstr(text, "\r\n\r\n"));
	ck_assert_ptr_nonnull(text = strdup(body + 4));
	evbuffer_free(b);
	return (text);
}

/* The dump's line of vm1 in the log, which goes to stderr here. */
static char *
c_log_line(void)
{
	char	*path = t_path("log"), *log, *line, *end;
	int	 fd, saved;

	fflush(stderr);
	ck_assert_int_ne(saved = dup(STDERR_FILENO), -1);
	ck_assert_int_ne(fd = open(path, O_WRONLY | O_CREAT | O_TRUNC,
	    0600), -1);
	ck_assert_int_ne(dup2(fd, STDERR_FILENO), -1);
	close(fd);
	dump_log(c_srv);
	fflush(stderr);
	ck_assert_int_ne(dup2(saved, STDERR_FILENO), -1);
	close(saved);
	log = t_slurp(path, NULL);
	free(path);
	ck_assert_ptr_nonnull(line = strstr(log, "vm vm1: dump: "));
	if ((end = strchr(line, '\n')) != NULL)
		*end = '\0';
	ck_assert_ptr_nonnull(line = strdup(line));
	free(log);
	return (line);
}

/* The members of an object. */
static size_t
c_members(yajl_val o)
{
	ck_assert_msg(YAJL_IS_OBJECT(o), "not an object");
	return (o->u.object.len);
}

/* An integer member of o, which must be there. */
static long long
c_int(yajl_val o, const char *key)
{
	const char	*path[] = { key, NULL };
	yajl_val	 v = yajl_tree_get(o, path, yajl_t_number);

	ck_assert_msg(v != NULL && YAJL_IS_INTEGER(v), "no integer %s", key);
	return (YAJL_GET_INTEGER(v));
}

/*
 * The counters object of a VM's JSON, query-vm's or the dump's: each
 * counter marked COUNTER_JSON, with its value, and nothing else.
 */
static void
c_check_json(const char *what, yajl_val vmj, const struct vm *vm)
{
	const char		*path[] = { "counters", NULL };
	const struct counter	*c;
	yajl_val		 o;
	size_t			 n = 0;

	ck_assert_msg((o = yajl_tree_get(vmj, path, yajl_t_object)) != NULL,
	    "%s: no counters", what);
	for (c = counter_table; c < counter_table + counter_count; c++) {
		if (!(c->places & COUNTER_JSON))
			continue;
		ck_assert_msg(c_int(o, c->name) == (long long)counter_value(c,
		    vm), "%s: counters.%s", what, c->name);
		n++;
	}
	ck_assert_msg(c_members(o) == n, "%s: %zu counters, not %zu", what,
	    c_members(o), n);
}

/*
 * Each counter's place: a counter kept in struct vm_stats in every place
 * but the log, where the table says it is, its names there given.
 */
START_TEST(test_table)
{
	const struct counter	*c, *d;

	ck_assert_uint_gt(counter_count, 0);
	for (c = counter_table; c < counter_table + counter_count; c++) {
		ck_assert_ptr_nonnull(c->name);
		for (d = counter_table; d < c; d++)
			ck_assert_msg(strcmp(c->name, d->name) != 0,
			    "%s twice", c->name);
		if (c->get == NULL)
			ck_assert_msg((c->places & COUNTER_SHOWN) ==
			    COUNTER_SHOWN || c->type == COUNTER_HISTOGRAM,
			    "%s is kept but not shown everywhere", c->name);
		else
			ck_assert_msg(!(c->places & COUNTER_STATE),
			    "%s is derived, and the state keeps it", c->name);
		if (c->places & COUNTER_STATE)
			ck_assert_ptr_nonnull(c->state);
		if (c->places & COUNTER_METRICS) {
			ck_assert_ptr_nonnull(c->metric);
			/* a family's first series says its help */
			d = counter_next(NULL, COUNTER_METRICS);
			while (d != c && strcmp(d->metric, c->metric) != 0)
				d = counter_next(d, COUNTER_METRICS);
			ck_assert_msg(d->help != NULL, "%s: no help",
			    c->metric);
		}
	}
}
END_TEST

/* query-vm and the dump: the counters object, and the log line. */
START_TEST(test_query_vm_dump)
{
	const struct counter	*c;
	struct vm		*vm = c_start();
	yajl_val		 v, vms;
	const char		*path[] = { "vms", NULL };
	char			*text, *line, *end, want[128];
	size_t			 len, i;

	text = c_query_vm(vm);
	ck_assert_ptr_nonnull(v = t_json(text));
	c_check_json("query-vm", v, vm);
	yajl_tree_free(v);
	free(text);

	text = dump_json(c_srv, &len);
	ck_assert_ptr_nonnull(v = t_json(text));
	vms = yajl_tree_get(v, path, yajl_t_array);
	ck_assert_msg(vms != NULL && vms->u.array.len == 1, "%s", text);
	c_check_json("dump", vms->u.array.values[0], vm);
	yajl_tree_free(v);
	free(text);

	/* the counters end the line, after its last "; " */
	line = c_log_line();
	ck_assert_ptr_nonnull(end = strrchr(line, ';'));
	for (c = counter_table; c < counter_table + counter_count; c++) {
		snprintf(want, sizeof(want), " %llu %s",
		    (unsigned long long)counter_value(c, vm), c->name);
		for (i = 0; want[i] != '\0'; i++)
			if (want[i] == '_')
				want[i] = ' ';
		ck_assert_msg((strstr(end, want) != NULL) ==
		    ((c->places & COUNTER_LOG) != 0), "log: %s in \"%s\"",
		    want, line);
	}
	free(line);
	c_stop();
}
END_TEST

/* The metrics: each counter's family, its HELP and TYPE, its series. */
START_TEST(test_metrics)
{
	static const char	*types[] = { "counter", "gauge", "histogram" };
	const struct counter	*c;
	const struct counter_hist *h;
	struct vm		*vm = c_start();
	char			*text, want[512];

	text = c_metrics();
	for (c = counter_table; c < counter_table + counter_count; c++) {
		if (!(c->places & COUNTER_METRICS)) {
			ck_assert_ptr_null(c->metric);
			continue;
		}
		snprintf(want, sizeof(want), "\n# TYPE %s %s\n", c->metric,
		    types[c->type]);
		ck_assert_msg(strstr(text, want) != NULL, "no %s", want);
		if (c->help != NULL) {
			snprintf(want, sizeof(want), "\n# HELP %s %s\n",
			    c->metric, c->help);
			ck_assert_msg(strstr(text, want) != NULL, "no %s",
			    want);
		}
		if (c->type == COUNTER_HISTOGRAM) {
			const char	*lbl = c->label != NULL ? c->label : "";
			const char	*lcomma = c->label != NULL ? "," : "";

			/* 0.003, 0.7 and 99 seconds, as c_start observed */
			h = counter_hist_of(c, vm);
			ck_assert_uint_eq(h->count, 3);
			snprintf(want, sizeof(want), "\n%s_bucket{vm=\"vm1\","
			    "%s%sle=\"0.005\"} 1\n", c->metric, lbl, lcomma);
			ck_assert_msg(strstr(text, want) != NULL, "no %s",
			    want);
			snprintf(want, sizeof(want), "\n%s_bucket{vm=\"vm1\","
			    "%s%sle=\"1\"} 2\n", c->metric, lbl, lcomma);
			ck_assert_msg(strstr(text, want) != NULL, "no %s",
			    want);
			snprintf(want, sizeof(want), "\n%s_count{vm=\"vm1\"%s%s} "
			    "3\n", c->metric, lcomma, lbl);
			ck_assert_msg(strstr(text, want) != NULL, "no %s",
			    want);
			continue;
		}
		snprintf(want, sizeof(want), "\n%s{vm=\"vm1\"%s%s} %llu\n",
		    c->metric, c->label != NULL ? "," : "",
		    c->label != NULL ? c->label : "",
		    (unsigned long long)counter_value(c, vm));
		ck_assert_msg(strstr(text, want) != NULL, "no %s", want);
	}
	/* vm1 is up: its upstream is ready */
	ck_assert_ptr_nonnull(strstr(text, "\nqmpmux_vm_up{vm=\"vm1\"} 1\n"));
	free(text);
	c_stop();
}
END_TEST

/* The state document: each counter it keeps; its reader accepts it. */
START_TEST(test_state)
{
	const char		*path[] = { "vms", NULL };
	const char		*spath[] = { "stats", NULL };
	const struct counter	*c;
	const struct counter_hist *h;
	struct vm		*vm = c_start();
	struct state		*st;
	yajl_val		 v, vms, o, a;
	char			*doc, key[64], err[256];
	size_t			 n = 0;

	doc = c_state();
	ck_assert_ptr_nonnull(v = t_json(doc));
	vms = yajl_tree_get(v, path, yajl_t_array);
	ck_assert_msg(vms != NULL && vms->u.array.len == 1, "%s", doc);
	o = yajl_tree_get(vms->u.array.values[0], spath, yajl_t_object);
	ck_assert_ptr_nonnull(o);
	for (c = counter_table; c < counter_table + counter_count; c++) {
		if (!(c->places & COUNTER_STATE))
			continue;
		if (c->type != COUNTER_HISTOGRAM) {
			ck_assert_msg(c_int(o, c->state) ==
			    (long long)counter_value(c, vm), "stats.%s",
			    c->state);
			n++;
			continue;
		}
		h = counter_hist_of(c, vm);
		snprintf(key, sizeof(key), "%s_count", c->state);
		ck_assert_int_eq(c_int(o, key), (long long)h->count);
		snprintf(key, sizeof(key), "%s_buckets", c->state);
		spath[0] = key;
		a = yajl_tree_get(o, spath, yajl_t_array);
		ck_assert_msg(a != NULL && a->u.array.len == COUNTER_NBUCKETS,
		    "stats.%s", key);
		ck_assert_int_eq(YAJL_GET_INTEGER(a->u.array.values[3]), 1);
		snprintf(key, sizeof(key), "%s_sum", c->state);
		spath[0] = key;
		ck_assert_ptr_nonnull(yajl_tree_get(o, spath, yajl_t_number));
		n += 3;
	}
	ck_assert_msg(c_members(o) == n, "%zu in stats, not %zu",
	    c_members(o), n);
	yajl_tree_free(v);
	/* what it writes, its reader takes */
	st = state_parse(doc, strlen(doc), err, sizeof(err));
	ck_assert_msg(st != NULL, "%s", err);
	state_free(st);
	free(doc);
	c_stop();
}
END_TEST

/* The suite: the table, then each place it is shown in. */
static Suite *
counter_suite(void)
{
	Suite	*s = suite_create("counter");
	TCase	*tc = t_tcase(s, "counter", 60);

	tcase_add_test(tc, test_table);
	tcase_add_test(tc, test_query_vm_dump);
	tcase_add_test(tc, test_metrics);
	tcase_add_test(tc, test_state);
	return (s);
}

int
main(void)
{
	return (t_run(counter_suite()));
}
