/* Unit tests of the QMP framer (src/qmp.c). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/buffer.h>

#include "qmp.h"
#include "testlib.h"

/* Messages covering every kind and id type, as QEMU and clients write them. */
static const char *samples[] = {
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, "
	    "\"major\": 7}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}",
	"{\"return\": {}, \"id\": 17}",
	"{\"id\": \"libvirt-3\", \"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"x\"}}",
	"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, "
	    "\"event\": \"STOP\"}",
	"{\"execute\":\"query-status\",\"id\":{\"a\":[1,{\"b\":null}]}}",
	"{\"execute\": \"stop\", \"id\": [1, \"two\", 3.5e1]}",
	"{\"execute\":\"cont\",\"id\":null}",
	"{\"execute\":\"cont\",\"id\":-0.25E-7}",
	"{\"execute\":\"cont\",\"id\":\"\\u00e9\\\"}\"}",
	"{\"execute\":\"cont\",\"id\":true}",
	"{\"exec-oob\":\"migrate-pause\",\"id\":123456789012345678901234567890}",
	"{\"execute\":\"query-name\"}",
	"[1, 2]",
	"\"str\"",
};
static const struct {
	enum qmp_kind	 kind;
	const char	*id;	/* exact bytes of the id, NULL for none */
	const char	*name;
} expect[] = {
	{ QMP_KIND_GREETING, NULL, "" },
	{ QMP_KIND_RETURN, "17", "" },
	{ QMP_KIND_ERROR, "\"libvirt-3\"", "" },
	{ QMP_KIND_EVENT, NULL, "STOP" },
	{ QMP_KIND_COMMAND, "{\"a\":[1,{\"b\":null}]}", "query-status" },
	{ QMP_KIND_COMMAND, "[1, \"two\", 3.5e1]", "stop" },
	{ QMP_KIND_COMMAND, "null", "cont" },
	{ QMP_KIND_COMMAND, "-0.25E-7", "cont" },
	{ QMP_KIND_COMMAND, "\"\\u00e9\\\"}\"", "cont" },
	{ QMP_KIND_COMMAND, "true", "cont" },
	{ QMP_KIND_COMMAND, "123456789012345678901234567890", "migrate-pause" },
	{ QMP_KIND_COMMAND, NULL, "query-name" },
	{ QMP_KIND_NONOBJECT, NULL, "" },
	{ QMP_KIND_NONOBJECT, NULL, "" },
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

/* Check one message against its expectation. */
static void
check_sample(const struct qmp_msg *msg, size_t i)
{
	struct qmp_span	 id;

	ck_assert_uint_eq(msg->len, strlen(samples[i]));
	ck_assert_mem_eq(msg->buf, samples[i], msg->len);
	ck_assert_int_eq(msg->kind, expect[i].kind);
	ck_assert_str_eq(msg->name, expect[i].name);
	id = qmp_msg_id(msg);
	if (expect[i].id == NULL)
		ck_assert_uint_eq(id.len, 0);
	else {
		ck_assert_uint_eq(id.len, strlen(expect[i].id));
		ck_assert_mem_eq(msg->buf + id.off, expect[i].id, id.len);
	}
}

/* Every sample, fed in two pieces split at every byte. */
START_TEST(test_split_every_byte)
{
	struct qmp_reader	*r;
	struct evbuffer		*in;
	struct qmp_msg		 msg, first;
	const char		*s = samples[_i];
	size_t			 len = strlen(s), cut;

	for (cut = 0; cut < len; cut++) {
		r = qmp_reader_new(1 << 20, 64, 0);
		in = evbuffer_new();
		evbuffer_add(in, s, cut);
		/* each call gets its own struct, as a caller's stack gives */
		ck_assert_int_eq(qmp_reader_next(r, in, &first),
		    QMP_NEED_MORE);
		memset(&first, 0xa5, sizeof(first));
		memset(&msg, 0x5a, sizeof(msg));
		ck_assert_uint_eq(evbuffer_get_length(in), 0);
		evbuffer_add(in, s + cut, len - cut);
		evbuffer_add(in, "\r\n", 2);
		ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
		check_sample(&msg, _i);
		qmp_msg_clear(&msg);
		ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_NEED_MORE);
		ck_assert_uint_eq(evbuffer_get_length(in), 0);
		evbuffer_free(in);
		qmp_reader_free(r);
	}
}
END_TEST

