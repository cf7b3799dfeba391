/* Unit tests of the QMP framer (src/qmp.c). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/buffer.h>

#include "qmp.h"
#include "utf8.h"
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

/*
 * Streams of input and what QEMU 7.2 makes of them, message by message:
 * "M:" and the message's bytes, or "E:" and the error's text (without
 * the "JSON parse error, " that all but the limits begin with).  The
 * texts were taken from the real QEMU; check_diff holds the reader to
 * it again on the same kind of input.
 */
#define S	QMP_READ_STRICT
static const struct {
	const char	*in;
	size_t		 len;		/* 0: strlen(in) */
	int		 flags;
	unsigned int	 depth;		/* 0: 64 */
	const char	*out;
} streams[] = {
	/* QEMU's whitespace, and nothing else */
	{ " \t\r\n{\"id\": 1}\r\n", 0, S, 0, "M:{\"id\": 1}|" },
	{ "\v{\"id\":1}\n", 0, S, 0, "E:stray '\v'|M:{\"id\":1}|" },
	{ "\f{\"id\":1}\n", 0, S, 0, "E:stray '\f'|M:{\"id\":1}|" },
	{ "{\"id\":1\v}\n", 0, S, 0, "E:stray '\v'|E:expecting value|" },
	{ "{\"id\":\"a\vb\"}\n", 0, S, 0,
	    "E:stray '\"a\v'|E:expecting value|" },
	{ "{\"id\":\x01\"x\"}\n", 0, S, 0,
	    "E:stray '\x01'|E:expecting value|" },
	{ "a\f{\"id\":1}", 0, S, 0,
	    "E:invalid keyword 'a'|E:stray '\f'|M:{\"id\":1}|" },
	{ "\xff{\"id\":1}", 0, S, 0, "E:stray '\xff'|M:{\"id\":1}|" },
	{ "\"\xfe\"{\"id\":1}", 0, S, 0,
	    "E:stray '\"\xfe'|M:{\"id\":1}|" },
	/* a NUL ends QEMU's text, as it ends a C string */
	{ "\0{\"id\":1}", 9, S, 0, "E:stray ''|M:{\"id\":1}|" },
	/* recovery skips to a structural or control character */
	{ "%x y \"z{\"id\":1}", 0, S, 0, "E:stray '%'|M:{\"id\":1}|" },
	{ "{\"a\":1}\v\v\v\v{\"id\":2}", 0, S, 0,
	    "M:{\"a\":1}|E:stray '\v'|E:stray '\v'|E:stray '\v'|"
	    "E:stray '\v'|M:{\"id\":2}|" },
	/* tokens: numbers, keywords, strings of both quotes */
	{ "[01]", 0, S, 0, "E:stray '01'|E:expecting value|" },
	{ "1.\n", 0, S, 0, "E:stray '1.\n'|" },
	{ "-\n", 0, S, 0, "E:stray '-\n'|" },
	{ "1 2 -0.5e+3\n", 0, S, 0, "M:1|M:2|M:-0.5e+3|" },
	{ "xyz\n", 0, S, 0, "E:invalid keyword 'xyz'|" },
	{ "[true,false,null]", 0, S, 0, "M:[true,false,null]|" },
	{ "'x\"y'\"a'b\"", 0, S, 0, "M:'x\"y'|M:\"a'b\"|" },
	/* the grammar, first error first */
	{ "{\"a\" 1}", 0, S, 0, "E:missing : in object pair|" },
	{ "}]", 0, S, 0, "E:expecting value|E:expecting value|" },
	{ "{\"a\":1]", 0, S, 0, "E:expected separator in dict|" },
	{ "[1}", 0, S, 0, "E:expected separator in list|" },
	{ "{\"a\":1,}", 0, S, 0, "E:expecting value|" },
	{ "[1,]", 0, S, 0, "E:expecting value|" },
	{ "{,}", 0, S, 0, "E:expecting value|" },
	{ "{1:2}", 0, S, 0, "E:key is not a string in object|" },
	{ "{[1]:2}", 0, S, 0, "E:key is not a string in object|" },
	{ "{[1 2]:3}", 0, S, 0, "E:expected separator in list|" },
	{ "{\"a\":1,\"a\":[1 2]}", 0, S, 0,
	    "E:expected separator in list|" },
	{ "{\"a\":1,\"a\":2,\"b\":[1 2]}", 0, S, 0,
	    "E:duplicate key|" },
	/* what QEMU writes: repeats are not looked for */
	{ "{\"a\":1,\"a\":2}", 0, 0, 0, "M:{\"a\":1,\"a\":2}|" },
	{ "{\"a\" 1}", 0, 0, 0, "E:missing : in object pair|E:expecting value|" },
	/* strings: escapes and UTF-8, as QEMU's parse_string */
	{ "\"\\ud800\"", 0, S, 0,
	    "E:\\ud800 is not a valid Unicode character|" },
	{ "\"\\ud800\\u0041\"", 0, S, 0,
	    "E:\\ud800 is not a valid Unicode character|" },
	{ "\"\\u12\"", 0, S, 0,
	    "E:\\u12\" is not a valid Unicode character|" },
	{ "\"\\uffff\"", 0, S, 0,
	    "E:\\uffff is not a valid Unicode character|" },
	{ "\"\\ud83d\\ude00\\u0000\"", 0, S, 0,
	    "M:\"\\ud83d\\ude00\\u0000\"|" },
	{ "\"\\x\"", 0, S, 0, "E:invalid escape sequence in string|" },
	{ "\"\xc0\x80\xc3\xa9\xf0\x9f\x98\x80\"", 0, S, 0,
	    "M:\"\xc0\x80\xc3\xa9\xf0\x9f\x98\x80\"|" },
	{ "\"\xc1\x81\"", 0, S, 0, "E:invalid UTF-8 sequence in string|" },
	{ "\"\xed\xa0\x80\"", 0, S, 0,
	    "E:invalid UTF-8 sequence in string|" },
	{ "\"\xf4\x90\x80\x80\"", 0, S, 0,
	    "E:invalid UTF-8 sequence in string|" },
	{ "\"\xef\xbf\xbf\"", 0, S, 0,
	    "E:invalid UTF-8 sequence in string|" },
	{ "\"\xc3\"", 0, S, 0, "E:invalid UTF-8 sequence in string|" },
	{ "\"\x80\"", 0, S, 0, "E:invalid UTF-8 sequence in string|" },
	/* nesting: the cap, then the rest read as new input, as QEMU */
	{ "[[1]]", 0, S, 2, "M:[[1]]|" },
	{ "[[[1]]]{\"id\":1}", 0, S, 2,
	    "E:@JSON nesting depth limit exceeded|M:1|E:expecting value|"
	    "E:expecting value|E:expecting value|M:{\"id\":1}|" },
};
#define NSTREAMS	(sizeof(streams) / sizeof(streams[0]))

