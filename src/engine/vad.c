/*
 * vad.c: Silero VAD in whisper.cpp's ggml VAD file format: loading the file
 * and computing one speech probability per 512-sample frame.
 *
 * The file (whisper.cpp's models/convert-silero-vad-to-ggml.py writes it):
 *   u32 magic 0x67676d6c; i32 len + bytes: model type ("silero-16k");
 *   i32 major, minor, patch; i32 window (512), context (64);
 *   i32 n_layers (4), then per layer i32 in, out, kernel;
 *   i32 lstm input, hidden (128, 128); i32 final conv in, out (128, 1);
 *   tensor records until the end of the file, each i32 n_dims, name_len,
 *   ttype (0 f32, 1 f16), i32 ne[n_dims] (ggml order), the name, the data.
 * The file is read whole (it is under a megabyte) and checked in two
 * passes: the first walks every header and record without touching tensor
 * data, so a truncation at any byte, an unknown, missing or duplicate
 * tensor, a wrong type or shape is found cheaply and named in one line;
 * the second widens the weights to aligned f32.
 *
 * The network, per frame, as whisper.cpp 1.9.3 builds its graph:
 *   x (512) -> reflect pad 64 each side (640) -> STFT: a stride-128
 *   convolution with the 258 x 256 basis -> 4 frames of 258 -> magnitude
 *   sqrt(re² + im²) of the 129 bins -> conv 129->128 (k 3, s 1, p 1) ->
 *   conv 128->64 (s 2) -> conv 64->64 (s 2) -> conv 64->128 (s 1), each
 *   + bias and ReLU -> (1 frame, 128) -> LSTM cell (state carried from
 *   frame to frame) -> ReLU -> 1x1 conv 128->1 + bias -> sigmoid.
 * ggml runs a convolution with an f16 kernel by unfolding its input into
 * f16 (im2col in the kernel's type), so every convolution's input is
 * rounded to f16 first; hark does the same (kern_round_f16) and otherwise
 * computes in f32.
 *
 * Only the LSTM is sequential. Everything before it depends on one frame
 * alone, so frames are processed in batches: per batch of VAD_BATCH frames
 * the convolutions are matrix products over all of the batch's frames
 * (kern_sgemm on unfolded inputs), and the LSTM's input projection too;
 * batches run in parallel on the pool, then the calling thread runs the
 * recurrence over them (kern_lstm_step).
 */
#include "vad.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "kernels.h"
#include "pool.h"

#define MAX_FILE_BYTES (64u << 20)
#define MAX_NAME_LEN 256
#define N_GATES (4 * VAD_HIDDEN)
#define STFT_OUT (2 * VAD_NBIN) /* 258 */

/* Frames per parallel task and per recurrence pass. */
#define VAD_BATCH 32
#define VAD_SUPER 1024

/* ---------------------------------------------------------------- layout */

/* Silero's 16 kHz encoder: channels in and out of each convolution. */
static const int layer_in[VAD_LAYERS] = {VAD_NBIN, 128, 64, 64};
static const int layer_out[VAD_LAYERS] = {128, 64, 64, VAD_HIDDEN};

enum { T_F32 = 0, T_F16 = 1 };

/* The tensors a file must hold, once each. */
enum {
    W_CONV0, B_CONV0, W_CONV1, B_CONV1, W_CONV2, B_CONV2, W_CONV3, B_CONV3,
    W_IH, W_HH, B_IH, B_HH, W_OUT, B_OUT, W_STFT, N_TENSORS
};

struct expect {
    const char *name;
    int type;
    int64_t ne[4];
};

