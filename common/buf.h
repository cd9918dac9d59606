/* buf.h - a growable byte buffer with an optional cap (curl's dynbuf pattern).
 * Contents are always NUL-terminated (the NUL is not counted in len), so text can be read
 * straight out of b->data. */
#ifndef BUF_H
#define BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char *data;   /* NULL until the first append */
    size_t len;   /* bytes used, not counting the trailing NUL */
    size_t alloc; /* bytes allocated */
    size_t cap;   /* 0: unlimited; else appends that would exceed it fail with ERR_TOOBIG */
} buf_t;

/* An empty buffer that refuses to grow past `cap` bytes (0: no cap). No allocation. */
void buf_init(buf_t *b, size_t cap);
/* Frees the contents; the buffer is empty and usable again. */
void buf_free(buf_t *b);
/* Empties without freeing. */
void buf_reset(buf_t *b);
/* Returns ERR_OK, ERR_NOMEM or ERR_TOOBIG (the buffer is unchanged on failure). */
int buf_append(buf_t *b, const void *data, size_t len);
int buf_append_str(buf_t *b, const char *s);
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Hands the contents to the caller (free() them); the buffer is empty after. NULL if empty. */
char *buf_steal(buf_t *b);

#endif /* BUF_H */
