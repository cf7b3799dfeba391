/*
 * A VM's configuration from JSON, as the control socket's add-vm gives
 * it: each key as the config file would spell it, set through the same
 * table (conf.c), and kept among the VM's given keys so that a restart
 * can make the same configuration again.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "qmpmux.h"

/*
 * A JSON value as the config file would spell it: a string as it is, a
 * number as written, a boolean as yes or no, an array of those joined
 * by spaces (allow, deny, allowed_uids).  NULL for any other type.
 */
char *
conf_json_text(yajl_val v)
{
	char	*text, *next, *joined;
	size_t	 i;

	if (YAJL_IS_STRING(v))
		text = strdup(v->u.string);
	else if (YAJL_IS_NUMBER(v))
		text = strdup(v->u.number.r);
	else if (YAJL_IS_TRUE(v))
		text = strdup("yes");
	else if (YAJL_IS_FALSE(v))
		text = strdup("no");
	else if (YAJL_IS_ARRAY(v)) {
		if ((text = strdup("")) == NULL)
			fatal("%s", __func__);
		for (i = 0; i < v->u.array.len; i++) {
			if (YAJL_IS_ARRAY(v->u.array.values[i]) ||
			    (next = conf_json_text(
			    v->u.array.values[i])) == NULL) {
				free(text);
				return (NULL);
			}
			joined = text;
			if (asprintf(&text, "%s%s%s", joined, i > 0 ? " " :
			    "", next) == -1)
				fatal("%s", __func__);
			free(joined);
			free(next);
		}
		return (text);
	} else
		return (NULL);
	if (text == NULL)
		fatal("%s", __func__);
	return (text);
}

/*
 * Keep a key an add-vm set, for a restart to make the VM's conf again
 * (state-restore.c): section "vm", or the listener's, by how it was given.
 */
void
conf_given_add(struct vm_conf *vc, const struct listener_conf *lc,
    const char *key, const char *value)
{
	char	*section;

	if (lc == NULL)
		section = strdup("vm");
	else if (asprintf(&section, "%s %s", lc->passed ? "passed" :
	    "listener", lc->path) == -1)
		section = NULL;
	if (section == NULL)
		fatal("%s", __func__);
	conf_entry_add(&vc->given, section, key, value, "add-vm", 0);
	free(section);
}

/*
 * Set one config key of a VM (lc NULL) or of one of its listeners from
 * a JSON value, and keep it among the keys given; what names where the
 * key was ("listeners[0].", or ""), for the error.  -1 if it cannot be
 * set, err saying why as the control socket answers it: QEMU's words
 * for a key it does not take or a value of the wrong type.
 */
int
conf_json_set(struct vm_conf *vc, struct listener_conf *lc, const char *what,
    const char *key, yajl_val v, char *err, size_t errlen)
{
	char	*text, why[CONF_ERR_MAX];
	int	 rv;

	if ((text = conf_json_text(v)) == NULL) {
		snprintf(err, errlen, "Invalid parameter type for '%s%s', "
		    "expected: string", what, key);
		return (-1);
	}
	rv = lc != NULL ? conf_set_listener(lc, key, text, why, sizeof(why)) :
	    conf_set_vm(vc, key, text, why, sizeof(why));
	if (rv == 0)
		conf_given_add(vc, lc, key, text);
	else if (strcmp(why, "unknown key") == 0)
		snprintf(err, errlen, "Parameter '%s%s' is unexpected", what,
		    key);
	else
		snprintf(err, errlen, "qmpmux: %s%s = %s: %s", what, key, text,
		    why);
	free(text);
	return (rv);
}