/* Every sample, fed one byte at a time. */
START_TEST(test_byte_at_a_time)
{
	struct qmp_reader	*r = qmp_reader_new(1 << 20, 64, 0);
	struct evbuffer		*in = evbuffer_new();
	struct qmp_msg		 msg;
	const char		*s = samples[_i];
	size_t			 len = strlen(s), k;
	enum qmp_status		 st = QMP_NEED_MORE;

	for (k = 0; k < len; k++) {
		evbuffer_add(in, s + k, 1);
		st = qmp_reader_next(r, in, &msg);
		if (st == QMP_MESSAGE)
			break;
		ck_assert_int_eq(st, QMP_NEED_MORE);
	}
	if (st != QMP_MESSAGE) {
		/* a top-level number or keyword needs a delimiter */
		evbuffer_add(in, "\n", 1);
		st = qmp_reader_next(r, in, &msg);
	}
	ck_assert_int_eq(st, QMP_MESSAGE);
	check_sample(&msg, _i);
	qmp_msg_clear(&msg);
	evbuffer_free(in);
	qmp_reader_free(r);
}
END_TEST

/* All samples in one buffer come out one at a time, in order. */
START_TEST(test_many_in_one_buffer)
{
	struct qmp_reader	*r = qmp_reader_new(1 << 20, 64, 0);
	struct evbuffer		*in = evbuffer_new();
	struct qmp_msg		 msg;
	size_t			 i, rep;

	for (rep = 0; rep < 50; rep++) {
		for (i = 0; i < NSAMPLES; i++) {
			evbuffer_add(in, samples[i], strlen(samples[i]));
			evbuffer_add(in, i % 2 ? "\r\n" : " ", i % 2 ? 2 : 1);
		}
	}
	for (rep = 0; rep < 50; rep++) {
		for (i = 0; i < NSAMPLES; i++) {
			ck_assert_int_eq(qmp_reader_next(r, in, &msg),
			    QMP_MESSAGE);
			check_sample(&msg, i);
			qmp_msg_clear(&msg);
		}
	}
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_NEED_MORE);
	evbuffer_free(in);
	qmp_reader_free(r);
}
END_TEST

/* The reader stops at the end of a message and leaves the rest queued. */
START_TEST(test_stops_at_boundary)
{
	struct qmp_reader	*r = qmp_reader_new(1 << 20, 64, 0);
	struct evbuffer		*in = evbuffer_new();
	struct qmp_msg		 msg;
	const char		*two = "{\"return\": {}, \"id\": 1}{\"return\"";

	evbuffer_add(in, two, strlen(two));
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
	qmp_msg_clear(&msg);
	ck_assert_uint_eq(evbuffer_get_length(in), strlen("{\"return\""));
	evbuffer_free(in);
	qmp_reader_free(r);
}
END_TEST

/* A message of exactly the cap passes; one byte more is refused. */
START_TEST(test_size_cap_edge)
{
	struct qmp_reader	*r;
	struct evbuffer		*in;
	struct qmp_msg		 msg;
	char			 buf[100];
	size_t			 cap = 64;

	/* {"execute":"x","id":"aaaa...."} padded to exactly cap bytes */
	memset(buf, 0, sizeof(buf));
	strcpy(buf, "{\"execute\":\"x\",\"id\":\"");
	memset(buf + strlen(buf), 'a', cap - strlen(buf) - 2);
	strcat(buf, "\"}");
	ck_assert_uint_eq(strlen(buf), cap);

	r = qmp_reader_new(cap, 64, 0);
	in = evbuffer_new();
	evbuffer_add(in, buf, cap);
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
	qmp_msg_clear(&msg);
	qmp_reader_free(r);

	r = qmp_reader_new(cap - 1, 64, 0);
	evbuffer_add(in, buf, cap);
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_ERR_SIZE);
	qmp_reader_free(r);
	evbuffer_free(in);
}
END_TEST

/* An endless message is refused once it passes the cap, fed in pieces. */
START_TEST(test_size_cap_streamed)
{
	struct qmp_reader	*r = qmp_reader_new(4096, 64, 0);
	struct evbuffer		*in = evbuffer_new();
	struct qmp_msg		 msg;
	enum qmp_status		 st = QMP_NEED_MORE;
	int			 i;

	evbuffer_add(in, "{\"a\":\"", 6);
	for (i = 0; i < 100 && st == QMP_NEED_MORE; i++) {
		evbuffer_add_printf(in, "%0100d", 0);
		st = qmp_reader_next(r, in, &msg);
	}
	ck_assert_int_eq(st, QMP_ERR_SIZE);
	ck_assert_int_lt(i, 45);
	evbuffer_free(in);
	qmp_reader_free(r);
}
END_TEST

