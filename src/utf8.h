/* utf8.c: UTF-8 as QEMU reads it, and escaping for a person. */
#ifndef UTF8_H
#define UTF8_H

#include <stddef.h>

/* utf8_escape: src is JSON text, kept JSON */
#define UTF8_ESCAPE_JSON	0x1
/* the most utf8_escape's form of n bytes takes, with its NUL */
#define UTF8_ESCAPE_SIZE(n)	((n) * 6 + 1)

int		 utf8_codepoint(const unsigned char *, size_t, size_t *);
size_t		 utf8_escape(char *, size_t, const void *, size_t, int);
char		*utf8_escape_dup(const void *, size_t, int);

#endif
