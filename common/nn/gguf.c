/* gguf.c - a model as a GGUF file for llama.cpp. See gguf.h; the format is ggml's docs/gguf.md:
 * "GGUF", version, tensor count, metadata count, the metadata (key, type, value), the tensor
 * infos (name, dims innermost first, ggml type, offset into the data), padding to the
 * alignment, then each tensor's data at its aligned offset. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "tokenizer.h"

#define ALIGN 32 /* general.alignment's default, which we do not write */

enum { GG_U32 = 4, GG_I32 = 5, GG_F32 = 6, GG_BOOL = 7, GG_STR = 8, GG_ARR = 9 };
enum { GGML_F32 = 0, GGML_F16 = 1 };
/* llama.cpp's token types */
enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5 };

unsigned short nn_f32_to_f16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) /* infinity, or a NaN kept quiet */
        return (unsigned short)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u));
    if (a >= 0x477ff000u) /* 65520 and up round to infinity */
        return (unsigned short)(sign | 0x7c00u);
    if (a < 0x38800000u) { /* under 2^-14: a subnormal half, in units of 2^-24 (exact scaling) */
        float v;
        memcpy(&v, &a, sizeof v);
        return (unsigned short)(sign | (uint32_t)nearbyintf(v * 16777216.0f));
    }
    /* rebias the exponent (127 -> 15) and round 23 mantissa bits to 10, to nearest even; a carry
     * runs into the exponent as it should */
    uint32_t r = a + 0x0fffu + ((a >> 13) & 1u) - 0x38000000u;
    return (unsigned short)(sign | (r >> 13));
}

/* ------------------------------------------------------------------ byte buffer */

struct out {
    unsigned char *p;
    size_t n, cap;
    bool oom;
};

static void put(struct out *o, const void *b, size_t n)
{
    if (o->oom)
        return;
    if (o->n + n > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->n + n)
            cap *= 2;
        unsigned char *p = realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->n, b, n);
    o->n += n;
}

/* little endian, whatever the host */
static void put_u32(struct out *o, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(o, b, 4);
}

static void put_u64(struct out *o, uint64_t v)
{
    put_u32(o, (uint32_t)v);
    put_u32(o, (uint32_t)(v >> 32));
}

static void put_f32(struct out *o, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    put_u32(o, u);
}

static void put_str(struct out *o, const char *s, size_t n)
{
    put_u64(o, n);
    put(o, s, n);
}

/* The metadata: each kv_* writes one key and counts it. */
struct meta {
    struct out o;
    uint64_t count;
};

static void kv_key(struct meta *m, const char *key, uint32_t type)
{
    put_str(&m->o, key, strlen(key));
    put_u32(&m->o, type);
    m->count++;
}

static void kv_u32(struct meta *m, const char *key, uint32_t v)
{
    kv_key(m, key, GG_U32);
    put_u32(&m->o, v);
}

static void kv_f32(struct meta *m, const char *key, float v)
{
    kv_key(m, key, GG_F32);
    put_f32(&m->o, v);
}

static void kv_bool(struct meta *m, const char *key, bool v)
{
    kv_key(m, key, GG_BOOL);
    unsigned char b = v;
    put(&m->o, &b, 1);
}

static void kv_str(struct meta *m, const char *key, const char *v)
{
    kv_key(m, key, GG_STR);
    put_str(&m->o, v, strlen(v));
}

/* An array's header; the caller writes the n elements. */
static void kv_arr(struct meta *m, const char *key, uint32_t type, uint64_t n)
{
    kv_key(m, key, GG_ARR);
    put_u32(&m->o, type);
    put_u64(&m->o, n);
}

/* ------------------------------------------------------------------ tokenizer */

/* GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others (0-32, 127-160,
 * 173) for 256, 257, ... in byte order. */
static uint32_t gpt2_byte_cp(unsigned b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
        return b;
    uint32_t n = 0;
    for (unsigned c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174))
            n++;
    return 256 + n;
}

struct vocab {
    char **tok; /* [V] malloc'd strings */
    int *type;  /* [V] */
    int V;
    const char **merges; /* borrowed from the JSON, or none */
    size_t nmerges;
    char pre[16];
    bool add_bos;
};

static void vocab_free(struct vocab *v)
{
    for (int i = 0; v->tok && i < v->V; i++)
        free(v->tok[i]);
    free(v->tok);
    free(v->type);
    free(v->merges);
    memset(v, 0, sizeof *v);
}

