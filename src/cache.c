/*
 * The introspection cache of a VM: replies of QEMU that cannot change
 * while its process lives, kept as QEMU wrote them and given again to
 * clients that are not the manager, each with its own id, so that a
 * scraper's query-qmp-schema (20 ms of QEMU's, which it cannot be
 * interrupted in) never makes the manager wait for it.
 *
 * Fixed for the life of a process, and nothing else is kept:
 *  - query-qmp-schema: the schema is compiled into the binary;
 *  - query-version, query-target: so is what they say;
 *  - query-cpu-definitions: the CPU models are types registered at
 *    start, and what each lacks is decided by the accelerator and the
 *    host, both chosen at start.
 * Only such a command without arguments is answered, only from a reply
 * that QEMU gave without error, and only on the connection that read
 * it: cmd_fail_all drops the cache when the upstream goes, since the
 * next connection may be another QEMU (a new binary, another machine).
 * A restart of qmpmuxd starts with none.  introspection_cache bounds
 * its bytes per VM; a reply past it is not kept.
 */
#include "config.h"

#include <sys/queue.h>
#include <stdlib.h>
#include <string.h>

#include "qmpmux.h"

static const char *const cache_commands[] = {
	"query-qmp-schema",
	"query-cpu-definitions",
	"query-version",
	"query-target",
};
#define CACHE_N	(sizeof(cache_commands) / sizeof(cache_commands[0]))

struct cache {
	struct qmp_msg		*reply[CACHE_N];	/* QEMU's */
	size_t			 bytes;
};

/* Which of cache_commands a command is, or -1. */
static int
cache_slot(const char *name)
{
	size_t	i;

	for (i = 0; i < CACHE_N; i++) {
		if (strcmp(cache_commands[i], name) == 0)
			return ((int)i);
	}
	return (-1);
}

/*
 * Whether QEMU's reply to this command is fixed for its process: one of
 * cache_commands, in band, with no arguments (an empty object is one
 * too, but rare enough to go to QEMU).
 */
int
cache_fixed(const struct qmp_msg *msg)
{
	return (msg->m_exec_oob == -1 && msg->m_arguments == -1 &&
	    !msg->name_truncated && cache_slot(msg->name) != -1);
}

/*
 * The reply kept for a fixed command, or NULL.  A reload that lowered
 * introspection_cache below what is kept empties it.
 */
const struct qmp_msg *
cache_find(struct vm *vm, const char *name)
{
	int	i;

	if (vm->cache != NULL &&
	    vm->cache->bytes > vm->conf.introspection_cache)
		cache_drop(vm);
	if (vm->cache == NULL || (i = cache_slot(name)) == -1)
		return (NULL);
	return (vm->cache->reply[i]);
}

/*
 * QEMU answered a fixed command (cache_fixed): its reply is kept, its
 * bytes taken from msg, if it is a return and fits in what
 * introspection_cache leaves.  The caller has given it to its client.
 */
void
cache_fill(struct vm *vm, const char *name, struct qmp_msg *msg)
{
	struct qmp_msg	*keep;
	int		 i;

	if ((i = cache_slot(name)) == -1 || msg->kind != QMP_KIND_RETURN ||
	    msg->m_id == -1 || (vm->cache != NULL &&
	    (vm->cache->reply[i] != NULL ||
	    msg->len > vm->conf.introspection_cache - vm->cache->bytes)) ||
	    msg->len > vm->conf.introspection_cache)
		return;
	if (vm->cache == NULL && (vm->cache = calloc(1,
	    sizeof(*vm->cache))) == NULL)
		fatal("%s", __func__);
	if ((keep = malloc(sizeof(*keep))) == NULL)
		fatal("%s", __func__);
	*keep = *msg;
	keep->id_text = NULL;
	keep->id_text_len = 0;
	keep->buf = qmp_msg_steal(msg);
	vm->cache->reply[i] = keep;
	vm->cache->bytes += keep->len;
	vm_log(vm, LOG_DEBUG, "%s kept, %zu bytes", name, keep->len);
}

/* The bytes kept, for the dump. */
size_t
cache_bytes(const struct vm *vm)
{
	return (vm->cache == NULL ? 0 : vm->cache->bytes);
}

/* The i-th command whose reply is kept, or NULL past the last. */
const char *
cache_kept(const struct vm *vm, int i)
{
	size_t	k;

	for (k = 0; vm->cache != NULL && k < CACHE_N; k++) {
		if (vm->cache->reply[k] != NULL && i-- == 0)
			return (cache_commands[k]);
	}
	return (NULL);
}

/* Forget every reply: its QEMU may not be the next connection's. */
void
cache_drop(struct vm *vm)
{
	size_t	i;

	if (vm->cache == NULL)
		return;
	for (i = 0; i < CACHE_N; i++) {
		if (vm->cache->reply[i] == NULL)
			continue;
		qmp_msg_clear(vm->cache->reply[i]);
		free(vm->cache->reply[i]);
	}
	free(vm->cache);
	vm->cache = NULL;
}
