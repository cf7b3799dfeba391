/*
 * JSON out and in, for everything qmpmuxd writes or reads as JSON that
 * is not a QMP message passed through (those are qmp.c's bytes): the
 * state document, the dump, the control socket's replies, the fd
 * store's records.  Every yajl_gen call goes through here, so that its
 * status is checked in one place (json_ok): a generator that refuses is
 * a bug of ours, and a document cut short by one would be read back
 * wrong across a restart, so it is fatal, never ignored.
 */
#include "config.h"

#include <math.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "qmpmux.h"

/* What a generator's status means, for the message of a refusal. */
static const char *
json_status_text(yajl_gen_status st)
{
	switch (st) {
	case yajl_gen_keys_must_be_strings:
		return ("a key that is not a string");
	case yajl_max_depth_exceeded:
		return ("too deep");
	case yajl_gen_in_error_state:
		return ("already in error");
	case yajl_gen_generation_complete:
		return ("a value after the document's end");
	case yajl_gen_invalid_number:
		return ("a number that is not finite");
	case yajl_gen_no_buf:
		return ("no buffer");
	case yajl_gen_invalid_string:
		return ("a string that is not UTF-8");
	default:
		return ("an unknown status");
	}
}

/* The one check of a generator's status. */
static void
json_ok(yajl_gen_status st, const char *what)
{
	if (st != yajl_gen_status_ok)
		fatalx("json: %s refused: %s", what, json_status_text(st));
}

/* A generator of compact JSON. */
yajl_gen
json_new(void)
{
	yajl_gen	 g;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("%s: yajl_gen_alloc failed", __func__);
	return (g);
}

void
json_free(yajl_gen g)
{
	yajl_gen_free(g);
}

/* The text generated so far. */
void
json_buf(yajl_gen g, const unsigned char **buf, size_t *len)
{
	json_ok(yajl_gen_get_buf(g, buf, len), "get_buf");
}

void
json_map_open(yajl_gen g)
{
	json_ok(yajl_gen_map_open(g), "map_open");
}

void
json_map_close(yajl_gen g)
{
	json_ok(yajl_gen_map_close(g), "map_close");
}

void
json_array_open(yajl_gen g)
{
	json_ok(yajl_gen_array_open(g), "array_open");
}

void
json_array_close(yajl_gen g)
{
	json_ok(yajl_gen_array_close(g), "array_close");
}

void
json_null(yajl_gen g)
{
	json_ok(yajl_gen_null(g), "null");
}

void
json_bool(yajl_gen g, int v)
{
	json_ok(yajl_gen_bool(g, v != 0), "bool");
}

void
json_integer(yajl_gen g, long long v)
{
	json_ok(yajl_gen_integer(g, v), "integer");
}

/*
 * A double; one that is not finite (a bound of "no limit" divided out,
 * say) is the largest finite one of its sign, or 0 for NaN, since JSON
 * has no word for it and a reader of the document wants a number.
 */
void
json_double(yajl_gen g, double v)
{
	if (isnan(v))
		v = 0;
	else if (isinf(v))
		v = v > 0 ? DBL_MAX : -DBL_MAX;
	json_ok(yajl_gen_double(g, v), "double");
}

/* A number as its text, as a tree read it. */
void
json_number(yajl_gen g, const char *s, size_t len)
{
	json_ok(yajl_gen_number(g, s, len), "number");
}

void
json_string(yajl_gen g, const void *s, size_t len)
{
	json_ok(yajl_gen_string(g, s, len), "string");
}

/* A C string; NULL is null. */
void
json_cstr(yajl_gen g, const char *s)
{
	if (s == NULL)
		json_null(g);
	else
		json_string(g, s, strlen(s));
}

/* The generator's put helpers: a member, key then value. */
void
json_put_str(yajl_gen g, const char *key, const char *value)
{
	json_cstr(g, key);
	if (value == NULL)
		json_null(g);
	else
		json_cstr(g, value);
}

void
json_put_int(yajl_gen g, const char *key, long long value)
{
	json_cstr(g, key);
	json_integer(g, value);
}

/* An unsigned number, all 64 bits of it, where an integer stops at 63. */
void
json_put_uint(yajl_gen g, const char *key, unsigned long long value)
{
	char	 buf[32];
	int	 n;

	json_cstr(g, key);
	n = snprintf(buf, sizeof(buf), "%llu", value);
	json_number(g, buf, (size_t)n);
}

void
json_put_double(yajl_gen g, const char *key, double value)
{
	json_cstr(g, key);
	json_double(g, value);
}

void
json_put_bool(yajl_gen g, const char *key, int value)
{
	json_cstr(g, key);
	json_bool(g, value != 0);
}

/* Bytes as hex; NULL is null. */
void
json_put_hex(yajl_gen g, const char *key, const void *buf, size_t len)
{
	char	*hex;

	json_cstr(g, key);
	if (buf == NULL) {
		json_null(g);
		return;
	}
	if ((hex = malloc(len * 2 + 1)) == NULL)
		fatal("%s", __func__);
	util_hex_encode(hex, buf, len);
	json_string(g, hex, len * 2);
	free(hex);
}

/*
 * Copy an evbuffer's len bytes out, leaving them: by evbuffer_peek, since
 * evbuffer_copyout refuses a buffer whose start is frozen, as every
 * bufferevent's output is.
 */