/* Nesting of exactly the cap passes; one level more is refused. */
START_TEST(test_depth_cap_edge)
{
	struct qmp_reader	*r = qmp_reader_new(1 << 20, 8, 0);
	struct evbuffer		*in = evbuffer_new();
	struct qmp_msg		 msg;

	/* depth 8: the object and seven arrays */
	evbuffer_add_printf(in, "{\"a\":[[[[[[[1]]]]]]]}");
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
	qmp_msg_clear(&msg);
	evbuffer_add_printf(in, "{\"a\":[[[[[[[[1]]]]]]]]}\n{\"id\":1}");
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_ERR_DEPTH);
	qmp_reader_skip_line(r);
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
	ck_assert_int_eq(msg.m_id, 0);
	qmp_msg_clear(&msg);
	evbuffer_free(in);
	qmp_reader_free(r);
}
END_TEST

/* Invalid JSON gives yajl's text; after skipping the line, input goes on. */
START_TEST(test_invalid_json_recovers)
{
	struct qmp_reader	*r = qmp_reader_new(1 << 20, 64, 0);
	struct evbuffer		*in = evbuffer_new();
	struct qmp_msg		 msg;

	evbuffer_add_printf(in, "{\"id\":1}xx yy {\n{\"id\":2}");
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
	qmp_msg_clear(&msg);
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_ERR_JSON);
	ck_assert_ptr_nonnull(strstr(qmp_reader_error(r), "invalid"));
	qmp_reader_skip_line(r);
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
	ck_assert_str_eq(msg.buf, "{\"id\":2}");
	qmp_msg_clear(&msg);
	evbuffer_free(in);
	qmp_reader_free(r);
}
END_TEST

/* Skipping with no newline yet discards what came and waits for more. */
START_TEST(test_skip_waits_for_newline)
{
	struct qmp_reader	*r = qmp_reader_new(1 << 20, 64, 0);
	struct evbuffer		*in = evbuffer_new();
	struct qmp_msg		 msg;

	qmp_reader_skip_line(r);
	evbuffer_add_printf(in, "{\"id\":1}");
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_NEED_MORE);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	evbuffer_add_printf(in, "junk\n{\"id\":2}");
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
	ck_assert_str_eq(msg.buf, "{\"id\":2}");
	qmp_msg_clear(&msg);
	evbuffer_free(in);
	qmp_reader_free(r);
}
END_TEST

/* Members are recorded in order, with types, duplicates and strangers. */
START_TEST(test_members)
{
	struct qmp_reader	*r = qmp_reader_new(1 << 20, 64,
				    QMP_READ_DUPKEYS);
	struct evbuffer		*in = evbuffer_new();
	struct qmp_msg		 msg;
	struct qmp_span		 cut;

	evbuffer_add_printf(in, "{ \"execute\" : 3, \"arguments\":[], "
	    "\"foo\":{}, \"id\":1 }");
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
	ck_assert_int_eq(msg.nmembers, 4);
	ck_assert_int_eq(msg.members[0].type, QMP_TYPE_NUMBER);
	ck_assert_int_eq(msg.members[1].type, QMP_TYPE_ARRAY);
	ck_assert_int_eq(msg.members[2].type, QMP_TYPE_OBJECT);
	ck_assert_str_eq(msg.other, "foo");
	ck_assert_int_eq(msg.dupkey, 0);
	cut = qmp_msg_cut_member(&msg, msg.m_id);
	ck_assert_mem_eq(msg.buf + cut.off, ", \"id\":1", cut.len);
	cut = qmp_msg_cut_member(&msg, 0);
	ck_assert_mem_eq(msg.buf + cut.off, "\"execute\" : 3, ", cut.len);
	qmp_msg_clear(&msg);

	evbuffer_add_printf(in, "{\"id\":1,\"id\":2}");
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
	ck_assert_int_eq(msg.dupkey, 1);
	qmp_msg_clear(&msg);
	evbuffer_free(in);
	qmp_reader_free(r);
}
END_TEST

/* Objects with and without a repeated key, at every depth. */
static const struct {
	const char	*json;
	int		 dupkey;
} dupcases[] = {
	{ "{\"a\":{\"x\":1,\"x\":2}}", 1 },
	{ "{\"a\":[1,{\"b\":[{\"x\":1,\"y\":2,\"x\":3}]}]}", 1 },
	{ "{\"a\":1,\"b\":{\"c\":1},\"a\":2}", 1 },
	{ "{\"a\":1,\"\\u0061\":2}", 1 },
	{ "[{\"x\":1,\"x\":1}]", 1 },
	{ "{\"\":1,\"\":2}", 1 },
	{ "{\"a\":[{\"x\":1},{\"x\":2}]}", 0 },
	{ "{\"x\":{\"x\":1},\"y\":{\"x\":2}}", 0 },
	{ "{\"ab\":1,\"a\":2,\"b\":3,\"ba\":{}}", 0 },
	{ "{\"a\":{\"b\":{}},\"b\":{\"a\":{}}}", 0 },
	{ "{\"a\":1,\"A\":2,\"a \":3}", 0 },
};
#define NDUPCASES	(sizeof(dupcases) / sizeof(dupcases[0]))

