/*
 * Replies the proxy makes itself, written the way QEMU 7.2 writes them:
 * ": " and ", " separators, "id" first in an error and last in a
 * return, "\r\n" after each message.  Clients that compare text (tests,
 * scripts) then cannot tell the proxy's replies from QEMU's.
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "qmpmux.h"

/*
 * Append s as a JSON string, escaped as QEMU's JSON writer escapes it.
 * The proxy's errors quote the client's bytes (a stray byte, a bad
 * escape), and must read exactly as QEMU's would.
 */
void
reply_string(struct evbuffer *out, const char *s)
{
	qmp_write_string(out, s, strlen(s));
}

/* Append an error reply; id is the client's id bytes, or NULL. */
void
reply_error(struct evbuffer *out, const char *id, size_t idlen,
    const char *class, const char *fmt, ...)
{
	va_list		 ap;

	va_start(ap, fmt);
	reply_verror(out, id, idlen, class, fmt, ap);
	va_end(ap);
}

/* The same, with the arguments of the description as a va_list. */
void
reply_verror(struct evbuffer *out, const char *id, size_t idlen,
    const char *class, const char *fmt, va_list ap)
{
	char		*desc;

	/* as long as it takes: a stray token is quoted whole, as by QEMU */
	if (vasprintf(&desc, fmt, ap) == -1)
		fatal("%s", __func__);

	evbuffer_add_printf(out, "{");
	if (id != NULL) {
		evbuffer_add_printf(out, "\"id\": ");
		evbuffer_add(out, id, idlen);
		evbuffer_add_printf(out, ", ");
	}
	evbuffer_add_printf(out, "\"error\": {\"class\": ");
	reply_string(out, class);
	evbuffer_add_printf(out, ", \"desc\": ");
	reply_string(out, desc);
	evbuffer_add_printf(out, "}}\r\n");
	free(desc);
}

/* Append an empty return, as for qmp_capabilities. */
void
reply_return(struct evbuffer *out, const char *id, size_t idlen)
{
	reply_return_value(out, "{}", 2, id, idlen);
}

/* Append a return of the JSON value val (the proxy's own commands). */
void
reply_return_value(struct evbuffer *out, const char *val, size_t len,
    const char *id, size_t idlen)
{
	evbuffer_add(out, "{\"return\": ", 11);
	evbuffer_add(out, val, len);
	if (id != NULL) {
		evbuffer_add_printf(out, ", \"id\": ");
		evbuffer_add(out, id, idlen);
	}
	evbuffer_add_printf(out, "}\r\n");
}

/*
 * Point at the id of a message as QEMU writes it back (not always its
 * bytes: see qmp_msg_id_text); NULL when it has none.
 */
void
reply_id(const struct qmp_msg *msg, const char **id, size_t *len)
{
	*id = qmp_msg_id_text(msg, len);
}

/*
 * Check a client's message as QEMU's qmp_dispatch does before it looks
 * up the command, with QEMU's texts.  Returns 0 when it is a well-formed
 * command, or -1 with desc filled (class GenericError).  allow_oob is
 * whether the client negotiated oob: without it exec-oob is a stranger.
 *
 * QEMU checks the members in its hash table's order, and "id" is taken
 * out before; the reader placed each member in that order (bucket and
 * seq), and kept of the other members only the one QEMU meets first,
 * so walking those few in that order finds QEMU's error.
 */