static const struct expect tensors[N_TENSORS] = {
    [W_CONV0] = {"_model.encoder.0.reparam_conv.weight", T_F16, {VAD_KERNEL, VAD_NBIN, 128, 1}},
    [B_CONV0] = {"_model.encoder.0.reparam_conv.bias", T_F32, {128, 1, 1, 1}},
    [W_CONV1] = {"_model.encoder.1.reparam_conv.weight", T_F16, {VAD_KERNEL, 128, 64, 1}},
    [B_CONV1] = {"_model.encoder.1.reparam_conv.bias", T_F32, {64, 1, 1, 1}},
    [W_CONV2] = {"_model.encoder.2.reparam_conv.weight", T_F16, {VAD_KERNEL, 64, 64, 1}},
    [B_CONV2] = {"_model.encoder.2.reparam_conv.bias", T_F32, {64, 1, 1, 1}},
    [W_CONV3] = {"_model.encoder.3.reparam_conv.weight", T_F16, {VAD_KERNEL, 64, VAD_HIDDEN, 1}},
    [B_CONV3] = {"_model.encoder.3.reparam_conv.bias", T_F32, {VAD_HIDDEN, 1, 1, 1}},
    [W_IH] = {"_model.decoder.rnn.weight_ih", T_F32, {VAD_HIDDEN, N_GATES, 1, 1}},
    [W_HH] = {"_model.decoder.rnn.weight_hh", T_F32, {VAD_HIDDEN, N_GATES, 1, 1}},
    [B_IH] = {"_model.decoder.rnn.bias_ih", T_F32, {N_GATES, 1, 1, 1}},
    [B_HH] = {"_model.decoder.rnn.bias_hh", T_F32, {N_GATES, 1, 1, 1}},
    [W_OUT] = {"_model.decoder.decoder.2.weight", T_F16, {VAD_HIDDEN, 1, 1, 1}},
    [B_OUT] = {"_model.decoder.decoder.2.bias", T_F32, {1, 1, 1, 1}},
    [W_STFT] = {"_model.stft.forward_basis_buffer", T_F16, {VAD_NFFT, 1, STFT_OUT, 1}},
};


