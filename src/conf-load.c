/*
 * A whole configuration, read in two steps.  The entries (key = value,
 * with their file and line) are gathered first, from the file, its
 * includes and the command line; then they are built into a struct
 * conf: [global] first, then the command line's options over it, then
 * each [vm] from those defaults, then each [listener].  Nothing is
 * applied to a running daemon until the whole config has been built
 * without error, so a bad reload changes nothing.
 *
 * The file is read with libinih, through a reader of our own that
 * counts lines, sees section headers (to find a section given twice)
 * and refuses a line too long for inih's buffer rather than let inih
 * read its tail as a line of its own.  A file is read only if it is a
 * regular file of at most CONF_FILE_MAX bytes, so that an include of a
 * FIFO or of /dev/zero cannot hold up a check or a reload.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "conf.h"

/* A section header seen in a file, to find one given twice. */
struct conf_section {
	char			*name;
	char			*file;
	int			 line;
	size_t			 at;	/* its place, for the check */
	TAILQ_ENTRY(conf_section) entry;
};
TAILQ_HEAD(conf_sections, conf_section);

/*
 * The entries of one section, in their order: a slice of the entries
 * sorted by section.  Sorting once keeps a host's worth of sections
 * from scanning every entry for each.
 */
struct conf_run {
	struct conf_entry	**e;
	size_t			 n;
	size_t			 at;	/* the first one's place in the list */
};

/* The state of reading one file. */
struct conf_read {
	const char		*file;
	FILE			*f;
	int			 line;
	size_t			 bytes;		/* read so far */
	int			 nested;	/* an included file */
	char			*section;	/* the last header, whole */
	int			 inkey;		/* a key came since it */
	struct conf_entries	*entries;
	struct conf_sections	*sections;
	char			*err;
	size_t			 errlen;
	int			 failed;	/* at this line */
};

/* Free the section headers seen. */
static void
conf_sections_clear(struct conf_sections *list)
{
	struct conf_section	*s;

	while ((s = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, s, entry);
		free(s->name);
		free(s->file);
		free(s);
	}
}

