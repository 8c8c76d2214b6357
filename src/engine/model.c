/*
 * model.c: loads a Whisper model in whisper.cpp's ggml file format.
 *
 * The file is mmapped read-only and parsed with a bounds-checked cursor, so a
 * malformed file (wrong magic, a truncation at any byte, impossible hparams,
 * an unknown, missing or duplicate tensor, a wrong type or shape, sizes that
 * overflow) gives a one-line error naming the file and the fault, and never
 * reads outside the mapping. Every tensor record is matched by name against
 * the table of tensors the hparams imply, with its expected shape and the
 * types it may have. Large weights stay in the mapping (f16 and quantized
 * data are read in place); small tensors (biases, norms, positional
 * embeddings) and every f32 tensor get an aligned f32 copy so the forward
 * pass can index them directly.
 */
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cursor.h"
#include "kernels.h"
#include "tokenizer.h"

#define MAX_DIMS 4
#define MAX_NAME_LEN 256
#define MAX_TOKEN_BYTES 1024

size_t model_type_bytes(int type, int64_t n)
{
    if (n < 0) return 0;
    switch (type) {
    case TYPE_F32: return (uint64_t)n > SIZE_MAX / 4 ? 0 : (size_t)n * 4;
    case TYPE_F16: return (uint64_t)n > SIZE_MAX / 2 ? 0 : (size_t)n * 2;
    case TYPE_Q4_0: return n % QK ? 0 : (size_t)(n / QK) * Q4_0_BYTES;
    case TYPE_Q4_1: return n % QK ? 0 : (size_t)(n / QK) * Q4_1_BYTES;
    case TYPE_Q5_0: return n % QK ? 0 : (size_t)(n / QK) * Q5_0_BYTES;
    case TYPE_Q5_1: return n % QK ? 0 : (size_t)(n / QK) * Q5_1_BYTES;
    case TYPE_Q8_0: return n % QK ? 0 : (size_t)(n / QK) * Q8_0_BYTES;
    }
    return 0;
}

const char *hark_type_name(int type)
{
    switch (type) {
    case TYPE_F32: return "f32";
    case TYPE_F16: return "f16";
    case TYPE_Q4_0: return "q4_0";
    case TYPE_Q4_1: return "q4_1";
    case TYPE_Q5_0: return "q5_0";
    case TYPE_Q5_1: return "q5_1";
    case TYPE_Q8_0: return "q8_0";
    }
    return "?";
}

static int is_quant(int type)
{
    return type == TYPE_Q4_0 || type == TYPE_Q4_1 || type == TYPE_Q5_0 || type == TYPE_Q5_1 ||
           type == TYPE_Q8_0;
}

/* What a tensor may be: "float" tensors are f32 or f16 and get an f32 copy;
 * "weight" tensors (2-D linear weights, the token embedding) may also be
 * quantized; "conv" tensors are f32 or f16 and stay in the mapping. */
enum kind { KIND_FLOAT, KIND_WEIGHT, KIND_CONV };

struct expect {
    char name[64];
    struct tensor *dst;
    int n_dims;
    int64_t ne[MAX_DIMS];
    enum kind kind;
    int seen;
};

struct expect_list {
    struct expect *v;
    int n, cap;
};

