/* json.c: JSON out (every status checked) and in, outside QMP's bytes. */
#ifndef JSON_H
#define JSON_H

#include <stddef.h>

struct yajl_gen_t;
struct yajl_val_s;
struct evbuffer;

struct yajl_gen_t *json_new(void);
void		 json_free(struct yajl_gen_t *);
void		 json_buf(struct yajl_gen_t *, const unsigned char **, size_t *);
void		 json_map_open(struct yajl_gen_t *);
void		 json_map_close(struct yajl_gen_t *);
void		 json_array_open(struct yajl_gen_t *);
void		 json_array_close(struct yajl_gen_t *);
void		 json_null(struct yajl_gen_t *);
void		 json_bool(struct yajl_gen_t *, int);
void		 json_integer(struct yajl_gen_t *, long long);
void		 json_double(struct yajl_gen_t *, double);
void		 json_number(struct yajl_gen_t *, const char *, size_t);
void		 json_string(struct yajl_gen_t *, const void *, size_t);
void		 json_cstr(struct yajl_gen_t *, const char *);
void		 json_put_str(struct yajl_gen_t *, const char *, const char *);
void		 json_put_int(struct yajl_gen_t *, const char *, long long);
void		 json_put_uint(struct yajl_gen_t *, const char *,
		    unsigned long long);
void		 json_put_double(struct yajl_gen_t *, const char *, double);
void		 json_put_bool(struct yajl_gen_t *, const char *, int);
void		 json_put_hex(struct yajl_gen_t *, const char *, const void *,
		    size_t);
void		 json_put_evbuffer(struct yajl_gen_t *, const char *,
		    struct evbuffer *, const char *, size_t);
void		 json_tree(struct yajl_gen_t *, struct yajl_val_s *);
void		 json_qstring(struct yajl_gen_t *, const char *);
struct yajl_val_s *json_get(struct yajl_val_s *, const char *, int);
long long	 json_get_int(struct yajl_val_s *, const char *, long long);
double		 json_get_double(struct yajl_val_s *, const char *, double);
int		 json_get_bool(struct yajl_val_s *, const char *);
const char	*json_get_str(struct yajl_val_s *, const char *);
char		*json_get_hex(struct yajl_val_s *, const char *, size_t *);

#endif