static void shape_str(char *buf, size_t cap, const int64_t *ne, int n_dims)
{
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n_dims && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* ------------------------------------------------------------------ load */

/* The header: type, version, sizes. Every size must be Silero's. */
static int parse_header(struct hark_vad *v, struct cursor *c, const char *name, char *err, size_t errlen)
{
    uint32_t magic;
    const uint8_t *p;
    int32_t len, x[3];
    if (cur_take(c, 4, &p)) goto truncated;
    memcpy(&magic, p, 4);
    if (magic != GGML_MAGIC) {
        cur_seterr(err, errlen, name, "bad magic 0x%08x: not a ggml VAD model", magic);
        return HARK_EFORMAT;
    }
    if (cur_i32(c, &len)) goto truncated;
    if (len < 1 || len >= (int32_t)sizeof(v->type)) {
        cur_seterr(err, errlen, name, "model type length %d out of range", len);
        return HARK_EFORMAT;
    }
    if (cur_take(c, (size_t)len, &p)) goto truncated;
    memcpy(v->type, p, (size_t)len);
    v->type[len] = '\0';
    if (strcmp(v->type, "silero-16k") != 0) {
        char shown[sizeof(v->type)];
        for (int i = 0; i <= len; i++) shown[i] = (v->type[i] >= 0x20 && v->type[i] < 0x7f) || !v->type[i] ? v->type[i] : '?';
        cur_seterr(err, errlen, name, "model type '%s', expected 'silero-16k'", shown);
        return HARK_EFORMAT;
    }
    for (int i = 0; i < 3; i++) {
        if (cur_i32(c, &x[i])) goto truncated;
        if (x[i] < 0 || x[i] > 999) {
            cur_seterr(err, errlen, name, "version field %d is %d, out of range", i, x[i]);
            return HARK_EFORMAT;
        }
        v->version[i] = x[i];
    }
    snprintf(v->name, sizeof(v->name), "silero-v%d.%d.%d", x[0], x[1], x[2]);
    if (cur_i32(c, &x[0]) || cur_i32(c, &x[1])) goto truncated;
    if (x[0] != VAD_WINDOW || x[1] != VAD_PAD) {
        cur_seterr(err, errlen, name, "window %d and context %d samples, expected %d and %d", x[0], x[1],
               VAD_WINDOW, VAD_PAD);
        return HARK_EFORMAT;
    }
    v->n_window = x[0];
    v->n_context = x[1];
    if (cur_i32(c, &len)) goto truncated;
    if (len != VAD_LAYERS) {
        cur_seterr(err, errlen, name, "%d encoder layers, expected %d", len, VAD_LAYERS);
        return HARK_EFORMAT;
    }
    for (int i = 0; i < VAD_LAYERS; i++) {
        if (cur_i32(c, &x[0]) || cur_i32(c, &x[1]) || cur_i32(c, &x[2])) goto truncated;
        if (x[0] != layer_in[i] || x[1] != layer_out[i] || x[2] != VAD_KERNEL) {
            cur_seterr(err, errlen, name, "encoder layer %d: %d -> %d channels, kernel %d; expected %d -> %d, kernel %d",
                   i, x[0], x[1], x[2], layer_in[i], layer_out[i], VAD_KERNEL);
            return HARK_EFORMAT;
        }
        v->ch_in[i] = x[0];
        v->ch_out[i] = x[1];
    }
    if (cur_i32(c, &x[0]) || cur_i32(c, &x[1])) goto truncated;
    if (x[0] != VAD_HIDDEN || x[1] != VAD_HIDDEN) {
        cur_seterr(err, errlen, name, "LSTM sizes %d, %d, expected %d, %d", x[0], x[1], VAD_HIDDEN, VAD_HIDDEN);
        return HARK_EFORMAT;
    }
    if (cur_i32(c, &x[0]) || cur_i32(c, &x[1])) goto truncated;
    if (x[0] != VAD_HIDDEN || x[1] != 1) {
        cur_seterr(err, errlen, name, "final convolution %d -> %d channels, expected %d -> 1", x[0], x[1], VAD_HIDDEN);
        return HARK_EFORMAT;
    }
    return 0;
truncated:
    cur_seterr(err, errlen, name, "truncated in the header (%zu bytes)", c->size);
    return HARK_EFORMAT;
}

/* Walks the tensor records; data[i] points at tensor i's bytes. */
static int walk_tensors(struct cursor *c, const uint8_t *data[N_TENSORS], const char *name, char *err,
                        size_t errlen)
{
    for (int i = 0; i < N_TENSORS; i++) data[i] = NULL;
    while (c->pos < c->size) {
        size_t at = c->pos;
        int32_t n_dims, name_len, ttype;
        int64_t ne[4] = {1, 1, 1, 1};
        const uint8_t *p;
        char tname[MAX_NAME_LEN + 1], shape[96], want[96];
        if (cur_i32(c, &n_dims) || cur_i32(c, &name_len) || cur_i32(c, &ttype)) goto truncated;
        if (n_dims < 0 || n_dims > 4) {
            cur_seterr(err, errlen, name, "tensor record at byte %zu: n_dims %d out of range", at, n_dims);
            return HARK_EFORMAT;
        }
        if (name_len < 1 || name_len > MAX_NAME_LEN) {
            cur_seterr(err, errlen, name, "tensor record at byte %zu: name length %d out of range", at, name_len);
            return HARK_EFORMAT;
        }
        for (int d = 0; d < n_dims; d++) {
            int32_t e;
            if (cur_i32(c, &e)) goto truncated;
            if (e < 1) {
                cur_seterr(err, errlen, name, "tensor record at byte %zu: dimension %d is %d", at, d, e);
                return HARK_EFORMAT;
            }
            ne[d] = e;
        }
        if (cur_take(c, (size_t)name_len, &p)) goto truncated;
        for (int k = 0; k < name_len; k++) tname[k] = (p[k] >= 0x20 && p[k] < 0x7f) ? (char)p[k] : '?';
        tname[name_len] = '\0';
        int id = -1;
        for (int k = 0; k < N_TENSORS; k++)
            if (strlen(tensors[k].name) == (size_t)name_len && !memcmp(tensors[k].name, p, (size_t)name_len)) id = k;
        if (id < 0) {
            cur_seterr(err, errlen, name, "unknown tensor '%s'", tname);
            return HARK_EFORMAT;
        }
        if (data[id]) {
            cur_seterr(err, errlen, name, "tensor '%s' appears twice", tname);
            return HARK_EFORMAT;
        }
        const struct expect *x = &tensors[id];
        if (ne[0] != x->ne[0] || ne[1] != x->ne[1] || ne[2] != x->ne[2] || ne[3] != x->ne[3]) {
            int nd = 4;
            while (nd > 1 && x->ne[nd - 1] == 1) nd--;
            shape_str(shape, sizeof shape, ne, n_dims);
            shape_str(want, sizeof want, x->ne, nd);
            cur_seterr(err, errlen, name, "tensor '%s': shape %s, expected %s", tname, shape, want);
            return HARK_EFORMAT;
        }
        if (ttype != x->type) {
            char got[16];
            snprintf(got, sizeof got, ttype == T_F32 ? "f32" : ttype == T_F16 ? "f16" : "%d", ttype);
            cur_seterr(err, errlen, name, "tensor '%s': type %s, expected %s", tname, got, x->type ? "f16" : "f32");
            return HARK_EFORMAT;
        }
        size_t n = (size_t)(ne[0] * ne[1] * ne[2] * ne[3]) * (ttype == T_F16 ? 2 : 4);
        if (cur_take(c, n, &p)) goto truncated;
        data[id] = p;
    }
    for (int k = 0; k < N_TENSORS; k++) {
        if (!data[k]) {
            cur_seterr(err, errlen, name, "tensor '%s' is missing", tensors[k].name);
            return HARK_EFORMAT;
        }
    }
    return 0;
truncated:
    cur_seterr(err, errlen, name, "truncated in the tensor data (%zu bytes)", c->size);
    return HARK_EFORMAT;
}

/* Reads n values of a checked tensor as f32; returns the index of the
 * first value that is not finite, or -1. */
static long widen(const uint8_t *src, int type, float *dst, size_t n)
{
    if (type == T_F16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = kern_f16_to_f32(h);
        }
    } else {
        memcpy(dst, src, n * sizeof(float));
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i])) return (long)i;
    return -1;
}

