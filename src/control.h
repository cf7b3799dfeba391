/*
 * The control socket's insides, shared by its transport (control.c),
 * its commands (control-cmd.c) and the persistence that hands it from
 * one process to the next (state.c, state-restore.c).  Nothing else
 * sees them: the rest of qmpmuxd knows struct control by name only.
 */
#ifndef CONTROL_H
#define CONTROL_H

#include <sys/types.h>
#include <sys/queue.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "qmpmux.h"

#define CONTROL_FDNAME_MAX	255	/* bytes of a getfd's name */

/* An fd a client passed: unnamed until a getfd names it. */
struct control_fd {
	int			 fd;
	char			*name;
	TAILQ_ENTRY(control_fd)	 entry;
};
TAILQ_HEAD(control_fds, control_fd);

/*
 * One control connection.  closing: it is not read again, and reap
 * frees it from the loop; paused: its output is over the bound, and it
 * is read again once it has read half.  nfds counts fds, at most
 * control_max_fds; fds_refused: the last fds passed were closed on
 * arrival, past that bound, for getfd to say so.
 */
struct control_client {
	struct control		*ctl;
	int			 id;
	int			 fd;
	pid_t			 pid;
	uid_t			 uid;
	struct event		*rev;
	struct event		*wev;
	struct event		*reap;
	struct evbuffer		*in;
	struct evbuffer		*out;
	struct qmp_reader	*reader;
	uint64_t		 received;	/* bytes read, in all */
	int			 negotiated;
	int			 eof;
	int			 closing;
	int			 paused;
	struct control_fds	 fds;
	unsigned int		 nfds;
	int			 fds_refused;
	size_t			 max_message;	/* of its reader */
	struct trace_list	 traces;	/* the VMs it traces */
	TAILQ_ENTRY(control_client) entry;
};

/* The control socket, and its clients. */
struct control {
	struct server		*server;
	const struct control_ops *ops;	/* the owner's: commands, acts */
	struct event_base	*base;
	char			*path;
	struct evconnlistener	*evl;
	struct event		*retry;		/* after an error or a burst */
	unsigned int		 accepted;	/* util_accept_paced */
	TAILQ_HEAD(, control_client) clients;
	unsigned int		 nclients;
	int			 next_id;
};

/* One command as it runs: its caller, its id bytes and its arguments. */
struct control_req {
	struct control_client	*cc;
	const struct qmp_msg	*msg;
	const char		*id;
	size_t			 idlen;
	yajl_val		 args;		/* NULL: none given */
};

/* An argument a command takes. */
struct control_param {
	const char		*name;
	yajl_type		 type;
	const char		*type_name;	/* as QEMU's errors name it */
	int			 required;
};

/*
 * A command: its name, what runs it and the arguments it takes.  open:
 * other arguments are not refused here, since the command takes the
 * keys of the config file as well.  A table of them ends with a NULL
 * name.
 */
struct control_cmd {
	const char			*name;
	void				(*fn)(struct control_req *);
	const struct control_param	*params;
	int				 open;
};

/*
 * What the owner gives its control socket: the commands it answers, and
 * the owner's own acts that two of them ask for (reload, restart), so
 * that the control socket never calls up into its owner.
 */
struct control_ops {
	const struct control_cmd *cmds;
	int	(*reload)(struct server *, char *, size_t);
	int	(*restart)(struct server *, int, const char *, size_t, char *,
		    size_t);
};

/* control.c: the transport */
struct control	*control_make(struct server *, const char *, int,
		    const struct control_ops *);
struct control_client *control_client_new(struct control *, int, int, pid_t,
		    uid_t);
void		 control_process(struct control_client *);
void		 control_log(const struct control_client *, int, const char *,
		    ...) __attribute__((format(printf, 3, 4)));
void		 control_error(struct control_req *, const char *,
		    const char *, ...) __attribute__((format(printf, 3, 4)));
void		 control_return(struct control_req *, const void *, size_t);
void		 control_return_gen(struct control_req *, struct yajl_gen_t *);
const char	*control_arg_str(struct control_req *, const char *);
struct control_fd *control_fd_find(struct control_client *, const char *);
int		 control_fd_take(struct control_client *, struct control_fd *);
void		 control_fds_close_unnamed(struct control_client *,
		    struct control_fd *);
void		 control_trace_kick(void *);

/* control-cmd.c: the commands */
extern const struct control_cmd control_cmds[];

#endif
