/*
 * fuzz_input.h: what the file-reading fuzz targets share: the input written
 * to a per-process temporary file, and fuzz_expect.h's checks. Included by
 * one target per program.
 */
#ifndef HARK_FUZZ_INPUT_H
#define HARK_FUZZ_INPUT_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_expect.h"

static char named_path[64];

static void remove_named(void) { unlink(named_path); }

/* Writes the input to this process's temporary file and returns a path that
 * opens it. The file is made once per process (its name carries the pid)
 * and rewritten for each input. Where /proc is available the name is
 * unlinked at once and the file reached as /proc/self/fd/N, so that not even
 * a crashing run leaves it behind; otherwise it is removed at exit. */
static const char *input_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static pid_t owner;
    static char path[64];
    size_t done = 0;

    if (fd < 0 || owner != getpid()) {
        owner = getpid();
        snprintf(named_path, sizeof named_path, "/tmp/hark-fuzz-" FUZZ_NAME "-%ld", (long)owner);
        fd = open(named_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            perror(named_path);
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        if (access(path, R_OK) == 0) {
            unlink(named_path);
        } else {
            snprintf(path, sizeof path, "%s", named_path);
            atexit(remove_named);
        }
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        perror("ftruncate");
        abort();
    }
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0) {
            perror("pwrite");
            abort();
        }
        done += (size_t)n;
    }
    return path;
}

#endif
