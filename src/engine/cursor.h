/*
 * cursor.h: what the two ggml file loaders (model.c for Whisper models,
 * vad.c for Silero VAD models) share: a bounds-checked reader over a file's
 * bytes, and the one-line error that names the file.
 */
#ifndef HARK_CURSOR_H
#define HARK_CURSOR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"

#define GGML_MAGIC 0x67676d6cu

/* A reader over size bytes at base; pos never passes size. */
struct cursor {
    const uint8_t *base;
    size_t size, pos;
};

/* Takes n bytes at *p; -1 (nothing taken) if fewer are left. */
static inline int cur_take(struct cursor *c, size_t n, const uint8_t **p)
{
    if (n > c->size - c->pos) return -1;
    *p = c->base + c->pos;
    c->pos += n;
    return 0;
}

/* Reads a little-endian int32; -1 if fewer than 4 bytes are left. */
static inline int cur_i32(struct cursor *c, int32_t *v)
{
    const uint8_t *p;
    if (cur_take(c, 4, &p)) return -1;
    memcpy(v, p, 4);
    return 0;
}

/* Writes "<name>: <message>" into err (when err is not NULL), the message
 * through err_set's formatter. */
static inline void __attribute__((format(printf, 4, 5)))
cur_seterr(char *err, size_t errlen, const char *name, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (!err || !errlen) return;
    n = snprintf(err, errlen, "%s: ", name);
    if (n < 0 || (size_t)n >= errlen) return;
    va_start(ap, fmt);
    err_vset(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

#endif