static size_t count(int id)
{
    const int64_t *ne = tensors[id].ne;
    return (size_t)(ne[0] * ne[1] * ne[2] * ne[3]);
}

/* Carves one 64-byte aligned allocation into the f32 arrays. */
static float *carve(float **next, size_t n)
{
    float *p = *next;
    *next += (n + 15) & ~(size_t)15;
    return p;
}

int vad_parse(struct hark_vad *v, const uint8_t *buf, size_t len, const char *name, char *err, size_t errlen)
{
    struct cursor c = {buf, len, 0};
    const uint8_t *data[N_TENSORS];
    memset(v, 0, sizeof(*v));
    int rc = parse_header(v, &c, name, err, errlen);
    if (!rc) rc = walk_tensors(&c, data, name, err, errlen);
    if (rc) return rc;

    size_t total = 0;
    for (int k = 0; k < N_TENSORS; k++) total += (count(k) + 15) & ~(size_t)15;
    total += (size_t)N_GATES * VAD_HIDDEN + (size_t)VAD_HIDDEN * 64 + N_GATES;
    v->mem = aligned_alloc(64, total * sizeof(float));
    if (!v->mem) {
        cur_seterr(err, errlen, name, "out of memory for the VAD weights");
        return HARK_ENOMEM;
    }
    float *next = v->mem;
    float *dst[N_TENSORS];
    for (int k = 0; k < N_TENSORS; k++) {
        dst[k] = carve(&next, count(k));
        long bad = widen(data[k], tensors[k].type, dst[k], count(k));
        if (bad >= 0) {
            cur_seterr(err, errlen, name, "tensor '%s': value %ld is not a finite number", tensors[k].name, bad);
            vad_deinit(v);
            return HARK_EFORMAT;
        }
    }
    v->stft = dst[W_STFT];
    for (int i = 0; i < VAD_LAYERS; i++) {
        v->conv_w[i] = dst[W_CONV0 + 2 * i];
        v->conv_b[i] = dst[B_CONV0 + 2 * i];
    }
    /* Layer 3 sees one frame padded by a zero on each side: only its middle
     * tap multiplies data. */
    v->conv3_mid = carve(&next, (size_t)VAD_HIDDEN * 64);
    for (int o = 0; o < VAD_HIDDEN; o++)
        for (int i = 0; i < 64; i++) v->conv3_mid[o * 64 + i] = v->conv_w[3][(o * 64 + i) * VAD_KERNEL + 1];
    v->w_ih = dst[W_IH];
    v->w_hh_t = carve(&next, count(W_HH));
    for (int j = 0; j < N_GATES; j++)
        for (int k = 0; k < VAD_HIDDEN; k++) v->w_hh_t[k * N_GATES + j] = dst[W_HH][j * VAD_HIDDEN + k];
    v->b_gates = carve(&next, N_GATES);
    for (int j = 0; j < N_GATES; j++) v->b_gates[j] = dst[B_IH][j] + dst[B_HH][j];
    v->w_out = dst[W_OUT];
    v->b_out = dst[B_OUT][0];
    return 0;
}