/*
 * A repeated key is found in any object, split at every byte, and the
 * next message starts clean; without QMP_READ_DUPKEYS nothing is looked
 * for.
 */
START_TEST(test_dupkey_any_depth)
{
	struct qmp_reader	*r, *plain;
	struct evbuffer		*in = evbuffer_new();
	struct qmp_msg		 msg;
	const char		*s = dupcases[_i].json;
	size_t			 len = strlen(s), cut;

	r = qmp_reader_new(1 << 20, 64, QMP_READ_DUPKEYS);
	plain = qmp_reader_new(1 << 20, 64, 0);
	for (cut = 0; cut < len; cut++) {
		evbuffer_add(in, s, cut);
		ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_NEED_MORE);
		evbuffer_add(in, s + cut, len - cut);
		evbuffer_add_printf(in, "{\"a\":{\"a\":1},\"b\":2}");
		ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
		ck_assert_msg(msg.dupkey == dupcases[_i].dupkey,
		    "%s cut at %zu: dupkey %d", s, cut, msg.dupkey);
		qmp_msg_clear(&msg);
		ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
		ck_assert_int_eq(msg.dupkey, 0);
		qmp_msg_clear(&msg);
	}
	evbuffer_add(in, s, len);
	ck_assert_int_eq(qmp_reader_next(plain, in, &msg), QMP_MESSAGE);
	ck_assert_int_eq(msg.dupkey, 0);
	qmp_msg_clear(&msg);
	evbuffer_free(in);
	qmp_reader_free(plain);
	qmp_reader_free(r);
}
END_TEST

/*
 * 100,000 keys in one object, the repeat last: found, and in the time
 * of a sort (a quadratic scan would take minutes under ASan).
 */
START_TEST(test_dupkey_many_keys)
{
	struct qmp_reader	*r = qmp_reader_new(8 << 20, 64,
				    QMP_READ_DUPKEYS);
	struct evbuffer		*in = evbuffer_new();
	struct qmp_msg		 msg;
	int			 i, last;

	for (last = 0; last < 2; last++) {
		evbuffer_add_printf(in, "{\"k\":0");
		for (i = 1; i < 100000; i++)
			evbuffer_add_printf(in, ",\"k%d\":{\"k\":%d}", i, i);
		evbuffer_add_printf(in, last ? ",\"k77777\":0}" : "}");
		ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
		ck_assert_int_eq(msg.dupkey, last);
		ck_assert_int_eq(msg.toomany, 1);
		qmp_msg_clear(&msg);
	}
	evbuffer_free(in);
	qmp_reader_free(r);
}
END_TEST

/* A message's buffer has room to end the line: QMP_MSG_SLACK. */
START_TEST(test_msg_slack)
{
	struct qmp_reader	*r = qmp_reader_new(1 << 20, 64, 0);
	struct evbuffer		*in = evbuffer_new();
	struct qmp_msg		 msg;
	char			*buf;

	evbuffer_add_printf(in, "{\"event\":\"STOP\"}  {\"return\":{}}");
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
	ck_assert_uint_eq(msg.len, 16);
	ck_assert_int_eq(msg.buf[msg.len], '\0');
	buf = qmp_msg_steal(&msg);
	memcpy(buf + 16, "\r\n", 3);	/* ASan: within the allocation */
	ck_assert_str_eq(buf, "{\"event\":\"STOP\"}\r\n");
	free(buf);
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
	ck_assert_str_eq(msg.buf, "{\"return\":{}}");
	qmp_msg_clear(&msg);
	evbuffer_free(in);
	qmp_reader_free(r);
}
END_TEST

static Suite *
qmp_suite(void)
{
	Suite	*s = suite_create("qmp");
	TCase	*tc;

	tc = tcase_create("split");
	tcase_add_loop_test(tc, test_split_every_byte, 0, NSAMPLES);
	tcase_add_loop_test(tc, test_byte_at_a_time, 0, NSAMPLES);
	tcase_add_test(tc, test_many_in_one_buffer);
	tcase_add_test(tc, test_stops_at_boundary);
	suite_add_tcase(s, tc);

	tc = tcase_create("caps");
	tcase_add_test(tc, test_size_cap_edge);
	tcase_add_test(tc, test_size_cap_streamed);
	tcase_add_test(tc, test_depth_cap_edge);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, test_invalid_json_recovers);
	tcase_add_test(tc, test_skip_waits_for_newline);
	tcase_add_test(tc, test_members);
	tcase_add_loop_test(tc, test_dupkey_any_depth, 0, NDUPCASES);
	tcase_add_test(tc, test_dupkey_many_keys);
	tcase_add_test(tc, test_msg_slack);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (t_run(qmp_suite()));
}
