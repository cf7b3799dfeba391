/* Logging to stderr (foreground) or syslog, relayd style. */
#ifndef QMPMUX_LOG_H
#define QMPMUX_LOG_H

#include <stdarg.h>
#include <syslog.h>

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

void	log_init(int foreground, int verbose);
void	log_setverbose(int verbose);
int	log_getverbose(void);
void	log_warn(const char *, ...) LOG_PRINTF(1, 2);
void	log_warnx(const char *, ...) LOG_PRINTF(1, 2);
void	log_info(const char *, ...) LOG_PRINTF(1, 2);
void	log_debug(const char *, ...) LOG_PRINTF(1, 2);
void	log_vmsg(int, const char *, const char *, va_list)
	    __attribute__((format(printf, 3, 0)));
void	fatal(const char *, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));
void	fatalx(const char *, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));

#endif
