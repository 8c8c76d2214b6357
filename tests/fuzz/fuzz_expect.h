/*
 * fuzz_expect.h: what every fuzz target checks with: abort() on a broken
 * expectation, so that the fuzzer records the input, and the shape of a
 * refusal (a known negative HARK_E* code and a one-line reason). Define
 * FUZZ_NAME (the target's name) first.
 */
#ifndef HARK_FUZZ_EXPECT_H
#define HARK_FUZZ_EXPECT_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hark.h"

#ifndef FUZZ_NAME
#error "define FUZZ_NAME (the target's name) before including fuzz_expect.h"
#endif

static void expect(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_" FUZZ_NAME ": broken expectation: %s\n", what);
        abort();
    }
}

/* A failure as the engine reports one: a negative code hark_strerror
 * knows, and a reason of one non-empty line. */
static inline int known_failure(int rc, const char *err)
{
    return rc < 0 && strcmp(hark_strerror(rc), hark_strerror(INT_MIN)) != 0 && err[0] && !strchr(err, '\n');
}

#endif