static int vocab_alloc(struct vocab *v, int V)
{
    v->V = V;
    v->tok = calloc((size_t)V, sizeof *v->tok);
    v->type = calloc((size_t)V, sizeof *v->type);
    return v->tok && v->type ? ERR_OK : ERR_NOMEM;
}

/* Ids nobody named: "[PAD<id>]", UNUSED, as convert_hf_to_gguf.py pads a vocabulary. */
static int vocab_pad(struct vocab *v)
{
    for (int i = 0; i < v->V; i++) {
        if (v->tok[i])
            continue;
        char b[32];
        snprintf(b, sizeof b, "[PAD%d]", i);
        v->tok[i] = strdup(b);
        v->type[i] = TT_UNUSED;
        if (!v->tok[i])
            return ERR_NOMEM;
    }
    return ERR_OK;
}

static int vocab_byte(struct vocab *v, int V)
{
    if (vocab_alloc(v, V))
        return ERR_NOMEM;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = gpt2_byte_cp((unsigned)b);
        char s[4];
        if (cp < 0x80) {
            s[0] = (char)cp;
            s[1] = 0;
        } else { /* all under 0x800: two bytes */
            s[0] = (char)(0xc0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3f));
            s[2] = 0;
        }
        v->tok[b] = strdup(s);
        v->type[b] = TT_NORMAL;
        if (!v->tok[b])
            return ERR_NOMEM;
    }
    const char *special[3] = {"<bos>", "<eos>", "<pad>"};
    for (int i = 0; i < 3; i++) {
        v->tok[TOK_BYTE_BOS + i] = strdup(special[i]);
        v->type[TOK_BYTE_BOS + i] = TT_CONTROL;
        if (!v->tok[TOK_BYTE_BOS + i])
            return ERR_NOMEM;
    }
    /* any pre-tokenizer splits bytes into the same tokens; GPT-2's is the plainest */
    snprintf(v->pre, sizeof v->pre, "gpt-2");
    v->add_bos = false;
    return vocab_pad(v);
}

/* The type of a pre-tokenizer step, or "". */
static const char *step_type(const json_t *s)
{
    const json_t *t = json_object_get(s, "type");
    return json_is_string(t) ? json_string_value(t) : "";
}

/* llama.cpp's name for tokenizer.json's pre-tokenizer, or NULL. */
static const char *pre_name(const json_t *pre)
{
    if (!strcmp(step_type(pre), "ByteLevel"))
        return json_is_false(json_object_get(pre, "use_regex")) ? NULL : "gpt-2";
    if (strcmp(step_type(pre), "Sequence"))
        return NULL;
    const json_t *st = json_object_get(pre, "pretokenizers");
    if (!json_is_array(st) || json_array_size(st) != 2)
        return NULL;
    const json_t *a = json_array_get(st, 0), *b = json_array_get(st, 1);
    if (strcmp(step_type(b), "ByteLevel"))
        return NULL;
    if (!strcmp(step_type(a), "Digits") && json_is_true(json_object_get(a, "individual_digits")))
        return "smollm"; /* SmolLM: each digit alone, then GPT-2's regex */
    const json_t *pat = json_object_get(json_object_get(a, "pattern"), "Regex");
    if (!strcmp(step_type(a), "Split") && json_is_string(pat) &&
        strstr(json_string_value(pat), "(?i:'s|'t|'re|'ve|'m|'ll|'d)") &&
        strstr(json_string_value(pat), "\\p{N}{1,3}"))
        return "llama-bpe"; /* Llama 3's split */
    return NULL;
}