static int expect_add(struct expect_list *l, struct tensor *dst, enum kind kind, int n_dims,
                      int64_t ne0, int64_t ne1, int64_t ne2, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

static int expect_add(struct expect_list *l, struct tensor *dst, enum kind kind, int n_dims,
                      int64_t ne0, int64_t ne1, int64_t ne2, const char *fmt, ...)
{
    struct expect *e;
    va_list ap;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 256;
        struct expect *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return HARK_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    e = &l->v[l->n++];
    memset(e, 0, sizeof *e);
    va_start(ap, fmt);
    vsnprintf(e->name, sizeof e->name, fmt, ap);
    va_end(ap);
    e->dst = dst;
    e->kind = kind;
    e->n_dims = n_dims;
    e->ne[0] = ne0;
    e->ne[1] = ne1;
    e->ne[2] = ne2;
    e->ne[3] = 1;
    return 0;
}

/* The tensors the hparams imply, with their ggml shapes (ne[0] fastest). */
static int expect_build(struct hark_model *m, struct expect_list *l)
{
    const struct hark_hparams *hp = &m->hp;
    int64_t sa = hp->n_audio_state, st = hp->n_text_state;
    int i, rc = 0;
#define ADD(...)                                   \
    do {                                           \
        if ((rc = expect_add(l, __VA_ARGS__))) return rc; \
    } while (0)
    ADD(&m->enc_pe, KIND_FLOAT, 2, sa, hp->n_audio_ctx, 1, "encoder.positional_embedding");
    ADD(&m->conv1_w, KIND_CONV, 3, 3, hp->n_mels, sa, "encoder.conv1.weight");
    ADD(&m->conv1_b, KIND_FLOAT, 2, 1, sa, 1, "encoder.conv1.bias");
    ADD(&m->conv2_w, KIND_CONV, 3, 3, sa, sa, "encoder.conv2.weight");
    ADD(&m->conv2_b, KIND_FLOAT, 2, 1, sa, 1, "encoder.conv2.bias");
    for (i = 0; i < hp->n_audio_layer; i++) {
        struct enc_layer *L = &m->enc[i];
        const char *p = "encoder.blocks";
        ADD(&L->attn_ln_w, KIND_FLOAT, 1, sa, 1, 1, "%s.%d.attn_ln.weight", p, i);
        ADD(&L->attn_ln_b, KIND_FLOAT, 1, sa, 1, 1, "%s.%d.attn_ln.bias", p, i);
        ADD(&L->q_w, KIND_WEIGHT, 2, sa, sa, 1, "%s.%d.attn.query.weight", p, i);
        ADD(&L->q_b, KIND_FLOAT, 1, sa, 1, 1, "%s.%d.attn.query.bias", p, i);
        ADD(&L->k_w, KIND_WEIGHT, 2, sa, sa, 1, "%s.%d.attn.key.weight", p, i);
        ADD(&L->v_w, KIND_WEIGHT, 2, sa, sa, 1, "%s.%d.attn.value.weight", p, i);
        ADD(&L->v_b, KIND_FLOAT, 1, sa, 1, 1, "%s.%d.attn.value.bias", p, i);
        ADD(&L->o_w, KIND_WEIGHT, 2, sa, sa, 1, "%s.%d.attn.out.weight", p, i);
        ADD(&L->o_b, KIND_FLOAT, 1, sa, 1, 1, "%s.%d.attn.out.bias", p, i);
        ADD(&L->mlp_ln_w, KIND_FLOAT, 1, sa, 1, 1, "%s.%d.mlp_ln.weight", p, i);
        ADD(&L->mlp_ln_b, KIND_FLOAT, 1, sa, 1, 1, "%s.%d.mlp_ln.bias", p, i);
        ADD(&L->mlp0_w, KIND_WEIGHT, 2, sa, 4 * sa, 1, "%s.%d.mlp.0.weight", p, i);
        ADD(&L->mlp0_b, KIND_FLOAT, 1, 4 * sa, 1, 1, "%s.%d.mlp.0.bias", p, i);
        ADD(&L->mlp2_w, KIND_WEIGHT, 2, 4 * sa, sa, 1, "%s.%d.mlp.2.weight", p, i);
        ADD(&L->mlp2_b, KIND_FLOAT, 1, sa, 1, 1, "%s.%d.mlp.2.bias", p, i);
    }
    ADD(&m->ln_post_w, KIND_FLOAT, 1, sa, 1, 1, "encoder.ln_post.weight");
    ADD(&m->ln_post_b, KIND_FLOAT, 1, sa, 1, 1, "encoder.ln_post.bias");
    ADD(&m->dec_pe, KIND_FLOAT, 2, st, hp->n_text_ctx, 1, "decoder.positional_embedding");
    ADD(&m->tok_emb, KIND_WEIGHT, 2, st, hp->n_vocab, 1, "decoder.token_embedding.weight");
    for (i = 0; i < hp->n_text_layer; i++) {
        struct dec_layer *L = &m->dec[i];
        const char *p = "decoder.blocks";
        ADD(&L->attn_ln_w, KIND_FLOAT, 1, st, 1, 1, "%s.%d.attn_ln.weight", p, i);
        ADD(&L->attn_ln_b, KIND_FLOAT, 1, st, 1, 1, "%s.%d.attn_ln.bias", p, i);
        ADD(&L->q_w, KIND_WEIGHT, 2, st, st, 1, "%s.%d.attn.query.weight", p, i);
        ADD(&L->q_b, KIND_FLOAT, 1, st, 1, 1, "%s.%d.attn.query.bias", p, i);
        ADD(&L->k_w, KIND_WEIGHT, 2, st, st, 1, "%s.%d.attn.key.weight", p, i);
        ADD(&L->v_w, KIND_WEIGHT, 2, st, st, 1, "%s.%d.attn.value.weight", p, i);
        ADD(&L->v_b, KIND_FLOAT, 1, st, 1, 1, "%s.%d.attn.value.bias", p, i);
        ADD(&L->o_w, KIND_WEIGHT, 2, st, st, 1, "%s.%d.attn.out.weight", p, i);
        ADD(&L->o_b, KIND_FLOAT, 1, st, 1, 1, "%s.%d.attn.out.bias", p, i);
        ADD(&L->cross_ln_w, KIND_FLOAT, 1, st, 1, 1, "%s.%d.cross_attn_ln.weight", p, i);
        ADD(&L->cross_ln_b, KIND_FLOAT, 1, st, 1, 1, "%s.%d.cross_attn_ln.bias", p, i);
        /* Cross-attention keys and values read the encoder output, so their
         * input width is the audio state. */
        ADD(&L->cq_w, KIND_WEIGHT, 2, st, st, 1, "%s.%d.cross_attn.query.weight", p, i);
        ADD(&L->cq_b, KIND_FLOAT, 1, st, 1, 1, "%s.%d.cross_attn.query.bias", p, i);
        ADD(&L->ck_w, KIND_WEIGHT, 2, sa, st, 1, "%s.%d.cross_attn.key.weight", p, i);
        ADD(&L->cv_w, KIND_WEIGHT, 2, sa, st, 1, "%s.%d.cross_attn.value.weight", p, i);
        ADD(&L->cv_b, KIND_FLOAT, 1, st, 1, 1, "%s.%d.cross_attn.value.bias", p, i);
        ADD(&L->co_w, KIND_WEIGHT, 2, st, st, 1, "%s.%d.cross_attn.out.weight", p, i);
        ADD(&L->co_b, KIND_FLOAT, 1, st, 1, 1, "%s.%d.cross_attn.out.bias", p, i);
        ADD(&L->mlp_ln_w, KIND_FLOAT, 1, st, 1, 1, "%s.%d.mlp_ln.weight", p, i);
        ADD(&L->mlp_ln_b, KIND_FLOAT, 1, st, 1, 1, "%s.%d.mlp_ln.bias", p, i);
        ADD(&L->mlp0_w, KIND_WEIGHT, 2, st, 4 * st, 1, "%s.%d.mlp.0.weight", p, i);
        ADD(&L->mlp0_b, KIND_FLOAT, 1, 4 * st, 1, 1, "%s.%d.mlp.0.bias", p, i);
        ADD(&L->mlp2_w, KIND_WEIGHT, 2, 4 * st, st, 1, "%s.%d.mlp.2.weight", p, i);
        ADD(&L->mlp2_b, KIND_FLOAT, 1, st, 1, 1, "%s.%d.mlp.2.bias", p, i);
    }
    ADD(&m->ln_w, KIND_FLOAT, 1, st, 1, 1, "decoder.ln.weight");
    ADD(&m->ln_b, KIND_FLOAT, 1, st, 1, 1, "decoder.ln.bias");
#undef ADD
    return 0;
}

static void shape_str(char *buf, size_t len, int n_dims, const int64_t *ne)
{
    int i, n = snprintf(buf, len, "[");
    for (i = 0; i < n_dims && n > 0 && (size_t)n < len; i++)
        n += snprintf(buf + n, len - (size_t)n, "%s%lld", i ? "," : "", (long long)ne[i]);
    if (n > 0 && (size_t)n < len) snprintf(buf + n, len - (size_t)n, "]");
}

static int check_hparams(const struct hark_hparams *hp, int qntvr, const char *path, char *err,
                         size_t errlen)
{
    struct {
        const char *name;
        int32_t v, lo, hi;
    } f[] = {
        /* The encoder's input is always a 30 s window of 3000 mel frames,
         * which the stride-2 conv turns into 1500 positions. */
        {"n_vocab", hp->n_vocab, 51864, 51866},
        {"n_audio_ctx", hp->n_audio_ctx, 1500, 1500},
        {"n_audio_state", hp->n_audio_state, 1, 16384},
        {"n_audio_head", hp->n_audio_head, 1, 256},
        {"n_audio_layer", hp->n_audio_layer, 1, 256},
        {"n_text_ctx", hp->n_text_ctx, 4, 4096},
        {"n_text_state", hp->n_text_state, 1, 16384},
        {"n_text_head", hp->n_text_head, 1, 256},
        {"n_text_layer", hp->n_text_layer, 1, 256},
        {"n_mels", hp->n_mels, 1, 512},
    };
    size_t i;
    for (i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (f[i].v < f[i].lo || f[i].v > f[i].hi) {
            if (f[i].lo == f[i].hi)
                cur_seterr(err, errlen, path, "hparams: %s = %d, expected %d", f[i].name, f[i].v, f[i].lo);
            else
                cur_seterr(err, errlen, path, "hparams: %s = %d, expected %d..%d", f[i].name, f[i].v,
                       f[i].lo, f[i].hi);
            return HARK_EFORMAT;
        }
    }
    if (hp->n_audio_state % hp->n_audio_head || hp->n_text_state % hp->n_text_head) {
        cur_seterr(err, errlen, path, "hparams: state %d/%d not divisible by heads %d/%d",
               hp->n_audio_state, hp->n_text_state, hp->n_audio_head, hp->n_text_head);
        return HARK_EFORMAT;
    }
    switch (hp->ftype) {
    case 0: case 1: case 2: case 3: case 7: case 8: case 9: break;
    default:
        cur_seterr(err, errlen, path, "hparams: unknown ftype %d", hp->ftype);
        return HARK_EFORMAT;
    }
    if (qntvr < 0 || qntvr > 2) {
        cur_seterr(err, errlen, path, "hparams: unsupported quantization version %d", qntvr);
        return HARK_EFORMAT;
    }
    return 0;
}

/* The magic and the hyperparameters at the start of a file. Returns 0, or
 * HARK_EFORMAT with a reason in err. */
static int read_header(struct cursor *c, const char *path, struct hark_hparams *hp, int *qntvr, char *err,
                       size_t errlen)
{
    const uint8_t *p;
    uint32_t magic;
    int32_t hv[11];

    if (cur_take(c, 4, &p)) {
        cur_seterr(err, errlen, path, "file is %zu bytes: too short for a model", c->size);
        return HARK_EFORMAT;
    }
    memcpy(&magic, p, 4);
    if (magic != GGML_MAGIC) {
        cur_seterr(err, errlen, path, "bad magic 0x%08x, expected 0x%08x (not a ggml Whisper model)",
                   magic, GGML_MAGIC);
        return HARK_EFORMAT;
    }
    for (int i = 0; i < 11; i++) {
        if (cur_i32(c, &hv[i])) {
            cur_seterr(err, errlen, path, "truncated hparams");
            return HARK_EFORMAT;
        }
    }
    hp->n_vocab = hv[0];
    hp->n_audio_ctx = hv[1];
    hp->n_audio_state = hv[2];
    hp->n_audio_head = hv[3];
    hp->n_audio_layer = hv[4];
    hp->n_text_ctx = hv[5];
    hp->n_text_state = hv[6];
    hp->n_text_head = hv[7];
    hp->n_text_layer = hv[8];
    hp->n_mels = hv[9];
    if (hv[10] < 0) {
        cur_seterr(err, errlen, path, "hparams: negative ftype %d", hv[10]);
        return HARK_EFORMAT;
    }
    *qntvr = hv[10] / 1000;
    hp->ftype = hv[10] % 1000;
    return check_hparams(hp, *qntvr, path, err, errlen);
}

int hark_model_peek(const char *path, struct hark_hparams *hp, char *err, size_t errlen)
{
    uint8_t head[48];
    struct cursor c;
    ssize_t got;
    int fd, qntvr;

    if (err && errlen) err[0] = 0;
    if (!path || !hp) {
        cur_seterr(err, errlen, "(null)", "no model path given");
        return HARK_EINVAL;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cur_seterr(err, errlen, path, "cannot open: %s", strerror(errno));
        return errno == ENOENT ? HARK_ENOENT : HARK_EIO;
    }
    do got = pread(fd, head, sizeof head, 0);
    while (got < 0 && errno == EINTR);
    if (got < 0) {
        cur_seterr(err, errlen, path, "cannot read: %s", strerror(errno));
        close(fd);
        return HARK_EIO;
    }
    close(fd);
    c.base = head;
    c.size = (size_t)got;
    c.pos = 0;
    return read_header(&c, path, hp, &qntvr, err, errlen);
}

static float *copy_f32(const struct tensor *t)
{
    int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3], i;
    float *dst = aligned_alloc(64, ((size_t)n * 4 + 63) / 64 * 64);
    if (!dst) return NULL;
    if (t->type == TYPE_F32) {
        memcpy(dst, t->data, (size_t)n * 4);
    } else {
        for (i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            dst[i] = kern_f16_to_f32(h);
        }
    }
    return dst;
}

