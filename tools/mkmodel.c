/*
 * mkmodel: writes a Whisper model in whisper.cpp's ggml file format with the
 * real shapes of a released model and deterministic random weights.
 *
 * Trained weights are not available to hark's tests and benchmarks, but the
 * engine's speed and its loader depend only on shapes and tensor types. This
 * tool therefore writes files that are, record for record, laid out like the
 * released `ggml-<preset>.bin` files: the same header, the same tensor names,
 * order (PyTorch state_dict order), shapes and per-ftype tensor types, and
 * the mel filters and vocabulary copied byte for byte from an existing model
 * with the same n_mels and n_vocab (`--from`; by default one of the shared
 * rt-* models). A generated file has the released file's byte size, which
 * `--layout-only` prints without writing anything.
 *
 * Weights follow the scales of ../shared/reference/README.md section 5 so the
 * model emits varied tokens: linear weights N(0, 1/sqrt(fan_in)) with query
 * and key doubled, conv weights N(0, 2/sqrt(3 in_ch)), biases N(0, 0.02),
 * LayerNorm gains 1 + N(0, 0.05) except the final decoder LayerNorm gain
 * N(0, 1), the encoder positional embedding Whisper's sinusoids, and the
 * token and decoder positional embeddings N(0, 10/sqrt(S)) so that logits
 * have a standard deviation near 10.
 *
 * Every tensor draws from its own generator seeded by (seed, name), so a
 * tensor's values do not depend on the writing order or on the ftype. A
 * tensor that is f16 or quantized in some ftype has its values rounded to
 * f16 in every ftype: the f32 file stores exactly the f16 file's values, and
 * the quantized files quantize those f16 values, as whisper-quantize does
 * from an f16 source. Quantization is round-to-nearest per block of 32, as
 * ggml's reference quantizers do.
 *
 * Speed: values come from splitmix64 and an Irwin-Hall approximation of the
 * normal distribution (the sum of four 16-bit uniforms; tails end at 3.46
 * standard deviations, which is harmless for random weights), and records
 * are streamed to disk one chunk of rows at a time, so a 3 GB large-v3 file
 * needs a few megabytes of memory and is written at disk speed.
 *
 * The file is written to OUT.tmp and renamed to OUT when complete, so an
 * interrupted run never leaves a truncated model under the final name.
 *
 * Define MKMODEL_NO_MAIN to compile this file into a test program, which
 * then calls mkmodel_generate() or mkmodel_main() itself.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define MK_MAGIC 0x67676d6cu
#define MK_QK 32
#define MK_CHUNK_VALUES (1 << 20) /* values generated per chunk of whole rows */

/* ggml tensor type ids as stored in a tensor record. */
enum { MK_F32 = 0, MK_F16 = 1, MK_Q4_0 = 2, MK_Q4_1 = 3, MK_Q5_0 = 6, MK_Q5_1 = 7, MK_Q8_0 = 8 };

struct mk_preset {
    const char *name;
    int n_vocab, n_mels, n_state, n_head, n_audio_layer, n_text_layer;
};

static const struct mk_preset mk_presets[] = {
    {"tiny.en", 51864, 80, 384, 6, 4, 4},
    {"tiny", 51865, 80, 384, 6, 4, 4},
    {"base.en", 51864, 80, 512, 8, 6, 6},
    {"base", 51865, 80, 512, 8, 6, 6},
    {"small.en", 51864, 80, 768, 12, 12, 12},
    {"small", 51865, 80, 768, 12, 12, 12},
    {"medium.en", 51864, 80, 1024, 16, 24, 24},
    {"medium", 51865, 80, 1024, 16, 24, 24},
    {"large-v1", 51865, 80, 1280, 20, 32, 32},
    {"large-v2", 51865, 80, 1280, 20, 32, 32},
    {"large-v3", 51866, 128, 1280, 20, 32, 32},
    {"large-v3-turbo", 51866, 128, 1280, 20, 32, 4},
};

/* File ftype names: header value (with quantization version 2 for the
 * quantized ones), the type of matrices, and the type of conv weights. */
struct mk_ftype {
    const char *name;
    int header;
    int matrix_type;
    int conv_type;
};

static const struct mk_ftype mk_ftypes[] = {
    {"f32", 0, MK_F32, MK_F32},       {"f16", 1, MK_F16, MK_F16},
    {"q4_0", 2002, MK_Q4_0, MK_F16},  {"q4_1", 2003, MK_Q4_1, MK_F16},
    {"q8_0", 2007, MK_Q8_0, MK_F16},  {"q5_0", 2008, MK_Q5_0, MK_F16},
    {"q5_1", 2009, MK_Q5_1, MK_F16},
};