int
reply_check_command(const struct qmp_msg *msg, int allow_oob, char *desc,
    size_t size)
{
	const struct qmp_member	*walk[QMP_MEMBERS_MAX + 1], *m, *t;
	const char		*exec = NULL, *name;
	int			 i, j, n = 0;

	if (msg->kind == QMP_KIND_NONOBJECT) {
		snprintf(desc, size, "QMP input must be a JSON object");
		return (-1);
	}
	for (i = 0; i < msg->nmembers; i++) {
		if (msg->members[i].key != QMP_KEY_ID)
			walk[n++] = &msg->members[i];
	}
	if (msg->has_other)
		walk[n++] = &msg->other;
	/* a handful: insertion sort, buckets up, the later first in one */
	for (i = 1; i < n; i++) {
		for (j = i; j > 0; j--) {
			m = walk[j - 1];
			t = walk[j];
			if (m->bucket < t->bucket || (m->bucket == t->bucket &&
			    m->seq > t->seq))
				break;
			walk[j - 1] = t;
			walk[j] = m;
		}
	}
	for (i = 0; i < n; i++) {
		m = walk[i];
		name = m->key == QMP_KEY_OTHER ? msg->other_name :
		    qmp_key_name(m->key);
		switch (m->key) {
		case QMP_KEY_EXEC_OOB:
			if (!allow_oob)
				goto unexpected;
			/* FALLTHROUGH */
		case QMP_KEY_EXECUTE:
			if (m->type != QMP_TYPE_STRING) {
				snprintf(desc, size,
				    "QMP input member '%s' must be a string",
				    name);
				return (-1);
			}
			if (exec != NULL) {
				snprintf(desc, size, "QMP input member '%s' "
				    "clashes with '%s'", name, exec);
				return (-1);
			}
			exec = name;
			break;
		case QMP_KEY_ARGUMENTS:
			if (m->type != QMP_TYPE_OBJECT) {
				snprintf(desc, size, "QMP input member "
				    "'arguments' must be an object");
				return (-1);
			}
			break;
		default:
		unexpected:
			snprintf(desc, size,
			    "QMP input member '%s' is unexpected", name);
			return (-1);
		}
	}
	if (exec == NULL) {
		snprintf(desc, size, "QMP input lacks member 'execute'");
		return (-1);
	}
	return (0);
}

/* glib's prime moduli, by shift (g_hash_table's prime_mod). */
static const unsigned int reply_gprimes[] = { 1, 2, 3, 7, 13, 31, 61, 127,
	251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
	262139, 524287, 1048573, 2097143, 4194301 };
#define REPLY_GSHIFT_MAX \
	(sizeof(reply_gprimes) / sizeof(reply_gprimes[0]) - 1)

/*
 * glib's g_str_hash, and where its GHashTable puts a key in a table of
 * 1 << shift slots: hash times 11 modulo a prime, then probing by a
 * step that grows by one.
 */
static unsigned int
reply_gslot(const char *key, const size_t *used, unsigned int shift)
{
	const signed char	*p;
	uint32_t		 h = 5381;
	unsigned int		 i, step = 0, mask = (1U << shift) - 1;

	for (p = (const signed char *)key; *p != '\0'; p++)
		h = (h << 5) + h + (uint32_t)(int32_t)*p;
	if (h < 2)
		h = 2;
	i = (uint32_t)(h * 11U) % reply_gprimes[shift];
	while (used[i]) {
		step++;
		i = (i + step) & mask;
	}
	return (i);
}

/*
 * Of n keys, in the order QEMU's input visitor adds them to its table
 * (its QDict's), the one it names as unexpected, "enable" aside: the
 * first in the GHashTable's slots; -1 if none.  Up to seven keys that
 * is glib's table exactly (8 slots).  Past that glib grows the table
 * in place as keys come; this puts them all in a table of the size it
 * ends with, which may differ from glib's where keys collided.
 */
static int
reply_unexpected(char **keys, size_t n)
{
	size_t		*used, k, occupied;
	unsigned int	 shift = 3, i;
	int		 first = -1;

	for (occupied = 1; occupied <= n; occupied++) {
		if ((1U << shift) > occupied + occupied / 16)
			continue;
		for (shift = 0, k = occupied * 1333 / 1000; k; k >>= 1)
			shift++;
		if (shift < 3)
			shift = 3;
		if (shift > REPLY_GSHIFT_MAX)
			shift = REPLY_GSHIFT_MAX;
	}
	if ((used = calloc(1U << shift, sizeof(*used))) == NULL)
		fatal("%s", __func__);
	for (k = 0; k < n && k + 1 < (1U << shift); k++)
		used[reply_gslot(keys[k], used, shift)] = k + 1;
	for (i = 0; i < (1U << shift) && first == -1; i++) {
		if (used[i] && strcmp(keys[used[i] - 1], "enable") != 0)
			first = (int)used[i] - 1;
	}
	free(used);
	return (first);
}