/* Feed in[0, len) in pieces of at most step bytes; what came of it. */
static char *
run_stream(const char *in, size_t len, int flags, unsigned int depth,
    size_t step)
{
	struct qmp_reader	*r = qmp_reader_new(1 << 20, depth, flags);
	struct evbuffer		*b = evbuffer_new();
	struct qmp_msg		 msg;
	enum qmp_status		 st;
	const char		*e;
	char			*out;
	size_t			 off = 0, n, outlen;
	FILE			*f = open_memstream(&out, &outlen);

	ck_assert_ptr_nonnull(r);
	while (off < len) {
		n = len - off < step ? len - off : step;
		evbuffer_add(b, in + off, n);
		off += n;
		while ((st = qmp_reader_next(r, b, &msg)) != QMP_NEED_MORE) {
			if (st == QMP_MESSAGE) {
				fprintf(f, "M:%s|", msg.buf);
				qmp_msg_clear(&msg);
				continue;
			}
			ck_assert(st == QMP_ERR_JSON || st == QMP_ERR_DEPTH);
			e = qmp_reader_error(r);
			if (strncmp(e, "JSON parse error, ", 18) == 0)
				fprintf(f, "E:%s|", e + 18);
			else
				fprintf(f, "E:@%s|", e);
		}
		ck_assert_uint_eq(evbuffer_get_length(b), 0);
	}
	fclose(f);
	evbuffer_free(b);
	qmp_reader_free(r);
	return (out);
}

