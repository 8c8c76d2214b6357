/*
 * errors.h: the engine's one way of writing an error's reason (errors.c).
 *
 * Functions that can fail take `char *err, size_t errlen` and write a
 * one-line reason there that names the thing (docs/STYLE.md, Errors); every
 * engine file writes it through err_set, which does nothing when the caller
 * passed no buffer.
 */
#ifndef HARK_ERRORS_H
#define HARK_ERRORS_H

#include <stdarg.h>
#include <stddef.h>

/* Formats a printf-style message into err (errlen bytes, truncated and
 * terminated); nothing when err is NULL or errlen is 0. */
void err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* err_set with a va_list. */
void err_vset(char *err, size_t errlen, const char *fmt, va_list ap);

#endif
