/*
 * Access lists of a listener: which commands its clients may send.  A
 * command is refused if the list is read-only and the command is not a
 * query, if there are allow globs and none matches it, or if a deny
 * glob matches it.  qmp_capabilities is always allowed: every client
 * must be able to negotiate.  The refusal is QEMU's own for a command
 * disabled with -compat or the like, so clients already handle it.
 */
#include "config.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "qmpmux.h"

/* Add a glob to the allow or the deny list. */
void
acl_add(struct acl *acl, int deny, const char *glob)
{
	char	***list = deny ? &acl->deny : &acl->allow;
	size_t	  *n = deny ? &acl->ndeny : &acl->nallow;
	char	 **nl;

	if ((nl = reallocarray(*list, *n + 1, sizeof(*nl))) == NULL ||
	    (nl[*n] = strdup(glob)) == NULL)
		fatal("%s", __func__);
	*list = nl;
	(*n)++;
}

/* Make dst a copy of src; dst holds nothing yet. */
void
acl_copy(struct acl *dst, const struct acl *src)
{
	size_t	 i;

	memset(dst, 0, sizeof(*dst));
	dst->read_only = src->read_only;
	for (i = 0; i < src->nallow; i++)
		acl_add(dst, 0, src->allow[i]);
	for (i = 0; i < src->ndeny; i++)
		acl_add(dst, 1, src->deny[i]);
}

/* Free what an acl holds and make it allow everything. */
void
acl_clear(struct acl *acl)
{
	size_t	 i;

	for (i = 0; i < acl->nallow; i++)
		free(acl->allow[i]);
	for (i = 0; i < acl->ndeny; i++)
		free(acl->deny[i]);
	free(acl->allow);
	free(acl->deny);
	memset(acl, 0, sizeof(*acl));
}

/* Whether two lists of globs are the same, in the same order. */
static int
acl_same_globs(char *const *a, size_t na, char *const *b, size_t nb)
{
	size_t	 i;

	if (na != nb)
		return (0);
	for (i = 0; i < na; i++) {
		if (strcmp(a[i], b[i]) != 0)
			return (0);
	}
	return (1);
}

/* Whether two access lists allow and deny the same. */
int
acl_equal(const struct acl *a, const struct acl *b)
{
	return (a->read_only == b->read_only &&
	    acl_same_globs(a->allow, a->nallow, b->allow, b->nallow) &&
	    acl_same_globs(a->deny, a->ndeny, b->deny, b->ndeny));
}

static int
acl_match(char *const *globs, size_t n, const char *name)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (fnmatch(globs[i], name, 0) == 0)
			return (1);
	}
	return (0);
}

/*
 * Whether a command of this name may go to QEMU, or to the proxy's lock
 * (lock.c): read_only allows reads, query-* and the lock's query.
 */
int
acl_allows(const struct acl *acl, const char *name)
{
	/* as exec-oob QEMU refuses it, and that is QEMU's to say */
	if (strcmp(name, "qmp_capabilities") == 0)
		return (1);
	if (acl->read_only && fnmatch("query-*", name, 0) != 0 &&
	    strcmp(name, LOCK_PREFIX "x-query-lock") != 0)
		return (0);
	if (acl->nallow > 0 && !acl_match(acl->allow, acl->nallow, name))
		return (0);
	return (!acl_match(acl->deny, acl->ndeny, name));
}
