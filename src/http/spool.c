/*
 * spool.c: the file writer of an upload, on a thread of its own (see
 * spool.h). The producer fills ring[head]; a full buffer is handed over by
 * advancing head and counting it in n_full; the writer takes ring[tail].
 * One mutex guards the indices and flags; two condition variables carry
 * "a buffer is full" (to the writer) and "a buffer is free" (to the
 * producer).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool.h"

#define SPOOL_BUFS 4
#define SPOOL_BUF_BYTES (256 * 1024)

struct spool {
    int fd;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t full, free;
    unsigned char *ring[SPOOL_BUFS];
    size_t len[SPOOL_BUFS];
    int head, tail, n_full;
    int closing, aborting;
    int error;                 /* errno of the first failed write, 0 if none */
};

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *writer(void *arg)
{
    struct spool *sp = arg;
    pthread_mutex_lock(&sp->lock);
    for (;;) {
        int i, err = 0;
        while (!sp->n_full && !sp->closing && !sp->aborting) pthread_cond_wait(&sp->full, &sp->lock);
        if (sp->aborting || !sp->n_full) break;
        i = sp->tail;
        pthread_mutex_unlock(&sp->lock);
        if (!sp->error) err = write_all(sp->fd, sp->ring[i], sp->len[i]);
        pthread_mutex_lock(&sp->lock);
        if (err && !sp->error) sp->error = err;
        sp->len[i] = 0;
        sp->tail = (sp->tail + 1) % SPOOL_BUFS;
        sp->n_full--;
        pthread_cond_signal(&sp->free);
    }
    pthread_mutex_unlock(&sp->lock);
    return NULL;
}

static void spool_free(struct spool *sp)
{
    int i;
    for (i = 0; i < SPOOL_BUFS; i++) free(sp->ring[i]);
    pthread_cond_destroy(&sp->full);
    pthread_cond_destroy(&sp->free);
    pthread_mutex_destroy(&sp->lock);
    free(sp);
}

int spool_open(int fd, struct spool **out)
{
    struct spool *sp = calloc(1, sizeof *sp);
    int i, rc;
    *out = NULL;
    if (!sp) return -1;
    sp->fd = fd;
    pthread_mutex_init(&sp->lock, NULL);
    pthread_cond_init(&sp->full, NULL);
    pthread_cond_init(&sp->free, NULL);
    for (i = 0; i < SPOOL_BUFS; i++) {
        sp->ring[i] = malloc(SPOOL_BUF_BYTES);
        if (!sp->ring[i]) {
            spool_free(sp);
            errno = ENOMEM;
            return -1;
        }
    }
    rc = pthread_create(&sp->thread, NULL, writer, sp);
    if (rc) {
        spool_free(sp);
        errno = rc;
        return -1;
    }
    *out = sp;
    return 0;
}

/* Hands ring[head] to the writer. Called with the lock held. */
static void hand_over(struct spool *sp)
{
    sp->head = (sp->head + 1) % SPOOL_BUFS;
    sp->n_full++;
    pthread_cond_signal(&sp->full);
}

int spool_write(struct spool *sp, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n) {
        size_t room, k;
        int h;
        pthread_mutex_lock(&sp->lock);
        while (sp->n_full == SPOOL_BUFS && !sp->error) pthread_cond_wait(&sp->free, &sp->lock);
        if (sp->error) {
            errno = sp->error;
            pthread_mutex_unlock(&sp->lock);
            return -1;
        }
        h = sp->head;
        pthread_mutex_unlock(&sp->lock);
        /* ring[head] belongs to the producer until it is handed over. */
        room = SPOOL_BUF_BYTES - sp->len[h];
        k = n < room ? n : room;
        memcpy(sp->ring[h] + sp->len[h], p, k);
        sp->len[h] += k;
        p += k;
        n -= k;
        if (sp->len[h] == SPOOL_BUF_BYTES) {
            pthread_mutex_lock(&sp->lock);
            hand_over(sp);
            pthread_mutex_unlock(&sp->lock);
        }
    }
    return 0;
}

int spool_close(struct spool *sp)
{
    int err;
    pthread_mutex_lock(&sp->lock);
    if (sp->len[sp->head]) {
        while (sp->n_full == SPOOL_BUFS) pthread_cond_wait(&sp->free, &sp->lock);
        hand_over(sp);
    }
    sp->closing = 1;
    pthread_cond_signal(&sp->full);
    pthread_mutex_unlock(&sp->lock);
    pthread_join(sp->thread, NULL);
    err = sp->error;
    spool_free(sp);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

void spool_abort(struct spool *sp)
{
    if (!sp) return;
    pthread_mutex_lock(&sp->lock);
    sp->aborting = 1;
    pthread_cond_signal(&sp->full);
    pthread_mutex_unlock(&sp->lock);
    pthread_join(sp->thread, NULL);
    spool_free(sp);
}