static int read_tensors(struct hark_model *m, struct cursor *c, char *err, size_t errlen)
{
    struct expect_list l = {0};
    int rc, i, cap = 0;
    const char *path = m->path;

    if ((rc = expect_build(m, &l))) {
        cur_seterr(err, errlen, path, "out of memory");
        goto fail;
    }
    while (c->pos < c->size) {
        int32_t n_dims, name_len, ttype, ne32;
        int64_t ne[MAX_DIMS] = {1, 1, 1, 1}, n_el = 1;
        const uint8_t *name, *data;
        size_t rec = c->pos, n_bytes;
        struct expect *e = NULL;
        struct tensor *t;
        char namebuf[MAX_NAME_LEN + 1], got[64], want[64];

        if (cur_i32(c, &n_dims) || cur_i32(c, &name_len) || cur_i32(c, &ttype)) {
            cur_seterr(err, errlen, path, "truncated tensor header at byte %zu", rec);
            rc = HARK_EFORMAT;
            goto fail;
        }
        if (n_dims < 1 || n_dims > MAX_DIMS) {
            cur_seterr(err, errlen, path, "tensor record at byte %zu: n_dims %d, expected 1..%d", rec,
                   n_dims, MAX_DIMS);
            rc = HARK_EFORMAT;
            goto fail;
        }
        if (name_len < 1 || name_len > MAX_NAME_LEN) {
            cur_seterr(err, errlen, path, "tensor record at byte %zu: name length %d, expected 1..%d",
                   rec, name_len, MAX_NAME_LEN);
            rc = HARK_EFORMAT;
            goto fail;
        }
        for (i = 0; i < n_dims; i++) {
            if (cur_i32(c, &ne32)) {
                cur_seterr(err, errlen, path, "truncated tensor header at byte %zu", rec);
                rc = HARK_EFORMAT;
                goto fail;
            }
            if (ne32 < 1) {
                cur_seterr(err, errlen, path, "tensor record at byte %zu: dimension %d is %d", rec, i,
                       ne32);
                rc = HARK_EFORMAT;
                goto fail;
            }
            ne[i] = ne32;
            if (n_el > INT64_MAX / ne32) {
                cur_seterr(err, errlen, path, "tensor record at byte %zu: element count overflows", rec);
                rc = HARK_EFORMAT;
                goto fail;
            }
            n_el *= ne32;
        }
        if (cur_take(c, (size_t)name_len, &name)) {
            cur_seterr(err, errlen, path, "truncated tensor name at byte %zu", rec);
            rc = HARK_EFORMAT;
            goto fail;
        }
        memcpy(namebuf, name, (size_t)name_len);
        namebuf[name_len] = 0;
        if (strlen(namebuf) != (size_t)name_len) {
            cur_seterr(err, errlen, path, "tensor record at byte %zu: name contains a NUL byte", rec);
            rc = HARK_EFORMAT;
            goto fail;
        }
        for (i = 0; i < l.n; i++) {
            if (!strcmp(l.v[i].name, namebuf)) {
                e = &l.v[i];
                break;
            }
        }
        if (!e) {
            cur_seterr(err, errlen, path, "unknown tensor '%.100s' at byte %zu", namebuf, rec);
            rc = HARK_EFORMAT;
            goto fail;
        }
        if (e->seen) {
            cur_seterr(err, errlen, path, "duplicate tensor '%s' at byte %zu", e->name, rec);
            rc = HARK_EFORMAT;
            goto fail;
        }
        shape_str(got, sizeof got, n_dims, ne);
        shape_str(want, sizeof want, e->n_dims, e->ne);
        if (n_dims != e->n_dims || memcmp(ne, e->ne, sizeof ne)) {
            cur_seterr(err, errlen, path, "tensor '%s': shape %s, expected %s", e->name, got, want);
            rc = HARK_EFORMAT;
            goto fail;
        }
        if (!(ttype == TYPE_F32 || ttype == TYPE_F16 || (e->kind == KIND_WEIGHT && is_quant(ttype)))) {
            cur_seterr(err, errlen, path, "tensor '%s': type %d (%s) is not allowed here", e->name,
                   ttype, hark_type_name(ttype));
            rc = HARK_EFORMAT;
            goto fail;
        }
        n_bytes = model_type_bytes(ttype, n_el);
        if (!n_bytes) {
            cur_seterr(err, errlen, path, "tensor '%s': %lld elements do not fit type %s", e->name,
                   (long long)n_el, hark_type_name(ttype));
            rc = HARK_EFORMAT;
            goto fail;
        }
        if (is_quant(ttype) && ne[0] % QK) {
            cur_seterr(err, errlen, path, "tensor '%s': row length %lld is not a multiple of %d",
                   e->name, (long long)ne[0], QK);
            rc = HARK_EFORMAT;
            goto fail;
        }
        if (cur_take(c, n_bytes, &data)) {
            cur_seterr(err, errlen, path, "tensor '%s': data truncated (%zu bytes needed, %zu left)",
                   e->name, n_bytes, c->size - (size_t)(name - c->base) - (size_t)name_len);
            rc = HARK_EFORMAT;
            goto fail;
        }
        e->seen = 1;
        t = e->dst;
        t->type = ttype;
        t->n_dims = n_dims;
        memcpy(t->ne, ne, sizeof ne);
        t->data = data;
        t->n_bytes = n_bytes;
        if (m->n_all == cap) {
            int ncap = cap ? cap * 2 : 256;
            struct tensor *v = realloc(m->all, (size_t)ncap * sizeof *v);
            if (!v) {
                cur_seterr(err, errlen, path, "out of memory");
                rc = HARK_ENOMEM;
                goto fail;
            }
            m->all = v;
            cap = ncap;
        }
        m->all[m->n_all++] = *t; /* names are fixed up below, once e->name is final */
        m->all[m->n_all - 1].name = NULL;
        t->name = NULL;
        if (ttype == TYPE_F32 || e->kind == KIND_FLOAT) {
            float *f = copy_f32(t);
            if (!f) {
                cur_seterr(err, errlen, path, "out of memory copying '%s'", e->name);
                rc = HARK_ENOMEM;
                goto fail;
            }
            t->f32 = f;
        }
    }
    for (i = 0; i < l.n; i++) {
        if (!l.v[i].seen) {
            cur_seterr(err, errlen, path, "missing tensor '%s' (file ends at byte %zu)", l.v[i].name,
                   c->size);
            rc = HARK_EFORMAT;
            goto fail;
        }
    }
    /* Give every tensor a stable name owned by the model: one block holding
     * all names, in the order of the expectation table. */
    {
        size_t total = 0, off = 0;
        char *names;
        for (i = 0; i < l.n; i++) total += strlen(l.v[i].name) + 1;
        names = malloc(total);
        if (!names) {
            cur_seterr(err, errlen, path, "out of memory");
            rc = HARK_ENOMEM;
            goto fail;
        }
        m->names = names;
        for (i = 0; i < l.n; i++) {
            size_t n = strlen(l.v[i].name) + 1;
            memcpy(names + off, l.v[i].name, n);
            l.v[i].dst->name = names + off;
            off += n;
        }
        for (i = 0; i < m->n_all; i++) {
            int j;
            for (j = 0; j < l.n; j++) {
                if (l.v[j].dst->data == m->all[i].data) {
                    m->all[i] = *l.v[j].dst;
                    break;
                }
            }
        }
    }
    free(l.v);
    return 0;
fail:
    free(l.v);
    return rc;
}