/* Sort keys (decoded, in input order) into the order QEMU's QDict has. */
static void
reply_qdict_order(char **keys, size_t n)
{
	unsigned int	*bucket, tb;
	char		*tk;
	size_t		 i, j;

	if ((bucket = calloc(n + 1, sizeof(*bucket))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < n; i++)
		bucket[i] = qmp_qdict_bucket(keys[i], strlen(keys[i]));
	/* stable in buckets going up; in one, the later first */
	for (i = 1; i < n; i++) {
		for (j = i; j > 0 && bucket[j - 1] >= bucket[j]; j--) {
			tb = bucket[j - 1];
			bucket[j - 1] = bucket[j];
			bucket[j] = tb;
			tk = keys[j - 1];
			keys[j - 1] = keys[j];
			keys[j] = tk;
		}
	}
	free(bucket);
}

/*
 * The arguments of qmp_capabilities, checked as QEMU checks them, read
 * from the message the reader took: "enable" first, a list of the
 * capabilities QEMU knows (oob alone), then any other parameter.  -1
 * with desc filled in; else *oob says whether oob was asked for.
 * Whether it may be had, and whether it is too late to ask, are for
 * the caller.
 */
int
reply_check_caps(const struct qmp_msg *msg, int *oob, char *desc, size_t len)
{
	const struct qmp_member	*args;
	struct qmp_span		 key, val, item, enable = { 0, 0 };
	char			**keys = NULL, *s;
	size_t			 n = 0, cap = 0, pos, end, i, slen;
	int			 rc = -1, bad;

	*oob = 0;
	if (msg->m_arguments == -1)
		return (0);
	args = &msg->members[msg->m_arguments];
	pos = args->val_off;
	end = args->val_end;
	/* the QDict's order: buckets up, the later first in one */
	while (qmp_object_next(msg->buf, end, &pos, &key, &val)) {
		if (n == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((keys = reallocarray(keys, cap,
			    sizeof(*keys))) == NULL)
				fatal("%s", __func__);
		}
		keys[n++] = qmp_string_decode(msg->buf, key, &slen);
		if (strcmp(keys[n - 1], "enable") == 0)
			enable = val;
	}
	if (enable.len > 0) {
		if (qmp_value_type(msg->buf, enable.off) != QMP_TYPE_ARRAY) {
			snprintf(desc, len, "Invalid parameter type for "
			    "'enable', expected: array");
			goto out;
		}
		pos = enable.off;
		for (i = 0; qmp_array_next(msg->buf, enable.off + enable.len,
		    &pos, &item); i++) {
			if (qmp_value_type(msg->buf, item.off) !=
			    QMP_TYPE_STRING) {
				snprintf(desc, len, "Invalid parameter type "
				    "for 'enable[%zu]', expected: string", i);
				goto out;
			}
			s = qmp_string_decode(msg->buf, item, &slen);
			bad = strcmp(s, "oob") != 0;
			if (bad)
				snprintf(desc, len, "Parameter 'null' does "
				    "not accept value '%s'", s);
			free(s);
			if (bad)
				goto out;
			*oob = 1;
		}
	}
	reply_qdict_order(keys, n);
	if ((bad = reply_unexpected(keys, n)) != -1) {
		snprintf(desc, len, "Parameter '%s' is unexpected", keys[bad]);
		goto out;
	}
	rc = 0;
out:
	for (i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	return (rc);
}
