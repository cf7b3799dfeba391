/*
 * The insides of the configuration, shared by its table and values
 * (conf.c) and the reading and building of a whole configuration
 * (conf-load.c).  Nothing else sees them.
 */
#ifndef CONF_H
#define CONF_H

#include <ini.h>

#include "qmpmux.h"

#define CONF_LINE_MAX	INI_MAX_LINE	/* what inih reads of a line */
#define CONF_NAME_MAX	64		/* bytes of a VM's name */
#define CONF_FILE_MAX	(1 << 20)	/* bytes of one config file */

/* Where a key may be set. */
#define CONF_VM		0x1	/* [global] as a default, or [vm NAME] */
#define CONF_LISTENER	0x2	/* [listener NAME PATH] */
#define CONF_GLOBAL	0x4	/* [global] only */

enum conf_type {
	CONF_SECONDS,		/* decimal seconds, fractions allowed */
	CONF_SIZE,		/* bytes, K, M or G */
	CONF_UINT,		/* unsigned int in [min, max] */
	CONF_COUNT,		/* size_t in [min, max] */
	CONF_BOOL,
	CONF_MODE,		/* octal file mode */
	CONF_SLOW,		/* block or disconnect */
	CONF_PRIO,		/* manager, normal or background */
	CONF_USER,
	CONF_GROUP,
	CONF_UIDS,		/* user names or ids, space separated */
	CONF_ALLOW,		/* command globs, space separated */
	CONF_DENY,
	CONF_PATH,		/* a file's path, made absolute */
	CONF_ADDR,		/* IPv4:PORT, [IPv6]:PORT or a unix path */
	CONF_SOCKET,		/* a socket's path, made absolute, or none */
};

/* An option of the table (conf.c's conf_opts). */
struct conf_opt {
	const char	*key;
	int		 where;
	enum conf_type	 type;
	size_t		 off;
	double		 min;
	double		 max;
	const char	*def;
};

extern const struct conf_opt conf_opts[];
extern const int conf_nopts;

int		 conf_err(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
int		 conf_at(char *, size_t, const struct conf_entry *,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
const struct conf_opt *conf_find(const char *);
void		 conf_defaults(void *, int);
int		 conf_apply(void *, int, const char *, const char *, char *,
		    size_t);

#endif