void vad_deinit(struct hark_vad *v)
{
    if (!v) return;
    free(v->mem);
    v->mem = NULL;
}

hark_vad *hark_vad_load(const char *path, int *code, char *err, size_t errlen)
{
    int rc = 0;
    uint8_t *buf = NULL;
    hark_vad *v = NULL;
    FILE *f = NULL;
    if (!path) {
        cur_seterr(err, errlen, "hark_vad_load", "no path given");
        rc = HARK_EINVAL;
        goto fail;
    }
    f = fopen(path, "rb");
    if (!f) {
        rc = errno == ENOENT ? HARK_ENOENT : HARK_EIO;
        cur_seterr(err, errlen, path, "cannot open: %s", strerror(errno));
        goto fail;
    }
    if (fseek(f, 0, SEEK_END) != 0) goto io;
    long size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) goto io;
    if ((unsigned long)size > MAX_FILE_BYTES) {
        cur_seterr(err, errlen, path, "%ld bytes is too large for a VAD model", size);
        rc = HARK_EFORMAT;
        goto fail;
    }
    buf = malloc(size ? (size_t)size : 1);
    v = calloc(1, sizeof(*v));
    if (!buf || !v) {
        cur_seterr(err, errlen, path, "out of memory");
        rc = HARK_ENOMEM;
        goto fail;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) goto io;
    rc = vad_parse(v, buf, (size_t)size, path, err, errlen);
    if (rc) goto fail;
    fclose(f);
    free(buf);
    if (code) *code = 0;
    return v;
io:
    cur_seterr(err, errlen, path, "read error: %s", strerror(errno));
    rc = HARK_EIO;
fail:
    if (f) fclose(f);
    free(buf);
    if (v) vad_deinit(v);
    free(v);
    if (code) *code = rc;
    return NULL;
}

void hark_vad_free(hark_vad *vad)
{
    if (!vad) return;
    vad_deinit(vad);
    free(vad);
}

const char *hark_vad_name(const hark_vad *vad) { return vad ? vad->name : ""; }

/* --------------------------------------------------------------- forward */