/* Each stream, whole, split at every byte, and a byte at a time. */
START_TEST(test_streams)
{
	const char	*in = streams[_i].in;
	size_t		 len = streams[_i].len, step;
	unsigned int	 depth = streams[_i].depth;
	char		*got;

	if (len == 0)
		len = strlen(in);
	if (depth == 0)
		depth = 64;
	for (step = len; step > 0; step--) {
		got = run_stream(in, len, streams[_i].flags, depth, step);
		ck_assert_msg(strcmp(got, streams[_i].out) == 0,
		    "stream %d in pieces of %zu: got %s, want %s", _i, step,
		    got, streams[_i].out);
		free(got);
	}
}
END_TEST

/* Nesting of exactly the cap passes; one level more is refused. */
START_TEST(test_depth_cap_edge)
{
	char	*got;

	got = run_stream("{\"a\":[[[[[[[1]]]]]]]}", 21, 0, 8, 21);
	ck_assert_str_eq(got, "M:{\"a\":[[[[[[[1]]]]]]]}|");
	free(got);
	got = run_stream("{\"a\":[[[[[[[[1]]]]]]]]}", 23, 0, 8, 23);
	ck_assert_ptr_nonnull(strstr(got,
	    "E:@JSON nesting depth limit exceeded|"));
	free(got);
}
END_TEST

/* A strict reader cannot be made past QEMU's own limits. */
START_TEST(test_qemu_limits)
{
	struct qmp_reader	*r;

	r = qmp_reader_new(QMP_SIZE_MAX, QMP_DEPTH_MAX, QMP_READ_STRICT);
	ck_assert_ptr_nonnull(r);
	qmp_reader_free(r);
	ck_assert_ptr_null(qmp_reader_new(QMP_SIZE_MAX + 1, QMP_DEPTH_MAX,
	    QMP_READ_STRICT));
	ck_assert_ptr_null(qmp_reader_new(QMP_SIZE_MAX, QMP_DEPTH_MAX + 1,
	    QMP_READ_STRICT));
}
END_TEST

/*
 * The members kept: one of each QMP key in input order, the first
 * stranger, and where each can be cut with one comma.
 */
