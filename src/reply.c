/*
 * Replies the proxy makes itself, written the way QEMU 7.2 writes them:
 * ": " and ", " separators, "id" first in an error and last in a
 * return, "\r\n" after each message.  Clients that compare text (tests,
 * scripts) then cannot tell the proxy's replies from QEMU's.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "qmpmux.h"

/* Append s as a JSON string. */
void
reply_string(struct evbuffer *out, const char *s)
{
	const unsigned char	*p;

	evbuffer_add(out, "\"", 1);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			evbuffer_add_printf(out, "\\%c", *p);
		else if (*p < 0x20)
			evbuffer_add_printf(out, "\\u%04x", *p);
		else
			evbuffer_add(out, p, 1);
	}
	evbuffer_add(out, "\"", 1);
}

/* Append an error reply; id is the client's id bytes, or NULL. */
void
reply_error(struct evbuffer *out, const char *id, size_t idlen,
    const char *class, const char *fmt, ...)
{
	char		 desc[1024];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);

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

/* The member name as QEMU prints it in its errors. */
static const char *
reply_member_name(const struct qmp_msg *msg, const struct qmp_member *m)
{
	return (m->key == QMP_KEY_OTHER ? msg->other : qmp_key_name(m->key));
}

/*
 * Check a client's message as QEMU's qmp_dispatch does before it looks
 * up the command, with QEMU's texts.  Returns 0 when it is a well-formed
 * command, or -1 with desc filled (class GenericError).  allow_oob is
 * whether the client negotiated oob: without it exec-oob is a stranger.
 */
int
reply_check_command(const struct qmp_msg *msg, int allow_oob, char *desc,
    size_t size)
{
	const struct qmp_member	*m;
	const char		*exec = NULL, *name;
	int			 i;

	/* a parse error first, as in QEMU: [{"a":1,"a":2}] is one */
	if (msg->dupkey) {
		snprintf(desc, size, "JSON parse error, duplicate key");
		return (-1);
	}
	if (msg->kind == QMP_KIND_NONOBJECT) {
		snprintf(desc, size, "QMP input must be a JSON object");
		return (-1);
	}
	for (i = 0; i < msg->nmembers; i++) {
		m = &msg->members[i];
		name = reply_member_name(msg, m);
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
		case QMP_KEY_ID:
			break;
		default:
		unexpected:
			snprintf(desc, size,
			    "QMP input member '%s' is unexpected", name);
			return (-1);
		}
	}
	if (msg->toomany) {
		/* more than the recorded members: at least one stranger */
		snprintf(desc, size, "QMP input has too many members");
		return (-1);
	}
	if (exec == NULL) {
		snprintf(desc, size, "QMP input lacks member 'execute'");
		return (-1);
	}
	return (0);
}