/* How a tensor's values are drawn. */
enum mk_dist {
    MK_NORMAL,     /* mean + std * N(0, 1) */
    MK_SINUSOIDS,  /* Whisper's encoder positional embedding */
};

/* Which type a tensor gets: always f32 (vectors, biases, positional
 * embeddings), the conv weight type, or the matrix type of the ftype. */
enum mk_class { MK_CLASS_F32, MK_CLASS_CONV, MK_CLASS_MATRIX };

struct mk_writer {
    FILE *f;               /* NULL in layout-only mode */
    uint64_t seed;
    const struct mk_ftype *ft;
    uint64_t n_bytes;      /* bytes written (or counted) so far */
    int n_tensors;
    int n_by_type[9];      /* tensors per ggml type id */
    float *vals;           /* (MK_CHUNK_VALUES) scratch values */
    uint8_t *bytes;        /* (MK_CHUNK_VALUES * 4) encoded scratch */
    char err[256];
};

/* ------------------------------------------------------------ numbers */

static uint64_t mk_splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* An approximately standard normal value: the centred sum of four 16-bit
 * uniforms divided by its standard deviation, sqrt(4 (65536^2 - 1) / 12). */
static float mk_normal(uint64_t *s)
{
    uint64_t r = mk_splitmix(s);
    int32_t sum = (int32_t)(r & 0xffff) + (int32_t)((r >> 16) & 0xffff) +
                  (int32_t)((r >> 32) & 0xffff) + (int32_t)(r >> 48);
    return (float)(sum - 131070) * (1.0f / 37837.23f);
}

static uint64_t mk_name_seed(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    uint64_t s = seed ^ (h * 0x9e3779b97f4a7c15ull);
    mk_splitmix(&s);
    return s;
}

/* ------------------------------------------------------- quantization */

