/*
 * The names of the service manager's file descriptor store
 * (src/fdstore.c): after a crash they come back in LISTEN_FDNAMES, and
 * fdstore_parse reads each into its parts.  The input is one name; its
 * bytes are also read as parts (a kind, numbers, a VM's name) that
 * fdstore_name writes as a name, as the objects that store themselves
 * write theirs.
 *
 * Beyond not crashing:
 * - a name read back is one the store takes (fdstore_valid_name), and
 *   written again from its parts it is the same name, byte for byte:
 *   there is one way to write each, so no two names stand for one fd;
 * - a name written from parts (a VM's name a VM may have) is read back
 *   into the same parts.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "qmpmux.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* An invariant broken: say which and with what, and stop. */
static void
fz_fail(const char *what, const char *name)
{
	fprintf(stdout, "fuzz_fdstore: %s: %s\n", what, name);
	fflush(stdout);
	abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init(1, 0);
	return (0);
}

/* Whether two parts are the same. */
static int
fz_same(const struct fdstore_part *a, const struct fdstore_part *b)
{
	return (a->kind == b->kind && strcmp(a->vm, b->vm) == 0 &&
	    a->gen == b->gen && a->id == b->id && a->st == b->st &&
	    a->hash == b->hash);
}

/* Parts from the input's bytes: what an object of ours could store. */
static int
fz_parts(const uint8_t *data, size_t size, struct fdstore_part *p)
{
	static const char	 kinds[] = "klmucv", states[] = "wcro";
	size_t			 n;

	memset(p, 0, sizeof(*p));
	if (size < 13)
		return (-1);
	p->kind = kinds[data[0] % 6];
	memcpy(&p->gen, data + 1, sizeof(p->gen));
	memcpy(&p->hash, data + 5, sizeof(p->hash));
	memcpy(&p->id, data + 9, sizeof(p->id));
	p->st = states[data[0] / 6 % 4];
	data += 13;
	size -= 13;
	if (p->kind == 'k') {
		p->gen = 0;
		p->id = 0;
		p->st = '\0';
		return (size == 0 ? 0 : -1);
	}
	/* a VM's generation and a client's number count from 1 */
	if (p->gen == 0 || (p->kind == 'c' && p->id <= 0))
		return (-1);
	if (p->kind != 'c') {
		p->id = 0;
		p->st = '\0';
	}
	if (p->kind != 'c' && p->kind != 'l')
		p->hash = 0;
	n = size < sizeof(p->vm) - 1 ? size : sizeof(p->vm) - 1;
	memcpy(p->vm, data, n);
	p->vm[n] = '\0';
	return (strlen(p->vm) == size && conf_valid_name(p->vm) ? 0 : -1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fdstore_part	 p, q;
	char			 name[FDSTORE_NAME_MAX + 1], *in;

	if ((in = malloc(size + 1)) == NULL)
		abort();
	memcpy(in, data, size);
	in[size] = '\0';
	/* a name read back is written back the same */
	if (strlen(in) == size && fdstore_parse(in, &p) == 0) {
		if (!fdstore_valid_name(in))
			fz_fail("a name the store does not take was read", in);
		fdstore_name_parts(name, sizeof(name), &p);
		if (strcmp(name, in) != 0)
			fz_fail("a name read back is written otherwise", in);
		if (fdstore_parse(name, &q) != 0 || !fz_same(&p, &q))
			fz_fail("a name written again reads otherwise", in);
	}
	/* parts written as a name are read back the same */
	if (fz_parts(data, size, &p) == 0) {
		fdstore_name_parts(name, sizeof(name), &p);
		if (!fdstore_valid_name(name))
			fz_fail("parts were written as a name the store does "
			    "not take", name);
		if (fdstore_parse(name, &q) != 0 || !fz_same(&p, &q))
			fz_fail("parts written as a name read back otherwise",
			    name);
	}
	free(in);
	return (0);
}
