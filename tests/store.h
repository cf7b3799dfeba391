/*
 * A fake service manager's file descriptor store, for the tests and
 * tests/fakestore: what systemd does with FDSTORE=1, FDSTOREREMOVE=1
 * and, starting a service again, LISTEN_FDS (sd_notify(3),
 * sd_listen_fds(3)).  Not thread-safe: the caller locks.
 */
#ifndef QMPMUX_STORE_H
#define QMPMUX_STORE_H

#include <sys/types.h>
#include <stddef.h>

#define STORE_MAX	4096

struct store {
	int	 sock;		/* the notify socket */
	char	*path;
	char	*name[STORE_MAX];
	int	 fd[STORE_MAX];
	ino_t	 ino[STORE_MAX];	/* each fd's, so that a new fd is */
	dev_t	 dev[STORE_MAX];	/* compared only with its inode's */
	size_t	 n;
	int	 dup;		/* a name was stored twice */
	int	 full;		/* an fd was refused: STORE_MAX */
	size_t	 removes;	/* FDSTOREREMOVE=1 datagrams taken */
};

int	 store_open(struct store *, const char *);
void	 store_close(struct store *);
int	 store_take(struct store *);
size_t	 store_count(const struct store *, const char *);
void	 store_exec(struct store *, const char *const *, int)
	    __attribute__((noreturn));

#endif