struct batch_args {
    const struct hark_vad *v;
    struct kern_pool *pool;
    const float *pcm;
    size_t n_samples;
    size_t f0, n_frames;   /* the pass's first frame and its frame count */
    float *gates;          /* (n_frames, 512): W_ih·x + biases per frame */
};

/* Bias and ReLU over rows of n, then the f16 rounding of the next
 * convolution's input. */
static void bias_relu(float *y, int rows, int n, const float *b, int round)
{
    for (int r = 0; r < rows; r++) {
        float *row = y + (size_t)r * n;
        for (int i = 0; i < n; i++) {
            float t = row[i] + b[i];
            row[i] = t > 0.0f ? t : 0.0f;
        }
    }
    if (round) kern_round_f16(y, (size_t)rows * n);
}

/* Unfolds a kernel-3, padding-1 convolution's input: x holds each frame's
 * t_in steps of c channels (row-major (frame, t, c)); row (frame, t_out) of
 * col holds, for every channel ci and tap k, x[frame][stride·t + k − 1][ci]
 * (zero outside 0..t_in−1) at column ci·3 + k, as the weights are laid out. */
static void unfold(const float *x, int n_frames, int t_in, int c, int stride, int t_out, float *col)
{
    const int K = c * VAD_KERNEL;
    for (int f = 0; f < n_frames; f++) {
        for (int t = 0; t < t_out; t++) {
            float *row = col + ((size_t)f * t_out + t) * K;
            for (int k = 0; k < VAD_KERNEL; k++) {
                int ti = stride * t + k - 1;
                if (ti < 0 || ti >= t_in) {
                    for (int ci = 0; ci < c; ci++) row[ci * VAD_KERNEL + k] = 0.0f;
                } else {
                    const float *src = x + ((size_t)f * t_in + ti) * c;
                    for (int ci = 0; ci < c; ci++) row[ci * VAD_KERNEL + k] = src[ci];
                }
            }
        }
    }
}

/* The 640 samples of frame f, reflect-padded by 64 on each side (zeros past
 * the end of the audio), rounded to f16 as the STFT's f16 basis demands. */
static void padded_frame(const float *pcm, size_t n_samples, size_t f, float *xp)
{
    float x[VAD_WINDOW];
    size_t s0 = f * VAD_WINDOW;
    size_t n = s0 < n_samples ? n_samples - s0 : 0;
    if (n > VAD_WINDOW) n = VAD_WINDOW;
    memcpy(x, pcm + s0, n * sizeof(float));
    memset(x + n, 0, (VAD_WINDOW - n) * sizeof(float));
    for (int i = 0; i < VAD_WINDOW + 2 * VAD_PAD; i++) {
        int j = i - VAD_PAD;
        if (j < 0) j = -j;
        if (j >= VAD_WINDOW) j = 2 * (VAD_WINDOW - 1) - j;
        xp[i] = x[j];
    }
    kern_round_f16(xp, VAD_WINDOW + 2 * VAD_PAD);
}

/* Everything before the recurrence, for one batch of up to VAD_BATCH frames
 * of the pass. Shapes are per batch (nb frames); every buffer comes from
 * the pool thread's scratch. */