static void free_f32(struct tensor *t)
{
    free((void *)t->f32);
    t->f32 = NULL;
}

void hark_model_free(hark_model *m)
{
    int i;
    if (!m) return;
    tok_index_free(m->tok);
    free_f32(&m->conv1_w);
    free_f32(&m->conv1_b);
    free_f32(&m->conv2_w);
    free_f32(&m->conv2_b);
    free_f32(&m->enc_pe);
    free_f32(&m->ln_post_w);
    free_f32(&m->ln_post_b);
    free_f32(&m->tok_emb);
    free_f32(&m->dec_pe);
    free_f32(&m->ln_w);
    free_f32(&m->ln_b);
    if (m->enc) {
        for (i = 0; i < m->hp.n_audio_layer; i++) {
            struct tensor *t = (struct tensor *)&m->enc[i];
            size_t j, n = sizeof m->enc[i] / sizeof *t;
            for (j = 0; j < n; j++) free_f32(&t[j]);
        }
    }
    if (m->dec) {
        for (i = 0; i < m->hp.n_text_layer; i++) {
            struct tensor *t = (struct tensor *)&m->dec[i];
            size_t j, n = sizeof m->dec[i] / sizeof *t;
            for (j = 0; j < n; j++) free_f32(&t[j]);
        }
    }
    free(m->enc);
    free(m->dec);
    free(m->all);
    free(m->names);
    free((void *)m->mel_filters);
    free(m->vocab_bytes);
    free(m->vocab_len);
    if (m->map) munmap(m->map, m->map_bytes);
    free(m->path);
    free(m);
}

