/*
 * The configuration file parser (src/conf.c): the input is a
 * qmpmuxd.conf, and what follows its first NUL byte, if any, is the
 * file inc.conf beside it, for include.  Both are written to a
 * directory of the target's own, and conf_load reads them as qmpmuxd -n
 * does.
 *
 * Beyond not crashing:
 * - a refused file leaves nothing behind: an error with text, a conf
 *   with no VM and nothing allocated (the leak checker runs per input);
 * - an accepted file reads the same again: the same VMs in the same
 *   order, none changed by conf_diff, the [global] defaults equal;
 * - include reads only inside the target's directory (glob is wrapped:
 *   a pattern outside it matches nothing), so no input reads the host's
 *   files or blocks on a fifo.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/types.h>
#include <assert.h>
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "qmpmux.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	__real_glob(const char *, int, int (*)(const char *, int), glob_t *);
int	__wrap_glob(const char *, int, int (*)(const char *, int), glob_t *);

static char	 fz_dir[] = "/tmp/qmpmux-fuzz-conf.XXXXXX";
static char	*fz_main, *fz_inc;

/* include stays in the target's directory. */
int
__wrap_glob(const char *pattern, int flags,
    int (*errfunc)(const char *, int), glob_t *g)
{
	size_t	 len = strlen(fz_dir);

	if (strncmp(pattern, fz_dir, len) != 0 || pattern[len] != '/' ||
	    strstr(pattern, "/..") != NULL) {
		memset(g, 0, sizeof(*g));
		return (GLOB_NOMATCH);
	}
	return (__real_glob(pattern, flags, errfunc, g));
}

/* At exit, the directory goes with its two files. */
static void
fz_cleanup(void)
{
	unlink(fz_main);
	unlink(fz_inc);
	rmdir(fz_dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (mkdtemp(fz_dir) == NULL ||
	    asprintf(&fz_main, "%s/qmpmuxd.conf", fz_dir) == -1 ||
	    asprintf(&fz_inc, "%s/inc.conf", fz_dir) == -1)
		abort();
	atexit(fz_cleanup);
	/* errors are the point of most inputs: not logged */
	log_init(1, 0);
	return (0);
}

static void
fz_write(const char *path, const uint8_t *buf, size_t len)
{
	FILE	*f;

	if ((f = fopen(path, "w")) == NULL)
		abort();
	if (len > 0 && fwrite(buf, len, 1, f) != 1)
		abort();
	if (fclose(f) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_entries	 cmdline;
	struct conf		 a, b;
	struct vm_conf		*va, *vb;
	const uint8_t		*nul;
	char			 err[CONF_ERR_MAX];
	size_t			 mlen = size;

	if ((nul = memchr(data, '\0', size)) != NULL) {
		mlen = nul - data;
		fz_write(fz_inc, nul + 1, size - mlen - 1);
	} else
		unlink(fz_inc);
	fz_write(fz_main, data, mlen);

	TAILQ_INIT(&cmdline);
	err[0] = '\0';
	if (conf_load(&a, fz_main, &cmdline, err, sizeof(err)) == -1) {
		/* refused: said why, and holds nothing */
		assert(err[0] != '\0');
		assert(memchr(err, '\0', sizeof(err)) != NULL);
		assert(TAILQ_EMPTY(&a.vms));
		assert(a.path == NULL && a.dump_file == NULL &&
		    a.metrics == NULL && a.control_path == NULL);
		return (0);
	}

	/* accepted: read again, the same */
	if (conf_load(&b, fz_main, &cmdline, err, sizeof(err)) == -1) {
		fprintf(stderr, "accepted once, then refused: %s\n", err);
		abort();
	}
	assert(conf_diff(&a.defaults, &b.defaults) == 0);
	vb = TAILQ_FIRST(&b.vms);
	TAILQ_FOREACH(va, &a.vms, entry) {
		assert(vb != NULL);
		assert(strcmp(va->name, vb->name) == 0);
		assert(conf_diff(va, vb) == 0);
		assert(conf_diff(va, va) == 0);
		vb = TAILQ_NEXT(vb, entry);
	}
	assert(vb == NULL);
	conf_clear(&a);
	conf_clear(&b);
	return (0);
}