static void mk_put_f16(uint8_t *p, float v)
{
    uint16_t h = kern_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static void mk_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* The value of largest magnitude, with its sign (ties keep the first). */
static float mk_signed_absmax(const float *x)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < MK_QK; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void mk_minmax(const float *x, float *min, float *max)
{
    *min = x[0];
    *max = x[0];
    for (int j = 1; j < MK_QK; j++) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}

/* q8_0 {f16 d; i8 qs[32]}: x = d q, d = max|x| / 127. */
static void mk_q8_0(const float *x, uint8_t *out)
{
    float amax = fabsf(mk_signed_absmax(x));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    mk_put_f16(out, d);
    for (int j = 0; j < MK_QK; j++) out[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

/* q4_0 {f16 d; u8 qs[16]}: x = d (q - 8), d = signed max / -8, so the
 * largest magnitude maps to q = 0 and the range is used asymmetrically. */
static void mk_q4_0(const float *x, uint8_t *out)
{
    float d = mk_signed_absmax(x) / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    mk_put_f16(out, d);
    for (int j = 0; j < 16; j++) {
        int q0 = (int)(int8_t)(x[j] * id + 8.5f), q1 = (int)(int8_t)(x[j + 16] * id + 8.5f);
        q0 = q0 > 15 ? 15 : q0;
        q1 = q1 > 15 ? 15 : q1;
        out[2 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

/* q4_1 {f16 d, m; u8 qs[16]}: x = d q + m, d = (max - min) / 15, m = min. */
static void mk_q4_1(const float *x, uint8_t *out)
{
    float min, max;
    mk_minmax(x, &min, &max);
    float d = (max - min) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    mk_put_f16(out, d);
    mk_put_f16(out + 2, min);
    for (int j = 0; j < 16; j++) {
        int q0 = (int)(int8_t)((x[j] - min) * id + 0.5f), q1 = (int)(int8_t)((x[j + 16] - min) * id + 0.5f);
        q0 = q0 > 15 ? 15 : q0;
        q1 = q1 > 15 ? 15 : q1;
        out[4 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

/* q5_0 {f16 d; u8 qh[4]; u8 qs[16]}: x = d (q - 16), d = signed max / -16;
 * bit j of qh is the fifth bit of value j. */
static void mk_q5_0(const float *x, uint8_t *out)
{
    float d = mk_signed_absmax(x) / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    mk_put_f16(out, d);
    for (int j = 0; j < 16; j++) {
        int q0 = (int)(int8_t)(x[j] * id + 16.5f), q1 = (int)(int8_t)(x[j + 16] * id + 16.5f);
        q0 = q0 > 31 ? 31 : q0;
        q1 = q1 > 31 ? 31 : q1;
        out[6 + j] = (uint8_t)((q0 & 0xf) | ((q1 & 0xf) << 4));
        qh |= (uint32_t)((q0 >> 4) & 1) << j;
        qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
    }
    mk_put_u32(out + 2, qh);
}

/* q5_1 {f16 d, m; u8 qh[4]; u8 qs[16]}: x = d q + m, d = (max - min) / 31. */
static void mk_q5_1(const float *x, uint8_t *out)
{
    float min, max;
    mk_minmax(x, &min, &max);
    float d = (max - min) / 31.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    mk_put_f16(out, d);
    mk_put_f16(out + 2, min);
    for (int j = 0; j < 16; j++) {
        int q0 = (int)(uint8_t)((x[j] - min) * id + 0.5f), q1 = (int)(uint8_t)((x[j + 16] - min) * id + 0.5f);
        q0 = q0 > 31 ? 31 : q0;
        q1 = q1 > 31 ? 31 : q1;
        out[8 + j] = (uint8_t)((q0 & 0xf) | ((q1 & 0xf) << 4));
        qh |= (uint32_t)((q0 >> 4) & 1) << j;
        qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
    }
    mk_put_u32(out + 4, qh);
}

/* Bytes of n values of a type (n a multiple of 32 for quantized types). */
static uint64_t mk_type_bytes(int type, uint64_t n)
{
    switch (type) {
    case MK_F32: return 4 * n;
    case MK_F16: return 2 * n;
    case MK_Q4_0: return n / MK_QK * 18;
    case MK_Q4_1: return n / MK_QK * 20;
    case MK_Q5_0: return n / MK_QK * 22;
    case MK_Q5_1: return n / MK_QK * 24;
    case MK_Q8_0: return n / MK_QK * 34;
    }
    return 0;
}

/* Encodes n values (n a multiple of 32 for quantized types) into out. */
static void mk_encode(int type, const float *x, uint64_t n, uint8_t *out)
{
    uint64_t i;
    switch (type) {
    case MK_F32: memcpy(out, x, 4 * n); return; /* little-endian host */
    case MK_F16:
        for (i = 0; i < n; i++) mk_put_f16(out + 2 * i, x[i]);
        return;
    case MK_Q8_0:
        for (i = 0; i < n; i += MK_QK) mk_q8_0(x + i, out + i / MK_QK * 34);
        return;
    case MK_Q4_0:
        for (i = 0; i < n; i += MK_QK) mk_q4_0(x + i, out + i / MK_QK * 18);
        return;
    case MK_Q4_1:
        for (i = 0; i < n; i += MK_QK) mk_q4_1(x + i, out + i / MK_QK * 20);
        return;
    case MK_Q5_0:
        for (i = 0; i < n; i += MK_QK) mk_q5_0(x + i, out + i / MK_QK * 22);
        return;
    case MK_Q5_1:
        for (i = 0; i < n; i += MK_QK) mk_q5_1(x + i, out + i / MK_QK * 24);
        return;
    }
}

/* ------------------------------------------------------------- records */

static int mk_write(struct mk_writer *w, const void *p, size_t n)
{
    w->n_bytes += n;
    if (!w->f || n == 0) return 0;
    if (fwrite(p, 1, n, w->f) != n) {
        snprintf(w->err, sizeof w->err, "write failed: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int mk_write_i32(struct mk_writer *w, int32_t v)
{
    uint8_t b[4];
    mk_put_u32(b, (uint32_t)v);
    return mk_write(w, b, 4);
}

/* Writes one tensor record. ne is in ggml order (ne[0] fastest, the
 * reversed PyTorch shape); the values are mean + std * N(0, 1), or the
 * encoder sinusoids (ne = [S, n_ctx]). */
static int mk_tensor(struct mk_writer *w, const char *name, int n_dims, const int32_t *ne,
                     enum mk_class cls, enum mk_dist dist, float mean, float std)
{
    int type = cls == MK_CLASS_F32 ? MK_F32 : cls == MK_CLASS_CONV ? w->ft->conv_type : w->ft->matrix_type;
    /* f16 or quantized in an f16 file: f16 values everywhere (mk_encode rounds
     * an f16 tensor itself). */
    int round_f16 = cls != MK_CLASS_F32 && type != MK_F16;
    uint64_t n = 1, row = (uint64_t)ne[0], done;
    uint64_t rng = mk_name_seed(w->seed, name);

    for (int i = 0; i < n_dims; i++) n *= (uint64_t)ne[i];
    if (type >= MK_Q4_0 && row % MK_QK) {
        snprintf(w->err, sizeof w->err, "tensor '%.100s': row of %llu values is not a whole number of blocks",
                 name, (unsigned long long)row);
        return -1;
    }
    if (mk_write_i32(w, n_dims) || mk_write_i32(w, (int32_t)strlen(name)) || mk_write_i32(w, type)) return -1;
    for (int i = 0; i < n_dims; i++)
        if (mk_write_i32(w, ne[i])) return -1;
    if (mk_write(w, name, strlen(name))) return -1;
    w->n_tensors++;
    w->n_by_type[type]++;
    if (!w->f) {
        w->n_bytes += mk_type_bytes(type, n);
        return 0;
    }

    uint64_t rows_per_chunk = row >= MK_CHUNK_VALUES ? 1 : MK_CHUNK_VALUES / row;
    for (done = 0; done < n; done += rows_per_chunk * row) {
        uint64_t m = n - done < rows_per_chunk * row ? n - done : rows_per_chunk * row;
        float *v = w->vals;
        if (dist == MK_SINUSOIDS) {
            /* Whisper's sinusoids: row t holds sin(t f_i) for i < S/2, then
             * cos(t f_i), with f_i = exp(-i log(10000) / (S/2 - 1)). */
            uint64_t half = row / 2;
            double inc = log(10000.0) / (double)(half - 1);
            for (uint64_t k = 0; k < m; k++) {
                uint64_t t = (done + k) / row, c = (done + k) % row;
                double f = exp(-inc * (double)(c < half ? c : c - half));
                v[k] = (float)(c < half ? sin((double)t * f) : cos((double)t * f));
            }
        } else {
            for (uint64_t k = 0; k < m; k++) v[k] = mean + std * mk_normal(&rng);
        }
        if (round_f16)
            for (uint64_t k = 0; k < m; k++) v[k] = kern_f16_to_f32(kern_f32_to_f16(v[k]));
        mk_encode(type, v, m, w->bytes);
        if (mk_write(w, w->bytes, (size_t)mk_type_bytes(type, m))) return -1;
    }
    return 0;
}

/* A 1-D tensor of n values, always f32. */
static int mk_vec(struct mk_writer *w, const char *name, int32_t n, float mean, float std)
{
    return mk_tensor(w, name, 1, &n, MK_CLASS_F32, MK_NORMAL, mean, std);
}

/* A linear weight of PyTorch shape (n_out, n_in): ne = [n_in, n_out],
 * std gain / sqrt(n_in). */
static int mk_linear(struct mk_writer *w, const char *name, int32_t n_in, int32_t n_out, float gain)
{
    int32_t ne[2] = {n_in, n_out};
    return mk_tensor(w, name, 2, ne, MK_CLASS_MATRIX, MK_NORMAL, 0.0f, gain / sqrtf((float)n_in));
}

#define MK_BIAS_STD 0.02f
#define MK_LN_STD 0.05f
#define MK_QK_GAIN 2.0f
#define MK_CONV_GAIN 2.0f
#define MK_LOGIT_STD 10.0f

/* The attention tensors of one block under prefix ("encoder.blocks.0.attn"),
 * then its LayerNorm (ln: "encoder.blocks.0.attn_ln"). */
static int mk_attention(struct mk_writer *w, const char *prefix, const char *ln, int32_t S)
{
    char name[128];
    static const char *const parts[] = {"query", "key", "value", "out"};
    for (int p = 0; p < 4; p++) {
        snprintf(name, sizeof name, "%s.%s.weight", prefix, parts[p]);
        if (mk_linear(w, name, S, S, p < 2 ? MK_QK_GAIN : 1.0f)) return -1;
        if (p == 1) continue; /* key projections have no bias */
        snprintf(name, sizeof name, "%s.%s.bias", prefix, parts[p]);
        if (mk_vec(w, name, S, 0.0f, MK_BIAS_STD)) return -1;
    }
    snprintf(name, sizeof name, "%s.weight", ln);
    if (mk_vec(w, name, S, 1.0f, MK_LN_STD)) return -1;
    snprintf(name, sizeof name, "%s.bias", ln);
    return mk_vec(w, name, S, 0.0f, MK_BIAS_STD);
}

/* mlp.0 (4S, S), mlp.2 (S, 4S) and mlp_ln of one block under prefix
 * ("decoder.blocks.3"). */
static int mk_mlp(struct mk_writer *w, const char *prefix, int32_t S)
{
    char name[128];
    snprintf(name, sizeof name, "%s.mlp.0.weight", prefix);
    if (mk_linear(w, name, S, 4 * S, 1.0f)) return -1;
    snprintf(name, sizeof name, "%s.mlp.0.bias", prefix);
    if (mk_vec(w, name, 4 * S, 0.0f, MK_BIAS_STD)) return -1;
    snprintf(name, sizeof name, "%s.mlp.2.weight", prefix);
    if (mk_linear(w, name, 4 * S, S, 1.0f)) return -1;
    snprintf(name, sizeof name, "%s.mlp.2.bias", prefix);
    if (mk_vec(w, name, S, 0.0f, MK_BIAS_STD)) return -1;
    snprintf(name, sizeof name, "%s.mlp_ln.weight", prefix);
    if (mk_vec(w, name, S, 1.0f, MK_LN_STD)) return -1;
    snprintf(name, sizeof name, "%s.mlp_ln.bias", prefix);
    return mk_vec(w, name, S, 0.0f, MK_BIAS_STD);
}

struct mk_shape {
    int32_t n_vocab, n_audio_ctx, n_state, n_head, n_audio_layer, n_text_ctx, n_text_layer, n_mels;
};

/* Every tensor record, in PyTorch state_dict order. */
static int mk_tensors(struct mk_writer *w, const struct mk_shape *sh)
{
    int32_t S = sh->n_state;
    char prefix[96], attn[128], ln[128];
    int32_t ne[3];

    ne[0] = S;
    ne[1] = sh->n_audio_ctx;
    if (mk_tensor(w, "encoder.positional_embedding", 2, ne, MK_CLASS_F32, MK_SINUSOIDS, 0.0f, 0.0f)) return -1;
    ne[0] = 3; /* conv1 (S, n_mels, 3) */
    ne[1] = sh->n_mels;
    ne[2] = S;
    if (mk_tensor(w, "encoder.conv1.weight", 3, ne, MK_CLASS_CONV, MK_NORMAL, 0.0f,
                  MK_CONV_GAIN / sqrtf(3.0f * (float)sh->n_mels)))
        return -1;
    ne[0] = 1; /* conv biases: PyTorch (S, 1) */
    ne[1] = S;
    if (mk_tensor(w, "encoder.conv1.bias", 2, ne, MK_CLASS_F32, MK_NORMAL, 0.0f, MK_BIAS_STD)) return -1;
    ne[0] = 3; /* conv2 (S, S, 3) */
    ne[1] = S;
    ne[2] = S;
    if (mk_tensor(w, "encoder.conv2.weight", 3, ne, MK_CLASS_CONV, MK_NORMAL, 0.0f,
                  MK_CONV_GAIN / sqrtf(3.0f * (float)S)))
        return -1;
    ne[0] = 1;
    ne[1] = S;
    if (mk_tensor(w, "encoder.conv2.bias", 2, ne, MK_CLASS_F32, MK_NORMAL, 0.0f, MK_BIAS_STD)) return -1;
    for (int l = 0; l < sh->n_audio_layer; l++) {
        snprintf(prefix, sizeof prefix, "encoder.blocks.%d", l);
        snprintf(attn, sizeof attn, "%s.attn", prefix);
        snprintf(ln, sizeof ln, "%s.attn_ln", prefix);
        if (mk_attention(w, attn, ln, S) || mk_mlp(w, prefix, S)) return -1;
    }
    if (mk_vec(w, "encoder.ln_post.weight", S, 1.0f, MK_LN_STD) ||
        mk_vec(w, "encoder.ln_post.bias", S, 0.0f, MK_BIAS_STD))
        return -1;

    float emb_std = MK_LOGIT_STD / sqrtf((float)S);
    ne[0] = S;
    ne[1] = sh->n_text_ctx;
    if (mk_tensor(w, "decoder.positional_embedding", 2, ne, MK_CLASS_F32, MK_NORMAL, 0.0f, emb_std)) return -1;
    ne[1] = sh->n_vocab;
    if (mk_tensor(w, "decoder.token_embedding.weight", 2, ne, MK_CLASS_MATRIX, MK_NORMAL, 0.0f, emb_std))
        return -1;
    for (int l = 0; l < sh->n_text_layer; l++) {
        snprintf(prefix, sizeof prefix, "decoder.blocks.%d", l);
        snprintf(attn, sizeof attn, "%s.attn", prefix);
        snprintf(ln, sizeof ln, "%s.attn_ln", prefix);
        if (mk_attention(w, attn, ln, S)) return -1;
        snprintf(attn, sizeof attn, "%s.cross_attn", prefix);
        snprintf(ln, sizeof ln, "%s.cross_attn_ln", prefix);
        if (mk_attention(w, attn, ln, S) || mk_mlp(w, prefix, S)) return -1;
    }
    /* A zero-mean final gain decorrelates the tied input and output
     * embeddings; otherwise the current token keeps winning the argmax. */
    if (mk_vec(w, "decoder.ln.weight", S, 0.0f, 1.0f) || mk_vec(w, "decoder.ln.bias", S, 0.0f, MK_BIAS_STD))
        return -1;
    return 0;
}

/* ----------------------------------------------- mel filters and vocab */

static int32_t mk_get_i32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

/* Reads the mel filter and vocabulary sections of an existing model (the
 * bytes after its 48-byte header up to its first tensor record) into a
 * malloc'ed buffer, checking that the model has the wanted n_mels and
 * n_vocab. Returns 0 or -1 with a reason in err. */
static int mk_read_sections(const char *path, int32_t n_mels, int32_t n_vocab, uint8_t **out, size_t *n_out,
                            char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL, hdr[48];
    size_t cap = 0, len = 0;
    int32_t n_tokens;

    *out = NULL;
    if (!f) {
        snprintf(err, errlen, "%.300s: %s", path, strerror(errno));
        return -1;
    }
    if (fread(hdr, 1, sizeof hdr, f) != sizeof hdr || (uint32_t)mk_get_i32(hdr) != MK_MAGIC) {
        snprintf(err, errlen, "%.300s: not a ggml Whisper model", path);
        goto fail;
    }
    if (mk_get_i32(hdr + 4) != n_vocab || mk_get_i32(hdr + 40) != n_mels) {
        snprintf(err, errlen, "%.300s: has n_vocab %d and n_mels %d, need %d and %d", path, mk_get_i32(hdr + 4),
                 mk_get_i32(hdr + 40), n_vocab, n_mels);
        goto fail;
    }
    /* n_mel, n_fft, filters[n_mel][n_fft], n_tokens: read in one go. */
    cap = 1 << 20;
    buf = malloc(cap);
    if (!buf || fread(buf, 1, 8, f) != 8) goto short_read;
    if (mk_get_i32(buf) != n_mels || mk_get_i32(buf + 4) <= 0 || mk_get_i32(buf + 4) > 4096) {
        snprintf(err, errlen, "%.300s: bad mel filter section", path);
        goto fail;
    }
    len = 8 + (size_t)n_mels * (size_t)mk_get_i32(buf + 4) * 4;
    if (len + 4 > cap || fread(buf + 8, 1, len - 8 + 4, f) != len - 8 + 4) goto short_read;
    n_tokens = mk_get_i32(buf + len);
    len += 4;
    if (n_tokens < 0 || n_tokens > n_vocab) {
        snprintf(err, errlen, "%.300s: bad vocabulary count %d", path, n_tokens);
        goto fail;
    }
    for (int32_t i = 0; i < n_tokens; i++) {
        if (len + 4 > cap || fread(buf + len, 1, 4, f) != 4) goto short_read;
        uint32_t tl = (uint32_t)mk_get_i32(buf + len);
        len += 4;
        if (tl > 4096) {
            snprintf(err, errlen, "%.300s: token %d has length %u", path, i, tl);
            goto fail;
        }
        if (len + tl + 4 > cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) goto short_read;
            buf = nb;
            cap *= 2;
        }
        if (fread(buf + len, 1, tl, f) != tl) goto short_read;
        len += tl;
    }
    fclose(f);
    *out = buf;
    *n_out = len;
    return 0;
short_read:
    snprintf(err, errlen, "%.300s: truncated or unreadable mel/vocabulary section", path);
fail:
    free(buf);
    fclose(f);
    return -1;
}

/* The shared model whose mel filters and vocabulary fit (n_mels, n_vocab),
 * in $HARK_TEST_MODELS, $HARK_SHARED/models or ../shared/models. */
static int mk_default_source(int32_t n_mels, int32_t n_vocab, char *path, size_t len)
{
    const char *file = NULL, *dir = getenv("HARK_TEST_MODELS"), *root = getenv("HARK_SHARED");
    if (n_mels == 80 && n_vocab == 51864) file = "rt-tiny.en-f16.bin";
    else if (n_mels == 80 && n_vocab == 51865) file = "rt-mini-f16.bin";
    else if (n_mels == 128 && n_vocab == 51866) file = "rt-v3-f16.bin";
    if (!file) return -1;
    if (dir && *dir) snprintf(path, len, "%s/%s", dir, file);
    else snprintf(path, len, "%s/models/%s", root && *root ? root : "../shared", file);
    return 0;
}

/* ------------------------------------------------------------- driver */

static void mk_usage(FILE *out)
{
    fprintf(out,
            "usage: mkmodel --preset NAME [--ftype f32|f16|q8_0|q5_0|q5_1|q4_0|q4_1] [--seed N]\n"
            "               [--from MODEL] [--n-state S --n-head H --n-audio-layer N --n-text-layer N]\n"
            "               (-o OUT | --layout-only)\n"
            "Writes a ggml Whisper model with the preset's shapes and deterministic random\n"
            "weights; mel filters and vocabulary are copied from MODEL (default: the shared\n"
            "rt-* model with the same n_mels and n_vocab). --layout-only prints the size.\n"
            "presets:");
    for (size_t i = 0; i < sizeof mk_presets / sizeof mk_presets[0]; i++) fprintf(out, " %s", mk_presets[i].name);
    fprintf(out, "\n");
}

static int mk_int_arg(const char *s, long lo, long hi, long *v)
{
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    return !errno && end != s && !*end && *v >= lo && *v <= hi ? 0 : -1;
}

/* What to generate. Shape overrides of 0 (state, head) or -1 (layers) keep
 * the preset's value. */
struct mk_args {
    const char *preset;
    const char *ftype;     /* NULL: f16 */
    uint64_t seed;
    const char *from;      /* NULL: the default shared model */
    const char *out;       /* ignored when layout_only */
    int layout_only;
    int n_state, n_head, n_audio_layer, n_text_layer;
};

struct mk_report {
    uint64_t n_bytes;
    int n_tensors;
    int n_by_type[9];      /* tensors per ggml type id */
};

static void mk_args_init(struct mk_args *a)
{
    memset(a, 0, sizeof *a);
    a->seed = 1;
    a->n_audio_layer = -1;
    a->n_text_layer = -1;
}

/* Writes the model a describes to a->out (through a->out + ".tmp"), or
 * with layout_only only counts its bytes. Returns 0, or -1 with a one-line
 * reason in err; on failure no file is left under either name. */
static int mkmodel_generate(const struct mk_args *a, struct mk_report *rep, char *err, size_t errlen)
{
    const struct mk_preset *pre = NULL;
    const struct mk_ftype *ft = a->ftype ? NULL : &mk_ftypes[1];
    char src[4096], tmp[4200];
    uint8_t *sections = NULL;
    size_t n_sections = 0;
    struct mk_writer w;
    struct mk_shape sh;
    int rc = -1;

    memset(&w, 0, sizeof w);
    memset(rep, 0, sizeof *rep);
    for (size_t k = 0; a->preset && k < sizeof mk_presets / sizeof mk_presets[0]; k++)
        if (!strcmp(a->preset, mk_presets[k].name)) pre = &mk_presets[k];
    for (size_t k = 0; a->ftype && k < sizeof mk_ftypes / sizeof mk_ftypes[0]; k++)
        if (!strcmp(a->ftype, mk_ftypes[k].name)) ft = &mk_ftypes[k];
    if (!pre || !ft) {
        snprintf(err, errlen, "unknown %s '%.100s'", pre ? "ftype" : "preset", pre ? a->ftype : a->preset);
        return -1;
    }
    if (!a->layout_only && !a->out) {
        snprintf(err, errlen, "no output file");
        return -1;
    }
    sh.n_vocab = pre->n_vocab;
    sh.n_mels = pre->n_mels;
    sh.n_audio_ctx = 1500;
    sh.n_text_ctx = 448;
    sh.n_state = a->n_state > 0 ? a->n_state : pre->n_state;
    sh.n_head = a->n_head > 0 ? a->n_head : pre->n_head;
    sh.n_audio_layer = a->n_audio_layer >= 0 ? a->n_audio_layer : pre->n_audio_layer;
    sh.n_text_layer = a->n_text_layer >= 0 ? a->n_text_layer : pre->n_text_layer;
    if (sh.n_state % 32 || sh.n_state % sh.n_head) {
        snprintf(err, errlen, "n_state %d must be a multiple of 32 and of n_head %d", sh.n_state, sh.n_head);
        return -1;
    }
    const char *from = a->from;
    if (!from) {
        if (mk_default_source(sh.n_mels, sh.n_vocab, src, sizeof src)) {
            snprintf(err, errlen, "no default --from model for n_mels %d, n_vocab %d", sh.n_mels, sh.n_vocab);
            return -1;
        }
        from = src;
    }
    if (mk_read_sections(from, sh.n_mels, sh.n_vocab, &sections, &n_sections, err, errlen)) return -1;

    w.seed = a->seed;
    w.ft = ft;
    if (!a->layout_only) {
        snprintf(tmp, sizeof tmp, "%.4000s.tmp", a->out);
        w.vals = malloc(sizeof(float) * MK_CHUNK_VALUES);
        w.bytes = malloc(4 * (size_t)MK_CHUNK_VALUES);
        if (!w.vals || !w.bytes) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        w.f = fopen(tmp, "wb");
        if (!w.f) {
            snprintf(err, errlen, "%.300s: %s", tmp, strerror(errno));
            goto fail;
        }
        setvbuf(w.f, NULL, _IOFBF, 1 << 22);
    }
    {
        int32_t hp[12] = {(int32_t)MK_MAGIC, sh.n_vocab, sh.n_audio_ctx, sh.n_state, sh.n_head,
                          sh.n_audio_layer, sh.n_text_ctx, sh.n_state, sh.n_head, sh.n_text_layer,
                          sh.n_mels, ft->header};
        for (int i = 0; i < 12; i++)
            if (mk_write_i32(&w, hp[i])) goto write_failed;
    }
    if (mk_write(&w, sections, n_sections) || mk_tensors(&w, &sh)) goto write_failed;
    if (w.f) {
        FILE *f = w.f;
        w.f = NULL;
        if (fclose(f) != 0) {
            snprintf(w.err, sizeof w.err, "close failed: %s", strerror(errno));
            goto write_failed;
        }
        if (rename(tmp, a->out) != 0) {
            snprintf(w.err, sizeof w.err, "rename to %.180s failed: %s", a->out, strerror(errno));
            goto write_failed;
        }
    }
    rep->n_bytes = w.n_bytes;
    rep->n_tensors = w.n_tensors;
    memcpy(rep->n_by_type, w.n_by_type, sizeof rep->n_by_type);
    rc = 0;
    goto done;
write_failed:
    snprintf(err, errlen, "%.200s: %.250s", a->layout_only ? "layout" : tmp, w.err);
fail:
    if (w.f) fclose(w.f);
    if (!a->layout_only) remove(tmp);
done:
    free(w.vals);
    free(w.bytes);
    free(sections);
    return rc;
}

/* The tool's entry point: parses argv, writes (or measures) the model.
 * Returns 0 on success, 1 on bad usage or failure (with a message on
 * stderr). */
int mkmodel_main(int argc, char **argv)
{
    struct mk_args a;
    struct mk_report rep;
    int quiet = 0;
    long v;
    char err[1024];

    mk_args_init(&a);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            mk_usage(stdout);
            return 0;
        } else if (!strcmp(o, "--layout-only")) {
            a.layout_only = 1;
            continue;
        } else if (!strcmp(o, "-q") || !strcmp(o, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (!val) {
            fprintf(stderr, "mkmodel: %s needs a value\n", o);
            return 1;
        }
        i++;
        if (!strcmp(o, "--preset")) {
            a.preset = val;
        } else if (!strcmp(o, "--ftype")) {
            a.ftype = val;
        } else if (!strcmp(o, "--seed") && !mk_int_arg(val, 0, 0x7fffffffL, &v)) {
            a.seed = (uint64_t)v;
        } else if (!strcmp(o, "--from") || !strcmp(o, "--vocab")) {
            a.from = val;
        } else if (!strcmp(o, "-o") || !strcmp(o, "--output")) {
            a.out = val;
        } else if (!strcmp(o, "--n-state") && !mk_int_arg(val, 32, 8192, &v)) {
            a.n_state = (int)v;
        } else if (!strcmp(o, "--n-head") && !mk_int_arg(val, 1, 256, &v)) {
            a.n_head = (int)v;
        } else if (!strcmp(o, "--n-audio-layer") && !mk_int_arg(val, 0, 256, &v)) {
            a.n_audio_layer = (int)v;
        } else if (!strcmp(o, "--n-text-layer") && !mk_int_arg(val, 0, 256, &v)) {
            a.n_text_layer = (int)v;
        } else {
            fprintf(stderr, "mkmodel: bad option or value: %s %s\n", o, val);
            mk_usage(stderr);
            return 1;
        }
    }
    if (!a.preset || (!a.out && !a.layout_only)) {
        mk_usage(stderr);
        return 1;
    }
    if (mkmodel_generate(&a, &rep, err, sizeof err)) {
        fprintf(stderr, "mkmodel: %s\n", err);
        return 1;
    }
    if (a.layout_only) {
        printf("%s %s %llu\n", a.preset, a.ftype ? a.ftype : "f16", (unsigned long long)rep.n_bytes);
    } else if (!quiet) {
        printf("%s: %s %s, %llu bytes, %d tensors (%d f32, %d f16", a.out, a.preset, a.ftype ? a.ftype : "f16",
               (unsigned long long)rep.n_bytes, rep.n_tensors, rep.n_by_type[MK_F32], rep.n_by_type[MK_F16]);
        for (int t = MK_Q4_0; t <= MK_Q8_0; t++)
            if (rep.n_by_type[t]) printf(", %d %s", rep.n_by_type[t], a.ftype);
        printf(")\n");
    }
    return 0;
}

#ifndef MKMODEL_NO_MAIN
int main(int argc, char **argv)
{
    return mkmodel_main(argc, argv);
}
#endif