hark_model *hark_model_load(const char *path, int *code, char *err, size_t errlen)
{
    struct hark_model *m = NULL;
    struct cursor c;
    struct stat sb;
    int fd = -1, rc = HARK_EFORMAT, i;
    int32_t n_mel, n_fft, n_tok;
    const uint8_t *p;

    if (err && errlen) err[0] = 0;
    if (!path) {
        cur_seterr(err, errlen, "(null)", "no model path given");
        rc = HARK_EINVAL;
        goto fail;
    }
    m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        cur_seterr(err, errlen, path, "out of memory");
        rc = HARK_ENOMEM;
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cur_seterr(err, errlen, path, "cannot open: %s", strerror(errno));
        rc = errno == ENOENT ? HARK_ENOENT : HARK_EIO;
        goto fail;
    }
    if (fstat(fd, &sb) != 0) {
        cur_seterr(err, errlen, path, "cannot stat: %s", strerror(errno));
        rc = HARK_EIO;
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        cur_seterr(err, errlen, path, "not a regular file");
        rc = HARK_EIO;
        goto fail;
    }
    if (sb.st_size < 4) {
        cur_seterr(err, errlen, path, "file is %lld bytes: too short for a model", (long long)sb.st_size);
        goto fail;
    }
    m->map_bytes = (size_t)sb.st_size;
    m->map = mmap(NULL, m->map_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m->map == MAP_FAILED) {
        m->map = NULL;
        cur_seterr(err, errlen, path, "cannot mmap: %s", strerror(errno));
        rc = HARK_EIO;
        goto fail;
    }
    /* Start reading the whole file into the page cache in the background:
     * the first window touches every weight. */
    madvise(m->map, m->map_bytes, MADV_WILLNEED);
    close(fd);
    fd = -1;
    c.base = m->map;
    c.size = m->map_bytes;
    c.pos = 0;

    if ((rc = read_header(&c, path, &m->hp, &m->qntvr, err, errlen))) goto fail;
    rc = HARK_EFORMAT;

    /* Mel filters: (n_mel, n_fft) float32. */
    if (cur_i32(&c, &n_mel) || cur_i32(&c, &n_fft)) {
        cur_seterr(err, errlen, path, "truncated mel filter header");
        goto fail;
    }
    if (n_mel != m->hp.n_mels || n_fft != 201) {
        cur_seterr(err, errlen, path, "mel filters: %d x %d, expected %d x 201", n_mel, n_fft,
               m->hp.n_mels);
        goto fail;
    }
    if (cur_take(&c, (size_t)n_mel * (size_t)n_fft * 4, &p)) {
        cur_seterr(err, errlen, path, "truncated mel filters");
        goto fail;
    }
    {
        float *f = aligned_alloc(64, ((size_t)n_mel * (size_t)n_fft * 4 + 63) / 64 * 64);
        if (!f) {
            cur_seterr(err, errlen, path, "out of memory");
            rc = HARK_ENOMEM;
            goto fail;
        }
        memcpy(f, p, (size_t)n_mel * (size_t)n_fft * 4);
        m->mel_filters = f;
        m->n_fft_bins = n_fft;
    }

    /* Vocabulary: count, then (u32 length, bytes) per token. */
    if (cur_i32(&c, &n_tok)) {
        cur_seterr(err, errlen, path, "truncated vocabulary count");
        goto fail;
    }
    if (n_tok < 0 || n_tok > m->hp.n_vocab) {
        cur_seterr(err, errlen, path, "vocabulary count %d, expected 0..%d", n_tok, m->hp.n_vocab);
        goto fail;
    }
    m->n_vocab_stored = n_tok;
    m->vocab_bytes = calloc((size_t)n_tok + 1, sizeof *m->vocab_bytes);
    m->vocab_len = calloc((size_t)n_tok + 1, sizeof *m->vocab_len);
    if (!m->vocab_bytes || !m->vocab_len) {
        cur_seterr(err, errlen, path, "out of memory");
        rc = HARK_ENOMEM;
        goto fail;
    }
    for (i = 0; i < n_tok; i++) {
        int32_t len;
        if (cur_i32(&c, &len)) {
            cur_seterr(err, errlen, path, "truncated vocabulary at token %d", i);
            goto fail;
        }
        if (len < 0 || len > MAX_TOKEN_BYTES) {
            cur_seterr(err, errlen, path, "vocabulary token %d: length %d, expected 0..%d", i, len,
                   MAX_TOKEN_BYTES);
            goto fail;
        }
        if (cur_take(&c, (size_t)len, &p)) {
            cur_seterr(err, errlen, path, "truncated vocabulary at token %d", i);
            goto fail;
        }
        m->vocab_bytes[i] = p;
        m->vocab_len[i] = (uint32_t)len;
    }

    m->enc = calloc((size_t)m->hp.n_audio_layer, sizeof *m->enc);
    m->dec = calloc((size_t)m->hp.n_text_layer, sizeof *m->dec);
    if (!m->enc || !m->dec) {
        cur_seterr(err, errlen, path, "out of memory");
        rc = HARK_ENOMEM;
        goto fail;
    }
    if ((rc = read_tensors(m, &c, err, errlen))) goto fail;
    m->tok = tok_index_new(m);
    if (!m->tok) {
        cur_seterr(err, errlen, path, "out of memory building the vocabulary index");
        rc = HARK_ENOMEM;
        goto fail;
    }
    if (code) *code = 0;
    return m;
fail:
    if (fd >= 0) close(fd);
    hark_model_free(m);
    if (code) *code = rc;
    return NULL;
}

const struct hark_hparams *hark_model_hparams(const hark_model *m) { return &m->hp; }

int hark_model_is_multilingual(const hark_model *m) { return m->hp.n_vocab >= 51865; }

int hark_model_n_tensors(const hark_model *m) { return m->n_all; }

int hark_model_tensor(const hark_model *m, int i, struct hark_tensor_info *info)
{
    const struct tensor *t;
    if (i < 0 || i >= m->n_all) return HARK_ERANGE;
    t = &m->all[i];
    info->name = t->name;
    info->type = t->type;
    info->n_dims = t->n_dims;
    memcpy(info->ne, t->ne, sizeof info->ne);
    info->n_bytes = t->n_bytes;
    return 0;
}
