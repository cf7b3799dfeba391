/*
 * Logging: one line per call, to stderr with -d or to syslog otherwise.
 * log_warn appends strerror(errno); the x variants do not.  A line may
 * quote bytes a client or QEMU chose, so each is escaped (utf8_escape)
 * where it leaves: one call is one line, and no byte of it reaches a
 * terminal as a control.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <sys/time.h>

#include "qmpmux.h"

#define LOG_LINE_MAX	2048	/* a line's bytes before it is escaped */

static int	log_foreground = 1;
static int	log_verbose;

static void	log_vwrite(int, const char *, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));
static void	log_write(int, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* Choose where log lines go; called once before the loop starts. */
void
log_init(int foreground, int verbose)
{
	log_foreground = foreground;
	log_verbose = verbose;
	if (!foreground)
		openlog("qmpmuxd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

/* Change the debug level (-v count). */
void
log_setverbose(int verbose)
{
	log_verbose = verbose;
}

/* Return the debug level. */
int
log_getverbose(void)
{
	return (log_verbose);
}

/*
 * Write one line with an optional suffix (the errno text), escaped: a
 * newline or an ESC in it, a client's, would forge a line or take over
 * the terminal of whoever reads the log.
 */
static void
log_vwrite(int pri, const char *suffix, const char *fmt, va_list ap)
{
	char		 raw[LOG_LINE_MAX], line[UTF8_ESCAPE_SIZE(LOG_LINE_MAX)];
	struct timeval	 tv;
	struct tm	 tm;
	char		 stamp[32];

	vsnprintf(raw, sizeof(raw), fmt, ap);
	utf8_escape(line, sizeof(line), raw, strlen(raw), 0);
	if (!log_foreground) {
		if (suffix != NULL)
			syslog(pri, "%s: %s", line, suffix);
		else
			syslog(pri, "%s", line);
		return;
	}
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	if (suffix != NULL)
		fprintf(stderr, "%s.%03ld %s: %s\n", stamp,
		    (long)tv.tv_usec / 1000, line, suffix);
	else
		fprintf(stderr, "%s.%03ld %s\n", stamp,
		    (long)tv.tv_usec / 1000, line);
	fflush(stderr);
}

/* Write one line, without a suffix. */
static void
log_write(int pri, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(pri, NULL, fmt, ap);
	va_end(ap);
}

/* Warn, with the text of errno. */
void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_ERR, strerror(saved), fmt, ap);
	va_end(ap);
	errno = saved;
}

/* Warn. */
void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_ERR, NULL, fmt, ap);
	va_end(ap);
}

/* Informational line. */
void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_INFO, NULL, fmt, ap);
	va_end(ap);
}

/* Debug line, only with -v. */
void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (log_verbose < 1)
		return;
	va_start(ap, fmt);
	log_vwrite(LOG_DEBUG, NULL, fmt, ap);
	va_end(ap);
}

/*
 * A line at a syslog priority, with the object's identity before it
 * ("vm web1", "vm web1: client 3"); debug lines only with -v.
 */
void
log_vmsg(int pri, const char *prefix, const char *fmt, va_list ap)
{
	char	 line[LOG_LINE_MAX];

	if (pri == LOG_DEBUG && log_verbose < 1)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	log_write(pri, "%s: %s", prefix, line);
}

/* Log with errno and exit. */
void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, strerror(saved), fmt, ap);
	va_end(ap);
	exit(1);
}

/* Log and exit. */
void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}