static int vocab_bpe(struct vocab *v, int V, const char *path, json_t **keep, char *err,
                     size_t errlen)
{
    if (access(path, R_OK) != 0) {
        int e = errno;
        err_fmt(err, errlen, "%s: %s", path, strerror(e));
        return e == ENOENT ? ERR_NOTFOUND : ERR_IO;
    }
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        err_fmt(err, errlen, "%s:%d: not valid JSON: %s", path, je.line, je.text);
        return ERR_PROTO;
    }
    *keep = root;
    const json_t *model = json_object_get(root, "model");
    const json_t *vmap = json_object_get(model, "vocab");
    const json_t *merges = json_object_get(model, "merges");
    if (strcmp(step_type(model), "BPE") || !json_is_object(vmap) || !json_is_array(merges)) {
        err_fmt(err, errlen, "%s: not a BPE tokenizer with a vocab and merges", path);
        return ERR_INVAL;
    }
    if (json_is_true(json_object_get(model, "byte_fallback"))) {
        err_fmt(err, errlen,
                "%s: a SentencePiece-style BPE (byte_fallback): llama.cpp wants those as "
                "tokenizer.ggml.model \"llama\" with piece scores, which this exporter does not "
                "write",
                path);
        return ERR_INVAL;
    }
    const char *pre = pre_name(json_object_get(root, "pre_tokenizer"));
    if (!pre) {
        err_fmt(err, errlen,
                "%s: its pre_tokenizer is none whose llama.cpp name this exporter knows (GPT-2's "
                "ByteLevel, Llama 3's Split, SmolLM's Digits + ByteLevel); llama.cpp would split "
                "the text otherwise",
                path);
        return ERR_INVAL;
    }
    snprintf(v->pre, sizeof v->pre, "%s", pre);
    if (vocab_alloc(v, V))
        return ERR_NOMEM;
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)vmap, key, val)
    {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || id >= V) {
            err_fmt(err, errlen,
                    "%s: token \"%.40s\" has id %lld, outside the model's vocabulary "
                    "of %d",
                    path, key, (long long)id, V);
            return ERR_INVAL;
        }
        free(v->tok[id]);
        v->tok[id] = strdup(key);
        v->type[id] = TT_NORMAL;
        if (!v->tok[id])
            return ERR_NOMEM;
    }
    const json_t *added = json_object_get(root, "added_tokens");
    size_t i;
    json_array_foreach(added, i, val)
    {
        const json_t *jid = json_object_get(val, "id"), *jc = json_object_get(val, "content");
        json_int_t id = json_is_integer(jid) ? json_integer_value(jid) : -1;
        if (id < 0 || id >= V || !json_is_string(jc)) {
            err_fmt(err, errlen, "%s: added token %zu has no content or an id outside [0, %d)",
                    path, i, V);
            return ERR_INVAL;
        }
        free(v->tok[id]);
        v->tok[id] = strdup(json_string_value(jc));
        v->type[id] = json_is_true(json_object_get(val, "special")) ? TT_CONTROL : TT_USER_DEFINED;
        if (!v->tok[id])
            return ERR_NOMEM;
    }
    /* merges: "a b" strings, or ["a", "b"] pairs written back as "a b" */
    v->nmerges = json_array_size(merges);
    v->merges = calloc(v->nmerges ? v->nmerges : 1, sizeof *v->merges);
    if (!v->merges)
        return ERR_NOMEM;
    json_array_foreach(merges, i, val)
    {
        if (json_is_string(val)) {
            v->merges[i] = json_string_value(val);
            continue;
        }
        const json_t *a = json_array_get(val, 0), *b = json_array_get(val, 1);
        if (!json_is_string(a) || !json_is_string(b)) {
            err_fmt(err, errlen, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", path, i);
            return ERR_INVAL;
        }
        size_t la = strlen(json_string_value(a)), lb = strlen(json_string_value(b));
        char *s = malloc(la + lb + 2);
        if (!s)
            return ERR_NOMEM;
        memcpy(s, json_string_value(a), la);
        s[la] = ' ';
        memcpy(s + la + 1, json_string_value(b), lb + 1);
        json_t *js = json_string(s);
        free(s);
        if (!js || json_array_set_new((json_t *)merges, i, js))
            return ERR_NOMEM;
        v->merges[i] = json_string_value(json_array_get(merges, i));
    }
    tok_t *tk = NULL;
    int rc = tok_load(&tk, path, err, errlen);
    if (rc)
        return rc;
    v->add_bos = tok_wants_bos(tk);
    tok_destroy(&tk);
    return vocab_pad(v);
}

/* ------------------------------------------------------------------ tensors */

struct gt {
    char name[64];
    const float *src;    /* [rows, cols] row-major (Hugging Face's [out, in]) */
    float *owned;        /* a permuted copy (q, k) or the rope factors, freed at the end */
    int64_t rows, cols;  /* cols 0: a vector of `rows` */
    int type;            /* GGML_F32 or GGML_F16 */
    uint64_t off, bytes; /* in the data section */
};