START_TEST(test_members)
{
	struct qmp_reader	*r = qmp_reader_new(1 << 20, 64,
				    QMP_READ_STRICT);
	struct evbuffer		*in = evbuffer_new();
	struct qmp_msg		 msg;
	struct qmp_span		 cut;

	evbuffer_add_printf(in, "{ \"execute\" : 3, \"arguments\":[], "
	    "\"foo\":{}, \"id\":1 }");
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
	ck_assert_int_eq(msg.nmembers, 3);
	ck_assert_int_eq(msg.members[0].type, QMP_TYPE_NUMBER);
	ck_assert_int_eq(msg.members[1].type, QMP_TYPE_ARRAY);
	ck_assert_int_eq(msg.m_id, 2);
	ck_assert_int_eq(msg.has_other, 1);
	ck_assert_int_eq(msg.other.type, QMP_TYPE_OBJECT);
	ck_assert_str_eq(msg.other_name, "foo");
	cut = qmp_msg_cut_member(&msg, msg.m_id);
	ck_assert_mem_eq(msg.buf + cut.off, ", \"id\":1", cut.len);
	cut = qmp_msg_cut_member(&msg, 0);
	ck_assert_mem_eq(msg.buf + cut.off, "\"execute\" : 3, ", cut.len);
	qmp_msg_clear(&msg);

	/* names are decoded, as QEMU compares them */
	evbuffer_add_printf(in, "{\"\\u0065xecute\":\"st\\u006fp\"}");
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
	ck_assert_int_eq(msg.kind, QMP_KIND_COMMAND);
	ck_assert_str_eq(msg.name, "stop");
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
 * next message starts clean; without QMP_READ_STRICT nothing is looked
 * for.
 */
START_TEST(test_dupkey_any_depth)
{
	const char	*s = dupcases[_i].json;
	const char	*next = "{\"a\":{\"a\":1},\"b\":2}";
	char		*in, *want, *got;
	size_t		 step;

	ck_assert_int_ne(asprintf(&in, "%s%s", s, next), -1);
	if (dupcases[_i].dupkey)
		ck_assert_int_ne(asprintf(&want, "E:duplicate key|M:%s|",
		    next), -1);
	else
		ck_assert_int_ne(asprintf(&want, "M:%s|M:%s|", s, next), -1);
	for (step = strlen(in); step > 0; step--) {
		got = run_stream(in, strlen(in), QMP_READ_STRICT, 64, step);
		ck_assert_msg(strcmp(got, want) == 0, "%s in pieces of %zu: "
		    "got %s", s, step, got);
		free(got);
	}
	free(want);
	ck_assert_int_ne(asprintf(&want, "M:%s|M:%s|", s, next), -1);
	got = run_stream(in, strlen(in), 0, 64, strlen(in));
	ck_assert_str_eq(got, want);
	free(got);
	free(want);
	free(in);
}
END_TEST

/*
 * 100,000 keys in one object, the repeat last: found, and in the time
 * of a hash (a quadratic scan would take minutes under ASan).
 */
START_TEST(test_dupkey_many_keys)
{
	struct qmp_reader	*r = qmp_reader_new(8 << 20, 64,
				    QMP_READ_STRICT);
	struct evbuffer		*in = evbuffer_new();
	struct qmp_msg		 msg;
	int			 i, last;

	for (last = 0; last < 2; last++) {
		evbuffer_add_printf(in, "{\"k\":0");
		for (i = 1; i < 100000; i++)
			evbuffer_add_printf(in, ",\"k%d\":{\"k\":%d}", i, i);
		evbuffer_add_printf(in, last ? ",\"k77777\":0}" : "}");
		ck_assert_int_eq(qmp_reader_next(r, in, &msg),
		    last ? QMP_ERR_JSON : QMP_MESSAGE);
		if (last)
			ck_assert_str_eq(qmp_reader_error(r),
			    "JSON parse error, duplicate key");
		else
			qmp_msg_clear(&msg);
	}
	evbuffer_free(in);
	qmp_reader_free(r);
}
END_TEST

/* UTF-8 as QEMU's mod_utf8_codepoint decodes it. */
START_TEST(test_utf8)
{
	static const struct {
		const char	*s;
		int		 cp;
		size_t		 used;
	} u[] = {
		{ "A", 'A', 1 },
		{ "\xc3\xa9", 0xe9, 2 },
		{ "\xc0\x80", 0, 2 },		/* modified UTF-8's NUL */
		{ "\xc1\x81", -1, 2 },		/* overlong */
		{ "\xe0\x80\x80", -1, 3 },	/* overlong */
		{ "\xed\xa0\x80", -1, 3 },	/* surrogate */
		{ "\xef\xb7\x90", -1, 3 },	/* U+FDD0, noncharacter */
		{ "\xef\xbf\xbe", -1, 3 },	/* U+FFFE */
		{ "\xf0\x9f\x98\x80", 0x1f600, 4 },
		{ "\xf4\x90\x80\x80", -1, 4 },	/* past U+10FFFF */
		{ "\xc3(", -1, 1 },		/* cut short */
		{ "\x80", -1, 1 },		/* a continuation */
		{ "\xfe", -1, 1 },
	};
	size_t	 i, used;

	for (i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
		ck_assert_int_eq(utf8_codepoint((const unsigned char *)
		    u[i].s, strlen(u[i].s), &used), u[i].cp);
		ck_assert_uint_eq(used, u[i].used);
	}
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

/*
 * The fast path of what QEMU writes (qmp_fast) against the slow one
 * (QMP_READ_SLOW), on the same bytes: every status, message, member,
 * name and error must be the same, and so must what is left unread.
 */
static const char *fast_inputs[] = {
	"{\"timestamp\": {\"seconds\": 1764500000, \"microseconds\": 12}, "
	    "\"event\": \"FLOOD\", \"data\": {\"n\": 0}}\r\n",
	"{\"return\": {\"status\": \"running\", \"singlestep\": false, "
	    "\"running\": true}, \"id\": 7}\r\n{\"return\": {}}\r\n",
	"  \r\n\t{\"a\":1,\"a\":2,\"b\":[],\"c\":{},\"id\":\"x\",\"id\":3}",
	"{\"execute\":\"x\",\"exec-oob\":\"y\",\"event\":\"z\"} ",
	"{\"return\": [1, -0, 0.5, -1.25e+3, 2E-2, 10e5, null, true, false]} ",
	"{\"return\": 0e5} ",
	"{\"return\": 01} ",
	"{\"return\": -} ",
	"{\"return\": 1.} ",
	"{\"return\": 1e} ",
	"{\"return\": truex} ",
	"{\"return\": nul} ",
	"{\"return\": 'single'} ",
	"{\"return\": \"esc\\n\"} ",
	"{\"return\": \"\xc3\xa9\"} ",
	"{\"return\": \"\xff\"} ",
	"{\"return\": {\"a\": [[[[[[[[1]]]]]]]]}} ",
	"{\"return\": 1,} ",
	"{\"return\" 1} ",
	"{1: 2} ",
	"{\"return\": 1}} ",
	"{\"return\": 1",
	"[1] {\"return\": 1} ",
	"{\"event\": \"NAME_THAT_IS_LONG_ENOUGH_TO_BE_CUT_AT_THE_BOUND_OF_"
	    "QMP_NAME_MAX_0123456789012345678901234567890123456789012345678901"
	    "234567890123456789012345678901234567890123456789012345678901234567"
	    "890123456789012345678901234567890123456789012345678901234567890123"
	    "45678901234567890\"} ",
	"{\"other\": 1, \"another\": 2, \"id\": 3} {} x {\"a\": 1} ",
	"{\"execute\":\"query-status\",\"id\":12}\n",
	"{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": "
	    "\"file\", \"node-name\": \"f\", \"filename\": \"/x\", "
	    "\"node-name\": \"g\"}, \"id\": \"a\"}\n",
	"{\"z\": 1, \"y\": 2, \"x\": 3, \"w\": 4, \"v\": 5, \"u\": 6, "
	    "\"execute\": \"q\", \"t\": 7, \"id\": 1}\n",
	"{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,"
	    "\"h\":8,\"i\":9,\"j\":10,\"k\":11,\"l\":12,\"m\":13,"
	    "\"n\":14,\"o\":15,\"p\":16,\"q\":17,\"a\":18}\n",
	"{\"a\": {\"b\": 1, \"b\": 2}, \"execute\": \"x\"}\n",
	"{\"a\": [{\"b\": 1}, {\"b\": 2}], \"a\": 3}\n",
};
#define NFAST (sizeof(fast_inputs) / sizeof(fast_inputs[0]))

/* One reading of what a reader makes of bytes, to compare. */
static void
fast_read(const char *in, size_t len, int flags, unsigned int depth,
    size_t max, char **out, size_t *outlen)
{
	struct qmp_reader	*r = qmp_reader_new(max, depth, flags);
	struct evbuffer		*b = evbuffer_new(), *o = evbuffer_new();
	struct qmp_msg		 msg;
	enum qmp_status		 st;
	int			 i, n = 0;

	ck_assert_ptr_nonnull(r);
	evbuffer_add(b, in, len);
	while (n++ < 64 && (st = qmp_reader_next(r, b, &msg)) !=
	    QMP_NEED_MORE) {
		evbuffer_add_printf(o, "status %d\n", (int)st);
		if (st != QMP_MESSAGE) {
			evbuffer_add_printf(o, "error %s\n",
			    qmp_reader_error(r));
			continue;
		}
		evbuffer_add_printf(o, "len %zu kind %d name %s trunc %d "
		    "n %d id %d ex %d oob %d args %d\n", msg.len,
		    (int)msg.kind, msg.name, msg.name_truncated,
		    msg.nmembers, msg.m_id, msg.m_execute, msg.m_exec_oob,
		    msg.m_arguments);
		evbuffer_add(o, msg.buf, msg.len + 1);
		for (i = 0; i < msg.nmembers; i++)
			evbuffer_add(o, &msg.members[i],
			    sizeof(msg.members[i]));
		if (msg.has_other) {
			evbuffer_add(o, &msg.other, sizeof(msg.other));
			evbuffer_add_printf(o, "other %s\n", msg.other_name);
		}
		qmp_msg_clear(&msg);
	}
	evbuffer_add_printf(o, "pending %zu left %zu\n",
	    qmp_reader_pending(r), evbuffer_get_length(b));
	*outlen = evbuffer_get_length(o);
	*out = malloc(*outlen);
	ck_assert_ptr_nonnull(*out);
	evbuffer_remove(o, *out, *outlen);
	evbuffer_free(o);
	evbuffer_free(b);
	qmp_reader_free(r);
}

/* Whether the two readings of in agree; say where they do not. */
static void
fast_same(const char *in, size_t len, unsigned int depth, size_t max)
{
	char	*a, *b;
	size_t	 alen, blen;

	int	 strict;

	/* QEMU's output, and a client's input (strict) */
	for (strict = 0; strict <= QMP_READ_STRICT; strict +=
	    QMP_READ_STRICT) {
		fast_read(in, len, strict, depth, max, &a, &alen);
		fast_read(in, len, strict | QMP_READ_SLOW, depth, max, &b,
		    &blen);
		ck_assert_msg(alen == blen && memcmp(a, b, alen) == 0,
		    "fast and slow readings differ for %.*s (depth %u, max "
		    "%zu, flags %d)", (int)len, in, depth, max, strict);
		free(a);
		free(b);
	}
}

START_TEST(test_fast_as_slow)
{
	const char	*in = fast_inputs[_i];
	size_t		 len = strlen(in);

	fast_same(in, len, 1024, 1 << 20);
	/* at the bounds: depth and size, just under, at and over */
	fast_same(in, len, 2, 1 << 20);
	fast_same(in, len, 8, 1 << 20);
	fast_same(in, len, 1024, 20);
	fast_same(in, len, 1024, len > 4 ? len - 4 : 1);
}
END_TEST

/*
 * The same on mutations of QEMU's messages: a byte or two replaced by
 * one of those that steer the lexer, a few thousand times, seeded.
 */
START_TEST(test_fast_mutations)
{
	static const char	 alphabet[] = "{}[]:,\"'\\ \t\r\n0123456789"
				    "eE.+-tfnlrsuaxq\x80\xc3\xa9\x7f\x01";
	char			 buf[512];
	unsigned int		 seed = 13;
	size_t			 len, k, j;
	int			 round;

	for (round = 0; round < 4000; round++) {
		const char	*src = fast_inputs[round % NFAST];

		len = strlen(src);
		if (len >= sizeof(buf))
			len = sizeof(buf) - 1;
		memcpy(buf, src, len);
		for (j = 0; j < 1 + (unsigned int)round % 3; j++) {
			k = (size_t)rand_r(&seed) % len;
			buf[k] = alphabet[(size_t)rand_r(&seed) %
			    (sizeof(alphabet) - 1)];
		}
		fast_same(buf, len, 1024, 1 << 20);
		fast_same(buf, len, 3, 1 << 20);
	}
}
END_TEST

/*
 * Ids as QEMU 7.2 writes back what it parsed, each seen from the real
 * QEMU (check_diff compares most of them with it; 1e999 comes back as
 * inf, which no JSON reader takes, so it is held here).  NULL: the
 * bytes are already as QEMU writes them, and are taken as they are.
 */
static const struct {
	const char	*id;
	const char	*written;
} ids_written[] = {
	{ "\"libvirt-413\"", NULL },
	{ "413", NULL },
	{ "-7", NULL },
	{ "0", NULL },
	{ "'x'", "\"x\"" },
	{ "0.1", "0.10000000000000001" },
	{ "1.0e2", "100" },
	{ "-0", "0" },
	{ "-0.0", "-0" },
	{ "1e999", "inf" },
	{ "-1e999", "-inf" },
	{ "1.5e-7", "1.4999999999999999e-07" },
	{ "18446744073709551615", "18446744073709551615" },
	{ "18446744073709551616", "1.8446744073709552e+19" },
	{ "-9223372036854775808", "-9223372036854775808" },
	{ "-9223372036854775809", "-9.2233720368547758e+18" },
	{ "007", NULL },	/* three tokens: not an id at all, see below */
	{ "{'b': [1, {}], 'a': 'x\\u00e9\\/'}",
	    "{\"a\": \"x\\u00E9/\", \"b\": [1, {}]}" },
	{ "{\"c\":1,\"b\":2,\"a\":3,\"id\":4,\"execute\":5}",
	    "{\"a\": 3, \"execute\": 5, \"b\": 2, \"c\": 1, \"id\": 4}" },
	{ "\"\\ud83d\\ude00\"", "\"\\uD83D\\uDE00\"" },
	{ "\"\xf0\x9f\x98\x80\"", "\"\\uD83D\\uDE00\"" },
	{ "\"\\u0000\\u001f\x7f\"", "\"\\u0000\\u001F\\u007F\"" },
	{ "'it\\'s \"q\"'", "\"it's \\\"q\\\"\"" },
	{ "[ true ,false,null ]", "[true, false, null]" },
	{ "{ }", "{}" },
	{ "[ ]", "[]" },
};
#define NIDS	(sizeof(ids_written) / sizeof(ids_written[0]))

/* A command's id, read strictly, comes out as QEMU writes it. */
START_TEST(test_ids_as_written)
{
	struct qmp_reader	*r;
	struct evbuffer		*in;
	struct qmp_msg		 msg;
	const char		*text;
	size_t			 len;

	r = qmp_reader_new(QMP_SIZE_MAX, QMP_DEPTH_MAX, QMP_READ_STRICT);
	in = evbuffer_new();
	ck_assert(r != NULL && in != NULL);
	evbuffer_add_printf(in, "{\"execute\": \"x\", \"id\": %s}\n",
	    ids_written[_i].id);
	if (strcmp(ids_written[_i].id, "007") == 0) {
		/* QEMU's lexer reads 0 0 7: a parse error, no message */
		ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_ERR_JSON);
		goto out;
	}
	ck_assert_int_eq(qmp_reader_next(r, in, &msg), QMP_MESSAGE);
	text = qmp_msg_id_text(&msg, &len);
	ck_assert_ptr_nonnull(text);
	if (ids_written[_i].written == NULL) {
		ck_assert_ptr_null(msg.id_text);
		ck_assert_uint_eq(len, strlen(ids_written[_i].id));
		ck_assert_mem_eq(text, ids_written[_i].id, len);
	} else {
		ck_assert_ptr_nonnull(msg.id_text);
		ck_assert_msg(len == strlen(ids_written[_i].written) &&
		    memcmp(text, ids_written[_i].written, len) == 0,
		    "id %s: written %.*s, QEMU writes %s", ids_written[_i].id,
		    (int)len, text, ids_written[_i].written);
	}
	qmp_msg_clear(&msg);
out:
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
	tcase_add_test(tc, test_qemu_limits);
	suite_add_tcase(s, tc);

	tc = tcase_create("as QEMU");
	tcase_add_loop_test(tc, test_streams, 0, NSTREAMS);
	tcase_add_test(tc, test_utf8);
	tcase_add_test(tc, test_members);
	tcase_add_loop_test(tc, test_dupkey_any_depth, 0, NDUPCASES);
	tcase_add_test(tc, test_dupkey_many_keys);
	tcase_add_test(tc, test_msg_slack);
	tcase_add_loop_test(tc, test_ids_as_written, 0, NIDS);
	suite_add_tcase(s, tc);

	tc = tcase_create("fast path");
	tcase_add_loop_test(tc, test_fast_as_slow, 0, NFAST);
	tcase_add_test(tc, test_fast_mutations);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (t_run(qmp_suite()));
}