/* Note a failure of reading, at the current line; the first one counts. */
static int
conf_read_fail(struct conf_read *cr, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int
conf_read_fail(struct conf_read *cr, const char *fmt, ...)
{
	char	 text[CONF_ERR_MAX];
	va_list	 ap;

	if (cr->failed)
		return (0);
	cr->failed = cr->line;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(cr->err, cr->errlen, "%s:%d: %s", cr->file, cr->line, text);
	return (0);
}

/*
 * A section header in one spelling: its words one space apart, with no
 * space around them, so that a section is found again however it was
 * spaced, and a listener's path does not end in a space.  The path, all
 * that follows the kind and the name, keeps the spaces inside it.
 */
static char *
conf_section_name(const char *p, size_t len)
{
	const char	*end = p + len;
	char		*name, *q;
	int		 words = 0;

	if ((name = malloc(len + 1)) == NULL)
		fatal("%s", __func__);
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (q = name; p < end;) {
		if (*p != ' ' && *p != '\t') {
			*q++ = *p++;
			continue;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		*q++ = ' ';
		if (++words == 2) {
			memcpy(q, p, (size_t)(end - p));
			q += end - p;
			p = end;
		}
	}
	*q = '\0';
	return (name);
}

/*
 * inih's reader: one line, counted.  A section header is noted here,
 * whole, since inih tells only of keys, and cuts a section's name at
 * 49 bytes, which would cut a listener's path; an entry with no key
 * marks it, so that a section with no keys is still built.  A line
 * longer than inih's buffer is refused, since inih would read its tail
 * as a line of its own.
 */
static char *
conf_reader(char *str, int num, void *stream)
{
	struct conf_read	*cr = stream;
	struct conf_section	*s;
	size_t			 len;
	char			*p, *end;
	int			 c;

	if (fgets(str, num, cr->f) == NULL)
		return (NULL);
	cr->line++;
	len = strlen(str);
	/* a file that grew since it was opened: read no more of it */
	if ((cr->bytes += len) > CONF_FILE_MAX) {
		conf_read_fail(cr, "the file is larger than %d bytes",
		    CONF_FILE_MAX);
		return (NULL);
	}
	if (len > 0 && str[len - 1] != '\n' && !feof(cr->f)) {
		conf_read_fail(cr, "line longer than %d bytes", num - 2);
		while ((c = fgetc(cr->f)) != EOF && c != '\n' &&
		    ++cr->bytes <= CONF_FILE_MAX)
			;
		str[0] = '\0';
		return (str);
	}
	p = str;
	/* inih skips a UTF-8 byte order mark on the first line */
	if (cr->line == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	for (; *p == ' ' || *p == '\t'; p++)
		;
	/* an indented line after a key continues its value, for inih */
	if (p > str && cr->inkey)
		return (str);
	if (*p == '[' && (end = strchr(p, ']')) != NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL ||
		    (s->file = strdup(cr->file)) == NULL)
			fatal("%s", __func__);
		s->name = conf_section_name(p + 1, (size_t)(end - p - 1));
		s->line = cr->line;
		TAILQ_INSERT_TAIL(cr->sections, s, entry);
		free(cr->section);
		if ((cr->section = strdup(s->name)) == NULL)
			fatal("%s", __func__);
		cr->inkey = 0;
		conf_entry_add(cr->entries, s->name, "", "", cr->file,
		    cr->line);
	}
	return (str);
}

/* inih's handler: keep the entry, with where it was. */
static int
conf_handler(void *user, const char *section, const char *key,
    const char *value)
{
	struct conf_read	*cr = user;

	/* inih's section is cut at 49 bytes: the reader's is whole */
	cr->inkey = 1;
	if (cr->section == NULL)
		return (conf_read_fail(cr, "%s outside of a section", key));
	if (cr->nested && strcmp(key, "include") == 0)
		return (conf_read_fail(cr, "include in an included file"));
	conf_entry_add(cr->entries, cr->section, key, value, cr->file,
	    cr->line);
	return (1);
}

/*
 * Why a file cannot be read: at the include that named it (by), or
 * alone for the main file.
 */
static int
conf_file_err(char *err, size_t errlen, const struct conf_entry *by,
    const char *path, const char *why)
{
	if (by != NULL)
		return (conf_at(err, errlen, by, "include %s: %s: %s",
		    by->value, path, why));
	return (conf_err(err, errlen, "%s: %s", path, why));
}

/*
 * Open a config file, which must be a regular file (symlinks followed)
 * of at most CONF_FILE_MAX bytes: a FIFO or a device is refused before
 * it is opened, and again on the fd, opened non-blocking, should the
 * path change in between.  NULL when err says why.
 */
static FILE *
conf_open(const char *path, const struct conf_entry *by, char *err,
    size_t errlen)
{
	struct stat	 st;
	char		 why[64];
	FILE		*f;
	int		 fd = -1;

	if (stat(path, &st) == -1 || (S_ISREG(st.st_mode) &&
	    ((fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY |
	    O_CLOEXEC)) == -1 || fstat(fd, &st) == -1))) {
		conf_file_err(err, errlen, by, path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		conf_file_err(err, errlen, by, path, "not a regular file");
		goto fail;
	}
	if (st.st_size > CONF_FILE_MAX) {
		snprintf(why, sizeof(why), "larger than %d bytes",
		    CONF_FILE_MAX);
		conf_file_err(err, errlen, by, path, why);
		goto fail;
	}
	if ((f = fdopen(fd, "r")) == NULL)
		fatal("%s", __func__);
	return (f);
fail:
	if (fd != -1)
		close(fd);
	return (NULL);
}

/*
 * Read one file's entries and section headers; by is the include that
 * named it, NULL for the main file.
 */
static int
conf_read_file(const char *path, const struct conf_entry *by,
    struct conf_entries *entries, struct conf_sections *sections, char *err,
    size_t errlen)
{
	struct conf_read	 cr;
	int			 rv, failed;

	memset(&cr, 0, sizeof(cr));
	cr.file = path;
	cr.nested = by != NULL;
	cr.entries = entries;
	cr.sections = sections;
	cr.err = err;
	cr.errlen = errlen;
	if ((cr.f = conf_open(path, by, err, errlen)) == NULL)
		return (-1);
	rv = ini_parse_stream(conf_reader, &cr, conf_handler, &cr);
	failed = ferror(cr.f);
	fclose(cr.f);
	free(cr.section);
	/* inih reads on after a line it cannot parse: the first counts */
	if (rv > 0 && (!cr.failed || rv < cr.failed))
		return (conf_err(err, errlen, "%s:%d: not a section, a "
		    "comment or key = value", path, rv));
	if (cr.failed)
		return (-1);
	if (rv != 0 || failed)
		return (conf_err(err, errlen, "%s: cannot be read", path));
	return (0);
}

/* A path of the file made absolute against dir; NULL if it is too long. */
static char *
conf_path(const char *dir, const char *path)
{
	char	*p;

	if (path[0] == '/')
		p = strdup(path);
	else if (asprintf(&p, "%s/%s", dir, path) == -1)
		p = NULL;
	if (p == NULL)
		fatal("%s", __func__);
	return (p);
}

/* The directory of a file, for what is relative in it. */
static char *
conf_dir(const char *file)
{
	char	*copy, *dir;

	if ((copy = strdup(file)) == NULL ||
	    (dir = strdup(dirname(copy))) == NULL)
		fatal("%s", __func__);
	free(copy);
	return (dir);
}

/* The directory an include's glob could not read, and why. */
static char	conf_glob_path[PATH_MAX];
static int	conf_glob_errno;

/*
 * glob's error callback: a directory that does not exist holds no file,
 * as a pattern that matches none; any other error stops the glob.
 */
static int
conf_glob_err(const char *path, int error)
{
	if (error == ENOENT)
		return (0);
	snprintf(conf_glob_path, sizeof(conf_glob_path), "%s", path);
	conf_glob_errno = error;
	return (1);
}

/*
 * Read a file and the files its includes name, in that order: each
 * include is a glob, relative to the file's directory, its files read
 * in sorted order.
 */
static int
conf_read_all(const char *path, struct conf_entries *entries,
    struct conf_sections *sections, char *err, size_t errlen)
{
	struct conf_entries	 main;
	struct conf_entry	*e;
	glob_t			 g;
	char			*dir, *pattern;
	size_t			 i;
	int			 rv = 0, grv;

	TAILQ_INIT(&main);
	if (conf_read_file(path, NULL, &main, sections, err, errlen) == -1) {
		conf_entries_clear(&main);
		return (-1);
	}
	dir = conf_dir(path);
	TAILQ_CONCAT(entries, &main, entry);
	TAILQ_FOREACH(e, entries, entry) {
		if (strcmp(e->key, "include") != 0)
			continue;
		if (strcmp(e->section, "global") != 0) {
			rv = conf_at(err, errlen, e, "include belongs in "
			    "[global]");
			break;
		}
		pattern = conf_path(dir, e->value);
		conf_glob_errno = 0;
		grv = glob(pattern, 0, conf_glob_err, &g);
		free(pattern);
		if (grv == GLOB_NOMATCH)
			continue;
		if (grv != 0) {
			if (grv == GLOB_ABORTED && conf_glob_errno != 0)
				rv = conf_at(err, errlen, e, "include %s: %s: "
				    "%s", e->value, conf_glob_path,
				    strerror(conf_glob_errno));
			else
				rv = conf_at(err, errlen, e, "include %s: "
				    "cannot be read", e->value);
			globfree(&g);
			break;
		}
		for (i = 0; rv == 0 && i < g.gl_pathc; i++) {
			TAILQ_INIT(&main);
			rv = conf_read_file(g.gl_pathv[i], e, &main, sections,
			    err, errlen);
			TAILQ_CONCAT(entries, &main, entry);
		}
		globfree(&g);
		if (rv != 0)
			break;
	}
	free(dir);
	return (rv);
}

/* Whether a VM's name is one qmpmuxd takes: printable, no space or '/'. */
int
conf_valid_name(const char *s)
{
	size_t	 n = strlen(s), i;

	if (n == 0 || n > CONF_NAME_MAX)
		return (0);
	for (i = 0; i < n; i++) {
		if (s[i] <= ' ' || s[i] >= 0x7f || s[i] == '/' ||
		    s[i] == '"' || s[i] == '\\')
			return (0);
	}
	return (1);
}

/* The VM of that name in conf, or NULL. */
static struct vm_conf *
conf_find_vm(struct conf *conf, const char *name)
{
	struct vm_conf	*vc;

	TAILQ_FOREACH(vc, &conf->vms, entry) {
		if (strcmp(vc->name, name) == 0)
			return (vc);
	}
	return (NULL);
}

/* The listener at that path, in any VM of conf, or NULL. */
static struct listener_conf *
conf_find_listener(struct conf *conf, const char *path)
{
	struct vm_conf		*vc;
	struct listener_conf	*lc;

	TAILQ_FOREACH(vc, &conf->vms, entry) {
		TAILQ_FOREACH(lc, &vc->listeners, entry) {
			if (strcmp(lc->path, path) == 0)
				return (lc);
		}
	}
	return (NULL);
}

/*
 * Split a section header into its kind and its words: "vm NAME" and
 * "listener NAME PATH" (the path being all that follows the name).
 */
static int
conf_split(const char *section, const char **kind, char *name,
    size_t namelen, const char **rest)
{
	const char	*p, *q;

	*rest = NULL;
	if (strcmp(section, "global") == 0) {
		*kind = "global";
		return (0);
	}
	if (strncmp(section, "vm ", 3) == 0)
		*kind = "vm";
	else if (strncmp(section, "listener ", 9) == 0)
		*kind = "listener";
	else
		return (-1);
	p = section + strlen(*kind) + 1;
	while (*p == ' ')
		p++;
	for (q = p; *q != '\0' && *q != ' '; q++)
		;
	if ((size_t)(q - p) >= namelen)
		return (-1);
	memcpy(name, p, (size_t)(q - p));
	name[q - p] = '\0';
	while (*q == ' ')
		q++;
	if (strcmp(*kind, "vm") == 0)
		return (*q == '\0' ? 0 : -1);
	if (*q == '\0')
		return (-1);
	*rest = q;
	return (0);
}

/* The directory an entry's relative paths resolve against. */
static char *
conf_entry_dir(const struct conf_entry *e)
{
	char	 cwd[PATH_MAX];
	char	*dir;

	if (e->line > 0)
		return (conf_dir(e->file));
	if (getcwd(cwd, sizeof(cwd)) == NULL || (dir = strdup(cwd)) == NULL)
		fatal("%s", __func__);
	return (dir);
}

/* Make the [global] defaults from every entry of that section. */
static int
conf_build_global(struct conf *conf, struct conf_entries *entries,
    char *err, size_t errlen)
{
	const struct conf_opt	*o;
	struct conf_entry	*e;
	char			 why[CONF_ERR_MAX], *dir, *path;
	int			 rv;

	TAILQ_FOREACH(e, entries, entry) {
		if (strcmp(e->section, "global") != 0 || *e->key == '\0' ||
		    strcmp(e->key, "include") == 0)
			continue;
		if ((o = conf_find(e->key)) != NULL &&
		    o->where == CONF_GLOBAL) {
			/* relative to the file, or to the command line's cwd */
			dir = conf_entry_dir(e);
			path = (o->type == CONF_PATH || (o->type ==
			    CONF_SOCKET && strcmp(e->value, "none") != 0)) &&
			    *e->value != '\0' ? conf_path(dir, e->value) :
			    NULL;
			free(dir);
			rv = conf_apply(conf, (int)(o - conf_opts), e->key,
			    path != NULL ? path : e->value, why, sizeof(why));
			free(path);
			if (rv == -1)
				return (conf_at(err, errlen, e, "%s = %s: %s",
				    e->key, e->value, why));
			continue;
		}
		if (strcmp(e->key, "upstream") == 0)
			return (conf_at(err, errlen, e, "upstream "
			    "belongs in a [vm] section"));
		if (conf_set_vm(&conf->defaults, e->key, e->value, why,
		    sizeof(why)) == -1)
			return (conf_at(err, errlen, e, "%s = %s: %s",
			    e->key, e->value, why));
	}
	return (0);
}

/* Make the VM of a [vm NAME] section: the defaults, then its keys. */
static int
conf_build_vm(struct conf *conf, const struct conf_run *run,
    const char *name, char *err, size_t errlen)
{
	const struct conf_entry	*first = run->e[0];
	struct vm_conf		*vc;
	struct conf_entry	*e;
	char			 why[CONF_ERR_MAX], *dir, *path, *val;
	const char		*p;
	size_t			 i;

	if ((vc = calloc(1, sizeof(*vc))) == NULL)
		fatal("%s", __func__);
	conf_vm_copy(vc, &conf->defaults);
	if ((vc->name = strdup(name)) == NULL ||
	    (first->line > 0 ? asprintf(&vc->where, "%s:%d", first->file,
	    first->line) : asprintf(&vc->where, "command line")) == -1)
		fatal("%s", __func__);
	vc->from_file = 1;
	TAILQ_INSERT_TAIL(&conf->vms, vc, entry);
	for (i = 0; i < run->n; i++) {
		if (*(e = run->e[i])->key == '\0')
			continue;
		if (strcmp(e->key, "upstream") != 0) {
			if (conf_set_vm(vc, e->key, e->value, why,
			    sizeof(why)) == -1)
				return (conf_at(err, errlen, e, "%s = %s: %s",
				    e->key, e->value, why));
			continue;
		}
		/*
		 * A relative path is the config file's directory's: the
		 * path after the mode, which may itself hold a ':'.  A
		 * bare path (no mode) must be absolute, so that a mistyped
		 * mode is not taken for a file name.
		 */
		p = NULL;
		if (strncmp(e->value, "connect:", 8) == 0)
			p = e->value + 8;
		else if (strncmp(e->value, "listen:", 7) == 0)
			p = e->value + 7;
		val = NULL;
		if (p != NULL && *p != '/' && *p != '\0') {
			dir = conf_entry_dir(e);
			path = conf_path(dir, p);
			if (asprintf(&val, "%.*s%s", (int)(p - e->value),
			    e->value, path) == -1)
				fatal("%s", __func__);
			free(dir);
			free(path);
		}
		if (conf_set_upstream(vc, val != NULL ? val : e->value, why,
		    sizeof(why)) == -1) {
			free(val);
			return (conf_at(err, errlen, e, "%s = %s: %s",
			    e->key, e->value, why));
		}
		free(val);
	}
	if (vc->backoff_min > vc->backoff_max)
		vc->backoff_min = vc->backoff_max;
	if (vc->upstream == NULL)
		return (conf_err(err, errlen, "%s: vm %s has no upstream",
		    vc->where, name));
	return (0);
}

/* Make the listener of a [listener NAME PATH] section. */
static int
conf_build_listener(struct conf *conf, const struct conf_run *run,
    const char *name, const char *rawpath, char *err, size_t errlen)
{
	const struct conf_entry	*first = run->e[0];
	struct vm_conf		*vc;
	struct listener_conf	*lc;
	struct conf_entry	*e;
	char			 why[CONF_ERR_MAX], *dir, *path;
	size_t			 i;

	if ((vc = conf_find_vm(conf, name)) == NULL)
		return (conf_at(err, errlen, first, "a listener of vm %s, "
		    "which has no [vm %s] section",
		    name, name));
	dir = conf_entry_dir(first);
	path = conf_path(dir, rawpath);
	free(dir);
	if (util_check_sun_path(path, why, sizeof(why)) == -1) {
		conf_at(err, errlen, first, "listener %s: %s", path, why);
		free(path);
		return (-1);
	}
	if (conf_find_listener(conf, path) != NULL) {
		conf_at(err, errlen, first, "listener %s is given twice", path);
		free(path);
		return (-1);
	}
	lc = conf_listener_new(path);
	free(path);
	TAILQ_INSERT_TAIL(&vc->listeners, lc, entry);
	for (i = 0; i < run->n; i++) {
		if (*(e = run->e[i])->key == '\0')
			continue;
		if (conf_set_listener(lc, e->key, e->value, why,
		    sizeof(why)) == -1)
			return (conf_at(err, errlen, e, "%s = %s: %s",
			    e->key, e->value, why));
	}
	return (0);
}

/*
 * Check the sections seen: each kind known, well named, and given once.
 * Entries name their section too, for a command line with no headers.
 */
static int
conf_section_cmp(const void *a, const void *b)
{
	const struct conf_section	*const *x = a, *const *y = b;
	int				 c;

	if ((c = strcmp((*x)->name, (*y)->name)) != 0)
		return (c);
	return ((*x)->at < (*y)->at ? -1 : (*x)->at > (*y)->at);
}

static int
conf_check_sections(struct conf_sections *sections, char *err,
    size_t errlen)
{
	struct conf_section	*s, **v, *dup = NULL, *first = NULL;
	const char		*kind, *rest;
	char			 name[CONF_NAME_MAX + 2];
	size_t			 n = 0, i, g = 0;

	/* the first section given again, found by sorting, not scanning */
	TAILQ_FOREACH(s, sections, entry)
		s->at = n++;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		fatal("%s", __func__);
	n = 0;
	TAILQ_FOREACH(s, sections, entry)
		v[n++] = s;
	qsort(v, n, sizeof(*v), conf_section_cmp);
	for (i = 1; i < n; i++) {
		if (strcmp(v[i]->name, v[i - 1]->name) != 0) {
			g = i;
			continue;
		}
		if (strcmp(v[i]->name, "global") != 0 &&
		    (dup == NULL || v[i]->at < dup->at)) {
			dup = v[i];
			first = v[g];
		}
	}
	free(v);

	TAILQ_FOREACH(s, sections, entry) {
		if (conf_split(s->name, &kind, name, sizeof(name), &rest) ==
		    -1)
			return (conf_err(err, errlen, "%s:%d: [%s]: expected "
			    "[global], [vm NAME] or [listener NAME PATH]",
			    s->file, s->line, s->name));
		if (strcmp(kind, "global") != 0 && !conf_valid_name(name))
			return (conf_err(err, errlen, "%s:%d: [%s]: a VM's "
			    "name is 1 to %d printable bytes, without "
			    "spaces, '/', '\"' or '\\'", s->file, s->line,
			    s->name, CONF_NAME_MAX));
		if (s == dup)
			return (conf_err(err, errlen, "%s:%d: [%s] is "
			    "given twice (first at %s:%d)", s->file,
			    s->line, s->name, first->file, first->line));
	}
	return (0);
}

/* Entries by section, then by their place in the list. */
struct conf_sorted {
	struct conf_entry	*e;
	size_t			 at;
};

static int
conf_sorted_cmp(const void *a, const void *b)
{
	const struct conf_sorted	*x = a, *y = b;
	int				 c;

	if ((c = strcmp(x->e->section, y->e->section)) != 0)
		return (c);
	return (x->at < y->at ? -1 : x->at > y->at);
}

static int
conf_run_cmp(const void *a, const void *b)
{
	const struct conf_run	*x = a, *y = b;

	return (x->at < y->at ? -1 : x->at > y->at);
}

/*
 * Group the entries into runs, one per section, in the order each
 * section first appears.  *ev holds the entries the runs point into.
 */
static struct conf_run *
conf_runs(struct conf_entries *entries, struct conf_entry ***ev,
    size_t *nruns)
{
	struct conf_sorted	*v;
	struct conf_entry	*e;
	struct conf_run		*runs;
	size_t			 n = 0, i, r = 0;

	TAILQ_FOREACH(e, entries, entry)
		n++;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL ||
	    (*ev = calloc(n + 1, sizeof(**ev))) == NULL ||
	    (runs = calloc(n + 1, sizeof(*runs))) == NULL)
		fatal("%s", __func__);
	n = 0;
	TAILQ_FOREACH(e, entries, entry) {
		v[n].e = e;
		v[n].at = n;
		n++;
	}
	qsort(v, n, sizeof(*v), conf_sorted_cmp);
	for (i = 0; i < n; i++) {
		(*ev)[i] = v[i].e;
		if (i == 0 || strcmp(v[i].e->section, v[i - 1].e->section) !=
		    0) {
			runs[r].e = &(*ev)[i];
			runs[r].at = v[i].at;
			r++;
		}
		runs[r - 1].n++;
	}
	free(v);
	qsort(runs, r, sizeof(*runs), conf_run_cmp);
	*nruns = r;
	return (runs);
}

/* Build conf from the entries: [global], then each VM, then listeners. */
static int
conf_build(struct conf *conf, struct conf_entries *entries,
    struct conf_sections *sections, char *err, size_t errlen)
{
	struct conf_entry	**ev, *e;
	struct conf_run		*runs;
	struct vm_conf		*vc;
	const char		*kind, *rest;
	char			 name[CONF_NAME_MAX + 2];
	size_t			 nruns, i;
	int			 pass, rv = -1;

	if (conf_check_sections(sections, err, errlen) == -1 ||
	    conf_build_global(conf, entries, err, errlen) == -1)
		return (-1);
	runs = conf_runs(entries, &ev, &nruns);
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < nruns; i++) {
			e = runs[i].e[0];
			if (conf_split(e->section, &kind, name, sizeof(name),
			    &rest) == -1) {
				conf_at(err, errlen, e, "[%s]: expected "
				    "[global], [vm NAME] or [listener NAME "
				    "PATH]", e->section);
				goto out;
			}
			if (pass == 0 && strcmp(kind, "vm") == 0) {
				if (!conf_valid_name(name)) {
					conf_at(err, errlen, e, "vm %s: not a "
					    "name qmpmuxd takes", name);
					goto out;
				}
				if (conf_build_vm(conf, &runs[i], name, err,
				    errlen) == -1)
					goto out;
			} else if (pass == 1 && strcmp(kind, "listener") == 0 &&
			    conf_build_listener(conf, &runs[i], name, rest,
			    err, errlen) == -1)
				goto out;
		}
	}
	/* a VM no client can reach is a mistake, not a config */
	TAILQ_FOREACH(vc, &conf->vms, entry) {
		if (TAILQ_EMPTY(&vc->listeners)) {
			conf_err(err, errlen, "%s: vm %s has no listener",
			    vc->where, vc->name);
			goto out;
		}
	}
	rv = 0;