/* q or k of `heads` heads of D rows each: row h*D + 2i + j takes Hugging Face's row
 * h*D + j*D/2 + i (convert_hf_to_gguf.py's LlamaModel.permute), so llama.cpp's rotation of
 * adjacent pairs meets rotate_half's pairs (i, i + D/2). */
static float *permute_rows(const float *w, int heads, int D, int64_t cols)
{
    float *o = malloc((size_t)heads * D * (size_t)cols * sizeof(float));
    if (!o)
        return NULL;
    int half = D / 2;
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++)
                memcpy(o + ((size_t)h * D + 2 * i + j) * cols,
                       w + ((size_t)h * D + (size_t)j * half + i) * cols,
                       (size_t)cols * sizeof(float));
    return o;
}

/* llama.cpp divides each frequency by these: plain over scaled inv_freq, as
 * convert_hf_to_gguf.py's rope_factors for llama3. */
static float *rope_factors(const struct nn_config *c)
{
    int half = c->hidden_size / c->num_attention_heads / 2;
    float *f = malloc((size_t)half * 2 * sizeof(float));
    if (!f)
        return NULL;
    struct nn_config plain = *c;
    memset(&plain.rope_scaling, 0, sizeof plain.rope_scaling);
    nn_config_rope_inv_freq(&plain, 0, f + half);
    nn_config_rope_inv_freq(c, 0, f);
    for (int i = 0; i < half; i++)
        f[i] = f[half + i] / f[i];
    return f;
}