static void batch_task(void *arg, int task, int thread)
{
    struct batch_args *a = arg;
    const struct hark_vad *v = a->v;
    size_t b0 = (size_t)task * VAD_BATCH;
    const int nb = (int)(a->n_frames - b0 < VAD_BATCH ? a->n_frames - b0 : VAD_BATCH);
    float *s = kern_pool_scratch(a->pool, thread);
    float *xp = s;                                       /* (640) */
    float *col = xp + 640;                               /* unfolded input, up to (nb·4, 387) */
    float *spec = col + (size_t)VAD_BATCH * VAD_T0 * VAD_NBIN * VAD_KERNEL; /* (nb·4, 258) */
    float *mag = spec + (size_t)VAD_BATCH * VAD_T0 * STFT_OUT;              /* (nb·4, 129) */
    float *y0 = mag + (size_t)VAD_BATCH * VAD_T0 * VAD_NBIN;                /* (nb·4, 128) */
    float *y1 = y0 + (size_t)VAD_BATCH * VAD_T0 * 128;                      /* (nb·2, 64) */
    float *y2 = y1 + (size_t)VAD_BATCH * 2 * 64;                            /* (nb, 64) */
    float *x = y2 + (size_t)VAD_BATCH * 64;                                 /* (nb, 128) */

    /* STFT: row (frame, t) of col is the 256 samples from 128·t. */
    for (int f = 0; f < nb; f++) {
        padded_frame(a->pcm, a->n_samples, a->f0 + b0 + (size_t)f, xp);
        for (int t = 0; t < VAD_T0; t++)
            memcpy(col + ((size_t)f * VAD_T0 + t) * VAD_NFFT, xp + t * VAD_HOP, VAD_NFFT * sizeof(float));
    }
    kern_sgemm(1, nb * VAD_T0, STFT_OUT, VAD_NFFT, 1.0f, col, VAD_NFFT, v->stft, VAD_NFFT, 0.0f, spec, STFT_OUT);
    for (int r = 0; r < nb * VAD_T0; r++) {
        const float *re = spec + (size_t)r * STFT_OUT, *im = re + VAD_NBIN;
        for (int k = 0; k < VAD_NBIN; k++) {
            float p = re[k] * re[k];
            float q = im[k] * im[k];
            mag[(size_t)r * VAD_NBIN + k] = sqrtf(p + q);
        }
    }
    kern_round_f16(mag, (size_t)nb * VAD_T0 * VAD_NBIN);

    /* Layer 0: (nb·4, 129·3) · W0ᵀ -> (nb·4, 128). */
    unfold(mag, nb, VAD_T0, VAD_NBIN, 1, VAD_T0, col);
    kern_sgemm(1, nb * VAD_T0, 128, VAD_NBIN * VAD_KERNEL, 1.0f, col, VAD_NBIN * VAD_KERNEL, v->conv_w[0],
               VAD_NBIN * VAD_KERNEL, 0.0f, y0, 128);
    bias_relu(y0, nb * VAD_T0, 128, v->conv_b[0], 1);
    /* Layer 1, stride 2: (nb·2, 128·3) · W1ᵀ -> (nb·2, 64). */
    unfold(y0, nb, VAD_T0, 128, 2, 2, col);
    kern_sgemm(1, nb * 2, 64, 128 * VAD_KERNEL, 1.0f, col, 128 * VAD_KERNEL, v->conv_w[1], 128 * VAD_KERNEL,
               0.0f, y1, 64);
    bias_relu(y1, nb * 2, 64, v->conv_b[1], 1);
    /* Layer 2, stride 2: (nb, 64·3) · W2ᵀ -> (nb, 64). */
    unfold(y1, nb, 2, 64, 2, 1, col);
    kern_sgemm(1, nb, 64, 64 * VAD_KERNEL, 1.0f, col, 64 * VAD_KERNEL, v->conv_w[2], 64 * VAD_KERNEL, 0.0f, y2, 64);
    bias_relu(y2, nb, 64, v->conv_b[2], 1);
    /* Layer 3 on one frame: the middle tap, (nb, 64) · W3midᵀ -> (nb, 128). */
    kern_sgemm(1, nb, VAD_HIDDEN, 64, 1.0f, y2, 64, v->conv3_mid, 64, 0.0f, x, VAD_HIDDEN);
    bias_relu(x, nb, VAD_HIDDEN, v->conv_b[3], 0);
    /* The LSTM's input projection: (nb, 128) · W_ihᵀ + b -> (nb, 512). */
    float *g = a->gates + b0 * N_GATES;
    kern_sgemm(1, nb, N_GATES, VAD_HIDDEN, 1.0f, x, VAD_HIDDEN, v->w_ih, VAD_HIDDEN, 0.0f, g, N_GATES);
    for (int f = 0; f < nb; f++)
        for (int j = 0; j < N_GATES; j++) g[(size_t)f * N_GATES + j] += v->b_gates[j];
}

