/*
 * UTF-8 as QEMU reads it, and bytes made safe for a person to read:
 * the ground under the log, the framer and the generators, calling
 * nothing of qmpmux's, so that each of them may use it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/*
 * Decode one UTF-8 sequence as QEMU's mod_utf8_codepoint does: the code
 * point, or -1 for an invalid sequence (overlong but for the C0 80 of
 * NUL, a surrogate, a noncharacter, past U+10FFFF, or cut short).
 * *used is how many bytes it took; bytes past n read as NUL.
 */
int
utf8_codepoint(const unsigned char *s, size_t n, size_t *used)
{
	static const int	 min_cp[5] = { 0x80, 0x800, 0x10000, 0x200000,
				    0x4000000 };
	unsigned int		 byte, mask, len, i;
	int			 cp;

	*used = 1;
	if (n == 0 || s[0] == 0) {
		*used = 0;
		return (-1);
	}
	byte = s[0];
	if (byte < 0x80)
		return ((int)byte);
	if (byte >= 0xfe || (byte & 0x40) == 0)
		return (-1);
	len = 0;
	for (mask = 0x80; byte & mask; mask >>= 1)
		len++;
	cp = (int)(byte & (mask - 1));
	for (i = 1; i < len; i++) {
		byte = i < n ? s[i] : 0;
		if ((byte & 0xc0) != 0x80) {
			*used = i;
			return (-1);
		}
		cp = (cp << 6) | (int)(byte & 0x3f);
	}
	*used = len;
	if (cp > 0x10ffff || (cp >= 0xfdd0 && cp <= 0xfdef) ||
	    (cp & 0xfffe) == 0xfffe || (cp >= 0xd800 && cp <= 0xdfff) ||
	    (cp < min_cp[len - 2] && !(cp == 0 && len == 2)))
		return (-1);
	return (cp);
}

/*
 * How a person is shown bytes that a client or QEMU chose (a command's
 * name, a reply, an id), so that they can neither move the cursor, clear
 * the screen or set a title, nor start a log line of their own: into
 * dst (size bytes, always NUL-terminated, never an escape cut in half),
 * returning the length the whole escaped text needs, as snprintf does.
 * UTF-8 that prints is kept; a backslash is doubled; tab, newline and
 * carriage return are \t, \n and \r; any other control byte (below
 * 0x20, and 0x7f), the two bytes of a C1 control (U+0080 to U+009F,
 * which some terminals obey as ESC sequences) and each byte that is not
 * UTF-8 (QEMU's C0 80 for NUL among them) is \xHH, in lowercase, so
 * the bytes can be told back exactly.  With UTF8_ESCAPE_JSON, src is
 * JSON text (a generator's, whose strings escape what JSON requires)
 * and stays JSON of the same value: tab, newline and carriage return
 * (whitespace between tokens) and backslashes are kept, any other
 * control, C1 ones included, is \u00XX as yajl and QEMU write it, C0 80
 * is \u0000 and a byte that is not UTF-8 is \uFFFD.  At most
 * UTF8_ESCAPE_SIZE(len) bytes are needed.
 */
size_t
utf8_escape(char *dst, size_t size, const void *src, size_t len, int flags)
{
	const unsigned char	*p = src, *end = p + len;
	char			 unit[16];
	size_t			 out = 0, w = 0, used, n, i;
	int			 cp, json = flags & UTF8_ESCAPE_JSON;

	while (p < end) {
		/* a NUL is a control here, not the end utf8_codepoint sees */
		used = 1;
		cp = *p == 0 ? 0 : utf8_codepoint(p, (size_t)(end - p),
		    &used);
		n = 0;
		if (cp < 0 || (cp == 0 && used == 2 && !json)) {
			/* not UTF-8 (or C0 80): its first byte alone */
			used = 1;
			if (json)
				n = (size_t)snprintf(unit, sizeof(unit),
				    "\\uFFFD");
			else
				n = (size_t)snprintf(unit, sizeof(unit),
				    "\\x%02x", *p);
		} else if (cp == '\\' && !json)
			n = (size_t)snprintf(unit, sizeof(unit), "\\\\");
		else if (cp == '\t' || cp == '\n' || cp == '\r') {
			if (json)
				unit[n++] = (char)cp;
			else
				n = (size_t)snprintf(unit, sizeof(unit),
				    "\\%c", cp == '\t' ? 't' : cp == '\n' ?
				    'n' : 'r');
		} else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
			if (json)
				n = (size_t)snprintf(unit, sizeof(unit),
				    "\\u%04X", (unsigned int)cp);
			else
				for (i = 0; i < used; i++)
					n += (size_t)snprintf(unit + n,
					    sizeof(unit) - n, "\\x%02x", p[i]);
		} else {
			memcpy(unit, p, used);
			n = used;
		}
		p += used;
		/* once a unit does not fit, none after it is written */
		if (w == out && out + n < size) {
			memcpy(dst + w, unit, n);
			w += n;
		}
		out += n;
	}
	if (size > 0)
		dst[w] = '\0';
	return (out);
}

/* utf8_escape into memory of its own, to free; NULL if there is none. */
char *
utf8_escape_dup(const void *src, size_t len, int flags)
{
	size_t	 size = utf8_escape(NULL, 0, src, len, flags) + 1;
	char	*p;

	if ((p = malloc(size)) != NULL)
		utf8_escape(p, size, src, len, flags);
	return (p);
}
