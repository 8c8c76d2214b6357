/*
 * spool.h: writes a stream of bytes to a file from a thread of its own, so
 * that an upload's connection thread (reading the socket, parsing the
 * multipart body, hashing) and the file writes run at the same time on two
 * cores. The bytes pass through a small ring of buffers (1 MiB in all), so
 * memory stays constant; a writer that falls behind makes the producer wait.
 */
#ifndef HARK_SPOOL_H
#define HARK_SPOOL_H

#include <stddef.h>

struct spool;

/* Starts a writer for fd (not taken: the caller closes it). Returns 0, or
 * -1 with errno set. */
int spool_open(int fd, struct spool **out);

/* Copies n bytes into the ring, waiting for room. Returns 0, or -1 with
 * errno set once a write has failed (later bytes are dropped). */
int spool_write(struct spool *sp, const void *data, size_t n);

/* Writes what is left, stops the writer and frees. Returns 0, or -1 with
 * errno set if any write failed. */
int spool_close(struct spool *sp);

/* Stops the writer without writing what is left, and frees. NULL is a no-op. */
void spool_abort(struct spool *sp);

#endif
