/*
 * Replies the proxy makes itself, written the way QEMU 7.2 writes them:
 * ": " and ", " separators, "id" first in an error and last in a
 * return, "\r\n" after each message.  Clients that compare text (tests,
 * scripts) then cannot tell the proxy's replies from QEMU's.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <yajl/yajl_tree.h>

#include "qmpmux.h"

/*
 * Append s as a JSON string, escaped as QEMU's JSON writer escapes it:
 * short forms for the usual controls, \uXXXX in capitals for any other
 * control, DEL and everything past ASCII (surrogate pairs beyond the
 * BMP), and U+FFFD for bytes that are not UTF-8.  The proxy's errors
 * quote the client's bytes (a stray byte, a bad escape), and must read
 * exactly as QEMU's would.
 */
void
reply_string(struct evbuffer *out, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 left = strlen(s), used;
	int			 cp;

	evbuffer_add(out, "\"", 1);
	while (left > 0) {
		cp = qmp_utf8_codepoint(p, left, &used);
		p += used;
		left -= used;
		switch (cp) {
		case '"':
			evbuffer_add(out, "\\\"", 2);
			break;
		case '\\':
			evbuffer_add(out, "\\\\", 2);
			break;
		case '\b':
			evbuffer_add(out, "\\b", 2);
			break;
		case '\f':
			evbuffer_add(out, "\\f", 2);
			break;
		case '\n':
			evbuffer_add(out, "\\n", 2);
			break;
		case '\r':
			evbuffer_add(out, "\\r", 2);
			break;
		case '\t':
			evbuffer_add(out, "\\t", 2);
			break;
		default:
			if (cp < 0)
				cp = 0xfffd;
			if (cp > 0xffff)
				evbuffer_add_printf(out, "\\u%04X\\u%04X",
				    0xd800 + ((cp - 0x10000) >> 10),
				    0xdc00 + ((cp - 0x10000) & 0x3ff));
			else if (cp < 0x20 || cp >= 0x7f)
				evbuffer_add_printf(out, "\\u%04X", cp);
			else
				evbuffer_add(out, p - 1, 1);
			break;
		}
	}
	evbuffer_add(out, "\"", 1);
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
	evbuffer_add_printf(out, "{\"return\": {}");
	if (id != NULL) {
		evbuffer_add_printf(out, ", \"id\": ");
		evbuffer_add(out, id, idlen);
	}
	evbuffer_add_printf(out, "}\r\n");
}

/* Point at the id bytes of a message; NULL when it has none. */
void
reply_id(const struct qmp_msg *msg, const char **id, size_t *len)
{
	struct qmp_span	 span = qmp_msg_id(msg);

	if (span.len == 0) {
		*id = NULL;
		*len = 0;
		return;
	}
	*id = msg->buf + span.off;
	*len = span.len;
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

/*
 * The arguments of qmp_capabilities (args, NULL for none), checked as
 * QEMU checks them: only "enable", a list of the capabilities QEMU
 * knows, which is oob alone.  -1 with desc filled in; else *oob says
 * whether oob was asked for.  Whether it may be had, and whether it is
 * too late to ask, are for the caller.
 */
int
reply_check_caps(const struct yajl_val_s *args, int *oob, char *desc,
    size_t len)
{
	yajl_val	 v, e;
	size_t		 i, k;

	*oob = 0;
	for (k = 0; args != NULL && k < args->u.object.len; k++) {
		v = args->u.object.values[k];
		if (strcmp(args->u.object.keys[k], "enable") != 0) {
			snprintf(desc, len, "Parameter '%s' is unexpected",
			    args->u.object.keys[k]);
			return (-1);
		}
		if (!YAJL_IS_ARRAY(v)) {
			snprintf(desc, len, "Invalid parameter type for "
			    "'enable', expected: array");
			return (-1);
		}
		for (i = 0; i < v->u.array.len; i++) {
			e = v->u.array.values[i];
			if (!YAJL_IS_STRING(e)) {
				snprintf(desc, len, "Invalid parameter type "
				    "for 'enable[%zu]', expected: string", i);
				return (-1);
			}
			if (strcmp(e->u.string, "oob") != 0) {
				snprintf(desc, len, "Parameter 'null' does not "
				    "accept value '%s'", e->u.string);
				return (-1);
			}
			*oob = 1;
		}
	}
	return (0);
}