static void
json_peek(struct evbuffer *b, char *to, size_t len)
{
	struct evbuffer_iovec	*v;
	int			 n, i;
	size_t			 off = 0;

	if (len == 0)
		return;
	n = evbuffer_peek(b, -1, NULL, NULL, 0);
	if ((v = calloc((size_t)n + 1, sizeof(*v))) == NULL)
		fatal("%s", __func__);
	n = evbuffer_peek(b, -1, NULL, v, n);
	for (i = 0; i < n && off < len; i++) {
		memcpy(to + off, v[i].iov_base, v[i].iov_len);
		off += v[i].iov_len;
	}
	free(v);
	if (off != len)
		fatalx("%s: %zu of %zu bytes", __func__, off, len);
}

/* An evbuffer's bytes as hex, left in it. */
void
json_put_evbuffer(yajl_gen g, const char *key, struct evbuffer *b,
    const char *before, size_t beforelen)
{
	size_t	 len = evbuffer_get_length(b);
	char	*buf;

	if ((buf = malloc(beforelen + len + 1)) == NULL)
		fatal("%s", __func__);
	if (beforelen > 0)
		memcpy(buf, before, beforelen);
	json_peek(b, buf + beforelen, len);
	json_put_hex(g, key, buf, beforelen + len);
	free(buf);
}

/* The tree's helpers: a member of o, or a default. */
yajl_val
json_get(yajl_val o, const char *key, int type)
{
	const char	*path[] = { key, NULL };

	if (o == NULL)
		return (NULL);
	return (yajl_tree_get(o, path, (yajl_type)type));
}

long long
json_get_int(yajl_val o, const char *key, long long dflt)
{
	yajl_val	 v = json_get(o, key, yajl_t_number);

	return (v != NULL && YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : dflt);
}

double
json_get_double(yajl_val o, const char *key, double dflt)
{
	yajl_val	 v = json_get(o, key, yajl_t_number);

	return (v != NULL ? YAJL_GET_DOUBLE(v) : dflt);
}

int
json_get_bool(yajl_val o, const char *key)
{
	return (json_get(o, key, yajl_t_true) != NULL);
}

const char *
json_get_str(yajl_val o, const char *key)
{
	yajl_val	 v = json_get(o, key, yajl_t_string);

	return (v != NULL ? YAJL_GET_STRING(v) : NULL);
}

/*
 * A hex member as bytes (NUL-terminated, for convenience), its length
 * in *len; NULL if it is null or missing.  The caller frees it.  In a
 * state document, state_parse has checked it.
 */
char *
json_get_hex(yajl_val o, const char *key, size_t *len)
{
	const char	*hex = json_get_str(o, key);
	char		*buf;
	size_t		 n;

	*len = 0;
	if (hex == NULL)
		return (NULL);
	n = strlen(hex) / 2;
	if ((buf = malloc(n + 1)) == NULL)
		fatal("%s", __func__);
	if (util_hex_decode(buf, hex, n) == -1)
		fatalx("%s: bad hex in %s", __func__, key);
	buf[n] = '\0';
	*len = n;
	return (buf);
}

/* Write a yajl tree back out, numbers as their text. */
void
json_tree(yajl_gen g, yajl_val v)
{
	size_t	 i;

	switch (v->type) {
	case yajl_t_string:
		json_cstr(g, v->u.string);
		break;
	case yajl_t_number:
		json_number(g, v->u.number.r, strlen(v->u.number.r));
		break;
	case yajl_t_object:
		json_map_open(g);
		for (i = 0; i < v->u.object.len; i++) {
			json_cstr(g,
			    v->u.object.keys[i]);
			json_tree(g, v->u.object.values[i]);
		}
		json_map_close(g);
		break;
	case yajl_t_array:
		json_array_open(g);
		for (i = 0; i < v->u.array.len; i++)
			json_tree(g, v->u.array.values[i]);
		json_array_close(g);
		break;
	case yajl_t_true:
		json_bool(g, 1);
		break;
	case yajl_t_false:
		json_bool(g, 0);
		break;
	default:
		json_null(g);
		break;
	}
}

/*
 * s as a JSON string into g, valid whatever its bytes: QEMU's C0 80 is
 * the NUL it stands for (yajl writes \u0000) and a byte that is not
 * UTF-8 is U+FFFD, as in QEMU's own replies.  yajl_gen_string alone
 * copies both as they are, which a strict reader refuses: a client's
 * command named "query-\u0000" made the dump invalid.
 */
void
json_qstring(yajl_gen g, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 len = strlen(s), left = len, used, n = 0;
	unsigned char		*buf;
	int			 cp, clean = 1;

	for (; left > 0 && clean; p += used, left -= used)
		clean = (cp = utf8_codepoint(p, left, &used)) > 0;
	if (clean) {
		json_string(g, s, len);
		return;
	}
	if ((buf = malloc(len * 3)) == NULL)
		fatal("%s", __func__);
	for (p = (const unsigned char *)s, left = len; left > 0;
	    p += used, left -= used) {
		if ((cp = utf8_codepoint(p, left, &used)) < 0) {
			used = 1;
			memcpy(buf + n, "\xef\xbf\xbd", 3);
			n += 3;
		} else if (cp == 0)
			buf[n++] = '\0';
		else {
			memcpy(buf + n, p, used);
			n += used;
		}
	}
	json_string(g, buf, n);
	free(buf);
}
