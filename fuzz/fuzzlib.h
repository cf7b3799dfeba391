/*
 * The daemon in the fuzz target's process: a server made from a
 * configuration in a directory of the target's own, driven by hand a
 * turn of the loop at a time, with a fake QEMU and clients on real unix
 * sockets.  Every socket qmpmuxd listens on is in that directory: the
 * listening calls are wrapped (-Wl,--wrap) and refuse any other path,
 * so an input that names one (add-vm's listeners) makes nothing on the
 * host.
 */
#ifndef QMPMUX_FUZZLIB_H
#define QMPMUX_FUZZLIB_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct qmp_msg;
struct qmp_reader;
struct server;

#define FZ_TURNS	200000	/* a peer not done by then: a hang */

extern char		 fz_dir[];
extern struct event_base *fz_base;
extern struct server	*fz_server;

void		 fz_init(const char *);
char		*fz_path(const char *);
void		 fz_start(const char *);
void		 fz_turn(void);
void		 fz_fail(const char *, const char *, size_t)
		    __attribute__((noreturn));

/*
 * A peer on a unix socket: the fake QEMU, or a client.  in holds what
 * it read; eof is set once the other end closed; shut: 1 to end its
 * input once out is written, 2 once it has.
 */
struct fz_peer {
	int		 fd;
	struct evbuffer	*in;
	struct evbuffer	*out;
	int		 eof;
	int		 shut;
};
struct fz_peer	*fz_connect(const char *);
void		 fz_peer_io(struct fz_peer *);
void		 fz_peer_shutdown(struct fz_peer *);
void		 fz_peer_free(struct fz_peer *);
void		 fz_take(struct qmp_reader *, struct evbuffer *, const char *,
		    void (*)(struct qmp_msg *, void *), void *);
void		 fz_drive(const char *, const uint8_t *, size_t, void (*)(void),
		    void (*)(struct qmp_msg *, void *), void *);

/* Real QEMU 7.2's greeting, as qemu-system-x86_64 sends it. */
#define FZ_GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, " \
	"\"minor\": 2, \"major\": 7}, \"package\": \"Debian 1:7.2+dfsg-7\"}, " \
	"\"capabilities\": [\"oob\"]}}\r\n"

#endif