int vad_run(const struct hark_vad *v, struct kern_pool *pool, const float *pcm, size_t n_samples,
            float *probs, size_t n_frames, int (*cancel)(void *), void *cancel_user)
{
    size_t cap = n_frames < VAD_SUPER ? (n_frames ? n_frames : 1) : VAD_SUPER;
    float *gates = aligned_alloc(64, cap * N_GATES * sizeof(float));
    if (!gates) return HARK_ENOMEM;
    float h[VAD_HIDDEN] __attribute__((aligned(64))) = {0};
    float c[VAD_HIDDEN] __attribute__((aligned(64))) = {0};
    float z[N_GATES] __attribute__((aligned(64)));
    float out[VAD_HIDDEN];
    struct batch_args a = {v, pool, pcm, n_samples, 0, 0, gates};
    for (size_t f0 = 0; f0 < n_frames; f0 += cap) {
        if (cancel && cancel(cancel_user)) {
            free(gates);
            return HARK_ECANCELED;
        }
        a.f0 = f0;
        a.n_frames = n_frames - f0 < cap ? n_frames - f0 : cap;
        kern_pool_run(pool, batch_task, &a, (int)((a.n_frames + VAD_BATCH - 1) / VAD_BATCH));
        for (size_t f = 0; f < a.n_frames; f++) {
            kern_lstm_step(VAD_HIDDEN, v->w_hh_t, gates + f * N_GATES, h, c, z);
            /* ReLU, then the final 1x1 convolution on f16-rounded input. */
            for (int i = 0; i < VAD_HIDDEN; i++) out[i] = h[i] > 0.0f ? h[i] : 0.0f;
            kern_round_f16(out, VAD_HIDDEN);
            float y = 0.0f;
            for (int i = 0; i < VAD_HIDDEN; i++) y += v->w_out[i] * out[i];
            y += v->b_out;
            probs[f0 + f] = 1.0f / (1.0f + expf(-y));
        }
    }
    free(gates);
    return 0;
}

/* ---------------------------------------------------------------- public */

int hark_vad_probs(const hark_vad *vad, const float *pcm, size_t n_samples, int n_threads, float **probs,
                   size_t *n_probs, char *err, size_t errlen)
{
    if (probs) *probs = NULL;
    if (n_probs) *n_probs = 0;
    if (!vad || !probs || !n_probs || (!pcm && n_samples) || n_threads < 1) {
        cur_seterr(err, errlen, "hark_vad_probs", "missing model, audio or output, or fewer than 1 thread");
        return HARK_EINVAL;
    }
    for (size_t i = 0; i < n_samples; i++) {
        if (!isfinite(pcm[i])) {
            cur_seterr(err, errlen, "hark_vad_probs", "audio sample %zu is not a finite number", i);
            return HARK_EAUDIO;
        }
    }
    size_t n = (n_samples + VAD_WINDOW - 1) / VAD_WINDOW;
    float *p = malloc((n ? n : 1) * sizeof(float));
    struct kern_pool *pool = p ? kern_pool_new(n_threads) : NULL;
    if (!p || !pool) {
        free(p);
        cur_seterr(err, errlen, "hark_vad_probs", "out of memory");
        return HARK_ENOMEM;
    }
    int rc = vad_run(vad, pool, pcm, n_samples, p, n, NULL, NULL);
    kern_pool_free(pool);
    if (rc) {
        free(p);
        cur_seterr(err, errlen, "hark_vad_probs", "%s", hark_strerror(rc));
        return rc;
    }
    *probs = p;
    *n_probs = n;
    return 0;
}