static const char *const layer_names[][2] = {
    {"self_attn.q_proj", "attn_q"},
    {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"},
    {"mlp.gate_proj", "ffn_gate"},
    {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
    {"input_layernorm", "attn_norm"},
    {"post_attention_layernorm", "ffn_norm"},
};

/* llama.cpp's name for a Hugging Face tensor name, or NULL (score.weight). */
static bool gguf_name(const char *hf, char *out, size_t n)
{
    if (!strcmp(hf, "model.embed_tokens.weight"))
        return snprintf(out, n, "token_embd.weight") > 0;
    if (!strcmp(hf, "model.norm.weight"))
        return snprintf(out, n, "output_norm.weight") > 0;
    if (!strcmp(hf, "lm_head.weight"))
        return snprintf(out, n, "output.weight") > 0;
    int l, used = 0;
    if (sscanf(hf, "model.layers.%d.%n", &l, &used) == 1 && used > 0) {
        for (size_t i = 0; i < sizeof layer_names / sizeof layer_names[0]; i++) {
            size_t k = strlen(layer_names[i][0]);
            if (!strncmp(hf + used, layer_names[i][0], k) && !strcmp(hf + used + k, ".weight"))
                return snprintf(out, n, "blk.%d.%s.weight", l, layer_names[i][1]) > 0;
        }
    }
    return false;
}

/* ------------------------------------------------------------------ writing */

static int write_all(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_tensor(int fd, const struct gt *t)
{
    size_t n = (size_t)t->rows * (size_t)(t->cols ? t->cols : 1);
    if (t->type == GGML_F32) {
        unsigned char buf[4096];
        for (size_t i = 0; i < n;) {
            size_t k = 0;
            for (; i < n && k + 4 <= sizeof buf; i++, k += 4) {
                uint32_t u;
                memcpy(&u, &t->src[i], 4);
                buf[k] = (unsigned char)u;
                buf[k + 1] = (unsigned char)(u >> 8);
                buf[k + 2] = (unsigned char)(u >> 16);
                buf[k + 3] = (unsigned char)(u >> 24);
            }
            if (write_all(fd, buf, k))
                return -1;
        }
        return 0;
    }
    unsigned char buf[4096];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; i < n && k + 2 <= sizeof buf; i++, k += 2) {
            unsigned short h = nn_f32_to_f16(t->src[i]);
            buf[k] = (unsigned char)h;
            buf[k + 1] = (unsigned char)(h >> 8);
        }
        if (write_all(fd, buf, k))
            return -1;
    }
    return 0;
}

static const unsigned char zeros[ALIGN];

static uint64_t align_up(uint64_t x)
{
    return (x + ALIGN - 1) / ALIGN * ALIGN;
}

/* Everything but the tensor data: the header, metadata and tensor infos, padded. */
static void build_header(struct meta *mt, const struct nn_config *c, const struct vocab *v,
                         const char *name, enum nn_gguf_dtype dtype, struct gt *ts, size_t nt,
                         struct out *h)
{
    kv_str(mt, "general.architecture", "llama");
    kv_str(mt, "general.name", name);
    kv_u32(mt, "general.file_type", dtype == NN_GGUF_F16 ? 1 : 0);
    kv_u32(mt, "llama.vocab_size", (uint32_t)c->vocab_size);
    kv_u32(mt, "llama.context_length", (uint32_t)c->max_position_embeddings);
    kv_u32(mt, "llama.embedding_length", (uint32_t)c->hidden_size);
    kv_u32(mt, "llama.block_count", (uint32_t)c->num_hidden_layers);
    kv_u32(mt, "llama.feed_forward_length", (uint32_t)c->intermediate_size);
    kv_u32(mt, "llama.attention.head_count", (uint32_t)c->num_attention_heads);
    kv_u32(mt, "llama.attention.head_count_kv", (uint32_t)c->num_key_value_heads);
    kv_f32(mt, "llama.rope.freq_base", c->rope_theta);
    kv_u32(mt, "llama.rope.dimension_count", (uint32_t)(c->hidden_size / c->num_attention_heads));
    kv_f32(mt, "llama.attention.layer_norm_rms_epsilon", c->rms_norm_eps);
    if (c->rope_scaling.type == NN_ROPE_LINEAR) {
        kv_str(mt, "llama.rope.scaling.type", "linear");
        kv_f32(mt, "llama.rope.scaling.factor", c->rope_scaling.factor);
    }
    kv_str(mt, "tokenizer.ggml.model", "gpt2");
    kv_str(mt, "tokenizer.ggml.pre", v->pre);
    kv_arr(mt, "tokenizer.ggml.tokens", GG_STR, (uint64_t)v->V);
    for (int i = 0; i < v->V; i++)
        put_str(&mt->o, v->tok[i], strlen(v->tok[i]));
    kv_arr(mt, "tokenizer.ggml.token_type", GG_I32, (uint64_t)v->V);
    for (int i = 0; i < v->V; i++)
        put_u32(&mt->o, (uint32_t)v->type[i]);
    kv_arr(mt, "tokenizer.ggml.merges", GG_STR, v->nmerges);
    for (size_t i = 0; i < v->nmerges; i++)
        put_str(&mt->o, v->merges[i], strlen(v->merges[i]));
    const struct {
        const char *key;
        int id;
    } ids[] = {{"tokenizer.ggml.bos_token_id", c->bos_token_id},
               {"tokenizer.ggml.eos_token_id", c->eos_token_id},
               {"tokenizer.ggml.padding_token_id", c->pad_token_id}};
    for (size_t i = 0; i < 3; i++)
        if (ids[i].id >= 0)
            kv_u32(mt, ids[i].key, (uint32_t)ids[i].id);
    kv_bool(mt, "tokenizer.ggml.add_bos_token", v->add_bos);

    put(h, "GGUF", 4);
    put_u32(h, 3);
    put_u64(h, nt);
    put_u64(h, mt->count);
    put(h, mt->o.p, mt->o.n);
    h->oom |= mt->o.oom;
    uint64_t off = 0;
    for (size_t i = 0; i < nt; i++) {
        struct gt *t = &ts[i];
        put_str(h, t->name, strlen(t->name));
        put_u32(h, t->cols ? 2 : 1);
        if (t->cols) {
            put_u64(h, (uint64_t)t->cols); /* ne[0]: the contiguous dimension */
            put_u64(h, (uint64_t)t->rows);
        } else {
            put_u64(h, (uint64_t)t->rows);
        }
        put_u32(h, (uint32_t)t->type);
        t->off = off;
        t->bytes =
            (uint64_t)t->rows * (uint64_t)(t->cols ? t->cols : 1) * (t->type == GGML_F16 ? 2u : 4u);
        put_u64(h, off);
        off = align_up(off + t->bytes);
    }
    put(h, zeros, (size_t)(align_up(h->n) - h->n));
}

int nn_gguf_write(const nn_model_t *m, const char *tokenizer_json, const char *name,
                  enum nn_gguf_dtype dtype, const char *path, char *err, size_t errlen)
{
    const struct nn_config *c = nn_model_config(m);
    if (c->rope_scaling.type == NN_ROPE_DYNAMIC) {
        err_fmt(err, errlen,
                "%s: the model's rope_scaling is dynamic NTK, which llama.cpp does not implement "
                "(it would compute other logits past %d tokens); not exported",
                path, c->rope_scaling.original_max_position_embeddings);
        return ERR_INVAL;
    }
    if (!strcmp(c->tokenizer, "bpe") && !tokenizer_json) {
        err_fmt(err, errlen, "%s: the model's tokenizer is bpe but no tokenizer.json was given",
                path);
        return ERR_INVAL;
    }
    struct vocab v = {0};
    json_t *tjson = NULL;
    struct gt *ts = NULL;
    struct meta mt = {0};
    struct out h = {0};
    char *tmp = NULL;
    int fd = -1;
    size_t nt = 0;
    int rc = strcmp(c->tokenizer, "bpe")
                 ? vocab_byte(&v, c->vocab_size)
                 : vocab_bpe(&v, c->vocab_size, tokenizer_json, &tjson, err, errlen);
    if (rc) {
        if (rc == ERR_NOMEM)
            err_fmt(err, errlen, "%s: out of memory", path);
        goto out;
    }
    int D = c->hidden_size / c->num_attention_heads;
    ts = calloc(nn_model_num_tensors(m) + 1, sizeof *ts);
    rc = ERR_NOMEM;
    if (!ts)
        goto nomem;
    if (c->rope_scaling.type == NN_ROPE_LLAMA3) {
        struct gt *t = &ts[nt++];
        snprintf(t->name, sizeof t->name, "rope_freqs.weight");
        t->owned = rope_factors(c);
        t->src = t->owned;
        t->rows = D / 2;
        t->type = GGML_F32;
        if (!t->owned)
            goto nomem;
    }
    for (size_t i = 0; i < nn_model_num_tensors(m); i++) {
        const struct nn_tensor *x = nn_model_tensor(m, i);
        struct gt *t = &ts[nt];
        if (!gguf_name(x->name, t->name, sizeof t->name))
            continue; /* score.weight */
        nt++;
        t->src = x->data;
        t->rows = x->shape[0];
        t->cols = x->ndim == 2 ? x->shape[1] : 0;
        t->type = x->ndim == 2 && dtype == NN_GGUF_F16 ? GGML_F16 : GGML_F32;
        bool q = strstr(t->name, ".attn_q.") != NULL, k = strstr(t->name, ".attn_k.") != NULL;
        if (q || k) {
            t->owned = permute_rows(x->data, q ? c->num_attention_heads : c->num_key_value_heads, D,
                                    t->cols);
            t->src = t->owned;
            if (!t->owned)
                goto nomem;
        }
    }
    build_header(&mt, c, &v, name, dtype, ts, nt, &h);
    if (h.oom)
        goto nomem;
    size_t plen = strlen(path);
    tmp = malloc(plen + 16);
    if (!tmp)
        goto nomem;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    fd = mkstemp(tmp);
    if (fd < 0) {
        err_fmt(err, errlen, "%s: cannot create a temporary file beside it: %s", path,
                strerror(errno));
        rc = ERR_IO;
        goto out;
    }
    rc = ERR_IO;
    /* readable by others (Ollama's server runs as its own user); mkstemp made it 0600 */
    if (fchmod(fd, 0644) != 0 || write_all(fd, h.p, h.n))
        goto ioerr;
    for (size_t i = 0; i < nt; i++) {
        if (write_tensor(fd, &ts[i]) ||
            write_all(fd, zeros, (size_t)(align_up(ts[i].bytes) - ts[i].bytes)))
            goto ioerr;
    }
    if (fsync(fd) != 0)
        goto ioerr;
    int cr = close(fd);
    fd = -1;
    if (cr != 0 || rename(tmp, path) != 0)
        goto ioerr;
    rc = ERR_OK;
    goto out;
ioerr:
    err_fmt(err, errlen, "%s: writing: %s", path, strerror(errno));
    goto out;
nomem:
    err_fmt(err, errlen, "%s: out of memory", path);
    rc = ERR_NOMEM;
out:
    if (fd >= 0)
        close(fd);
    if (rc && tmp)
        unlink(tmp);
    free(tmp);
    for (size_t i = 0; ts && i < nt; i++)
        free(ts[i].owned);
    free(ts);
    free(h.p);
    free(mt.o.p);
    vocab_free(&v);
    json_decref(tjson);
    return rc;
}