out:
	free(runs);
	free(ev);
	return (rv);
}

/*
 * Load a whole config: the file at path (none when NULL), then the
 * command line's entries over it.  conf is made anew; on error it
 * holds nothing, and err says where and why.
 */
int
conf_load(struct conf *conf, const char *path,
    const struct conf_entries *cmdline, char *err, size_t errlen)
{
	struct conf_entries	 entries;
	struct conf_sections	 sections;
	struct conf_entry	*e;
	int			 rv = -1;

	memset(conf, 0, sizeof(*conf));
	conf_vm_init(&conf->defaults);
	TAILQ_INIT(&conf->vms);
	conf_defaults(conf, CONF_GLOBAL);
	TAILQ_INIT(&entries);
	TAILQ_INIT(&sections);
	if (path != NULL) {
		if ((conf->path = strdup(path)) == NULL)
			fatal("%s", __func__);
		if (conf_read_all(path, &entries, &sections, err, errlen) == -1)
			goto out;
	}
	TAILQ_FOREACH(e, cmdline, entry)
		conf_entry_add(&entries, e->section, e->key, e->value, e->file,
		    e->line);
	if (conf_build(conf, &entries, &sections, err, errlen) == -1)
		goto out;
	rv = 0;
out:
	conf_entries_clear(&entries);
	conf_sections_clear(&sections);
	if (rv == -1)
		conf_clear(conf);
	return (rv);
}

/* Free what a conf holds. */
void
conf_clear(struct conf *conf)
{
	struct vm_conf	*vc;

	while ((vc = TAILQ_FIRST(&conf->vms)) != NULL) {
		TAILQ_REMOVE(&conf->vms, vc, entry);
		conf_vm_clear(vc);
		free(vc);
	}
	conf_vm_clear(&conf->defaults);
	free(conf->path);
	free(conf->dump_file);
	free(conf->metrics);
	free(conf->control_path);
	conf->path = conf->dump_file = conf->metrics = NULL;
	conf->control_path = NULL;
}

