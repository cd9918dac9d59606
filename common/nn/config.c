/* config.c - LlamaConfig and its config.json. See config.h.
 * Loading follows transformers' LlamaConfig defaults for optional keys (max_position_embeddings
 * 2048, rms_norm_eps 1e-6, rope_theta 10000, tie_word_embeddings false, bos 1, eos 2, pad none),
 * so that one config.json means one model here and there. Features this engine does not
 * implement (attention or MLP biases, another activation, a head_dim other than hidden/heads, a
 * rope_scaling type other than linear, dynamic and llama3) are refused by name rather than
 * silently ignored. rope_scaling (or transformers 5's rope_parameters) is read as
 * modeling_rope_utils reads it: "rope_type", or the older "type". */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "tokenizer.h"

void nn_config_default(struct nn_config *c)
{
    memset(c, 0, sizeof *c);
    c->vocab_size = TOK_BYTE_VOCAB; /* 256 bytes + <bos> <eos> <pad> */
    c->hidden_size = 128;
    c->intermediate_size = 352; /* ~ 8/3 x 128, rounded to a multiple of 32 */
    c->num_hidden_layers = 4;
    c->num_attention_heads = 4;
    c->num_key_value_heads = 2;
    c->max_position_embeddings = 256;
    c->rms_norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->tie_word_embeddings = true;
    c->bos_token_id = TOK_BYTE_BOS;
    c->eos_token_id = TOK_BYTE_EOS;
    c->pad_token_id = TOK_BYTE_PAD;
    c->reward_head = false;
    snprintf(c->tokenizer, sizeof c->tokenizer, "byte");
}

/* The rope_scaling fields of an already sized config. */
static int validate_rope(const struct nn_config *c, const char *pfx, char *err, size_t errlen)
{
    const struct nn_rope_scaling *r = &c->rope_scaling;
    if (r->type == NN_ROPE_DEFAULT)
        return ERR_OK;
    if (r->type != NN_ROPE_LINEAR && r->type != NN_ROPE_DYNAMIC && r->type != NN_ROPE_LLAMA3) {
        err_fmt(err, errlen, "%srope_scaling type %d is not one this engine implements", pfx,
                (int)r->type);
        return ERR_INVAL;
    }
    const char *tn = nn_rope_type_name(r->type);
    if (!(r->factor >= 1.0f) || !isfinite(r->factor)) {
        err_fmt(err, errlen, "%srope_scaling (%s) factor is %g, must be a finite number >= 1", pfx,
                tn, (double)r->factor);
        return ERR_INVAL;
    }
    if (r->type == NN_ROPE_LLAMA3) {
        if (!(r->low_freq_factor > 0.0f) || !isfinite(r->high_freq_factor) ||
            !(r->high_freq_factor > r->low_freq_factor)) {
            err_fmt(err, errlen,
                    "%srope_scaling (llama3) low_freq_factor %g and high_freq_factor %g: need 0 < "
                    "low < high",
                    pfx, (double)r->low_freq_factor, (double)r->high_freq_factor);
            return ERR_INVAL;
        }
    }
    if (r->type != NN_ROPE_LINEAR && r->original_max_position_embeddings <= 0) {
        err_fmt(err, errlen,
                "%srope_scaling (%s) original_max_position_embeddings is %d, must be "
                "positive",
                pfx, tn, r->original_max_position_embeddings);
        return ERR_INVAL;
    }
    if (r->type == NN_ROPE_DYNAMIC) {
        if (r->original_max_position_embeddings > c->max_position_embeddings) {
            err_fmt(err, errlen,
                    "%srope_scaling (dynamic) original context %d is past max_position_embeddings "
                    "%d",
                    pfx, r->original_max_position_embeddings, c->max_position_embeddings);
            return ERR_INVAL;
        }
        if (c->hidden_size / c->num_attention_heads > NN_ROPE_DYNAMIC_MAX_HEAD_DIM) {
            err_fmt(err, errlen, "%srope_scaling (dynamic) needs a head dim of at most %d, not %d",
                    pfx, NN_ROPE_DYNAMIC_MAX_HEAD_DIM, c->hidden_size / c->num_attention_heads);
            return ERR_INVAL;
        }
    }
    return ERR_OK;
}

/* Validation with a prefix ("path: " or "") for the messages. */
static int validate(const struct nn_config *c, const char *pfx, char *err, size_t errlen)
{
#define POSITIVE(field)                                                                            \
    if (c->field <= 0) {                                                                           \
        err_fmt(err, errlen, "%s" #field " is %d, must be positive", pfx, c->field);               \
        return ERR_INVAL;                                                                          \
    }
    POSITIVE(vocab_size)
    POSITIVE(hidden_size)
    POSITIVE(intermediate_size)
    POSITIVE(num_hidden_layers)
    POSITIVE(num_attention_heads)
    POSITIVE(num_key_value_heads)
    POSITIVE(max_position_embeddings)
#undef POSITIVE
    if (c->hidden_size % c->num_attention_heads) {
        err_fmt(err, errlen, "%snum_attention_heads %d does not divide hidden_size %d", pfx,
                c->num_attention_heads, c->hidden_size);
        return ERR_INVAL;
    }
    if ((c->hidden_size / c->num_attention_heads) % 2) {
        err_fmt(err, errlen, "%shidden_size / num_attention_heads = %d is odd (rotary needs pairs)",
                pfx, c->hidden_size / c->num_attention_heads);
        return ERR_INVAL;
    }
    if (c->num_attention_heads % c->num_key_value_heads) {
        err_fmt(err, errlen, "%snum_key_value_heads %d does not divide num_attention_heads %d", pfx,
                c->num_key_value_heads, c->num_attention_heads);
        return ERR_INVAL;
    }
    if (!(c->rms_norm_eps > 0.0f) || !isfinite(c->rms_norm_eps)) {
        err_fmt(err, errlen, "%srms_norm_eps is %g, must be positive and finite", pfx,
                (double)c->rms_norm_eps);
        return ERR_INVAL;
    }
    if (!(c->rope_theta > 0.0f) || !isfinite(c->rope_theta)) {
        err_fmt(err, errlen, "%srope_theta is %g, must be positive and finite", pfx,
                (double)c->rope_theta);
        return ERR_INVAL;
    }
    int rc = validate_rope(c, pfx, err, errlen);
    if (rc)
        return rc;
    const struct {
        const char *name;
        int id;
    } ids[] = {{"bos_token_id", c->bos_token_id},
               {"eos_token_id", c->eos_token_id},
               {"pad_token_id", c->pad_token_id}};
    for (size_t i = 0; i < 3; i++) {
        if (ids[i].id < -1 || ids[i].id >= c->vocab_size) {
            err_fmt(err, errlen, "%s%s is %d, outside the vocabulary [0, %d) (-1: none)", pfx,
                    ids[i].name, ids[i].id, c->vocab_size);
            return ERR_INVAL;
        }
    }
    if (memchr(c->tokenizer, '\0', sizeof c->tokenizer) == NULL ||
        (strcmp(c->tokenizer, "byte") != 0 && strcmp(c->tokenizer, "bpe") != 0)) {
        err_fmt(err, errlen,
                "%stokenizer (oaif_tokenizer) is \"%.31s\", must be \"byte\" or \"bpe\"", pfx,
                c->tokenizer);
        return ERR_INVAL;
    }
    if (strcmp(c->tokenizer, "byte") == 0 && c->vocab_size < TOK_BYTE_VOCAB) {
        err_fmt(err, errlen, "%svocab_size %d is too small for the byte tokenizer (needs %d)", pfx,
                c->vocab_size, TOK_BYTE_VOCAB);
        return ERR_INVAL;
    }
    /* the parameter count must fit a size_t and the largest tensor an int index per row */
    if (nn_config_num_params(c) == 0) {
        err_fmt(err, errlen, "%sthe model is too large to address", pfx);
        return ERR_INVAL;
    }
    return ERR_OK;
}

int nn_config_validate(const struct nn_config *c, char *err, size_t errlen)
{
    if (!c) {
        err_fmt(err, errlen, "no config");
        return ERR_INVAL;
    }
    return validate(c, "", err, errlen);
}

/* ---------------------------------------------------------------- load */

/* An integer key: absent leaves *dst (ERR_NOTFOUND), else ERR_INVAL on a wrong type or range. */
static int get_int(const json_t *root, const char *key, int *dst, const char *path, char *err,
                   size_t errlen)
{
    const json_t *v = json_object_get(root, key);
    if (!v)
        return ERR_NOTFOUND;
    /* 4096.0 is accepted (some exporters write floats); 4096.5 is not */
    double d;
    if (json_is_integer(v))
        d = (double)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)))
        d = json_real_value(v);
    else {
        err_fmt(err, errlen, "%s: \"%s\" must be an integer", path, key);
        return ERR_INVAL;
    }
    if (d < -2147483648.0 || d > 2147483647.0) {
        err_fmt(err, errlen, "%s: \"%s\" is out of range", path, key);
        return ERR_INVAL;
    }
    *dst = (int)d;
    return ERR_OK;
}

static int get_float(const json_t *root, const char *key, float *dst, const char *path, char *err,
                     size_t errlen)
{
    const json_t *v = json_object_get(root, key);
    if (!v)
        return ERR_NOTFOUND;
    if (!json_is_number(v)) {
        err_fmt(err, errlen, "%s: \"%s\" must be a number", path, key);
        return ERR_INVAL;
    }
    *dst = (float)json_number_value(v);
    return ERR_OK;
}

static int get_bool(const json_t *root, const char *key, bool *dst, const char *path, char *err,
                    size_t errlen)
{
    const json_t *v = json_object_get(root, key);
    if (!v)
        return ERR_NOTFOUND;
    if (!json_is_boolean(v)) {
        err_fmt(err, errlen, "%s: \"%s\" must be true or false", path, key);
        return ERR_INVAL;
    }
    *dst = json_is_true(v);
    return ERR_OK;
}

/* A token id: an integer, null (none: -1), or a list whose first element is used (eos lists). */
static int get_token_id(const json_t *root, const char *key, int *dst, const char *path, char *err,
                        size_t errlen)
{
    const json_t *v = json_object_get(root, key);
    if (!v)
        return ERR_NOTFOUND;
    if (json_is_null(v)) {
        *dst = -1;
        return ERR_OK;
    }
    if (json_is_array(v)) {
        if (json_array_size(v) == 0) {
            *dst = -1;
            return ERR_OK;
        }
        v = json_array_get(v, 0);
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 2147483647) {
        err_fmt(err, errlen, "%s: \"%s\" must be a non-negative integer, a list of them, or null",
                path, key);
        return ERR_INVAL;
    }
    *dst = (int)json_integer_value(v);
    return ERR_OK;
}

/* Refuse features the engine does not implement. */
static int check_unsupported(const json_t *root, const struct nn_config *c, const char *path,
                             char *err, size_t errlen)
{
    const char *bools[] = {"attention_bias", "mlp_bias"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(root, bools[i]);
        if (v && !json_is_false(v) && !json_is_null(v)) {
            err_fmt(err, errlen, "%s: \"%s\" is set: biases are not supported", path, bools[i]);
            return ERR_INVAL;
        }
    }
    const json_t *act = json_object_get(root, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0)) {
        err_fmt(err, errlen, "%s: \"hidden_act\" must be \"silu\" (SwiGLU)", path);
        return ERR_INVAL;
    }
    const json_t *mt = json_object_get(root, "model_type");
    if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), "llama") != 0)) {
        err_fmt(err, errlen, "%s: \"model_type\" is %s%s%s, only \"llama\" is supported", path,
                json_is_string(mt) ? "\"" : "",
                json_is_string(mt) ? json_string_value(mt) : "not a string",
                json_is_string(mt) ? "\"" : "");
        return ERR_INVAL;
    }
    const json_t *hd = json_object_get(root, "head_dim");
    if (hd && !json_is_null(hd) && c->num_attention_heads > 0 &&
        (!json_is_integer(hd) ||
         json_integer_value(hd) != c->hidden_size / c->num_attention_heads)) {
        err_fmt(err, errlen, "%s: \"head_dim\" must equal hidden_size / num_attention_heads (%d)",
                path, c->hidden_size / c->num_attention_heads);
        return ERR_INVAL;
    }
    return ERR_OK;
}

/* rope_scaling: {"rope_type" (or "type"): ..., "factor": ..., ...} or null; transformers 5
 * writes it as rope_parameters, with rope_theta inside. The keys each type needs are required
 * (transformers raises a KeyError without them); dynamic moves the context limit to
 * max_position_embeddings x factor (transformers has none, the frequencies just keep growing). */
static int get_rope(const json_t *root, struct nn_config *n, const char *path, char *err,
                    size_t errlen)
{
    const char *field = "rope_scaling";
    const json_t *rs = json_object_get(root, field);
    if (!rs || json_is_null(rs)) {
        field = "rope_parameters";
        rs = json_object_get(root, field);
    }
    if (!rs || json_is_null(rs))
        return ERR_OK;
    if (!json_is_object(rs)) {
        err_fmt(err, errlen, "%s: \"%s\" must be an object or null", path, field);
        return ERR_INVAL;
    }
    const char *tkey = "rope_type";
    const json_t *tv = json_object_get(rs, tkey);
    if (!tv) {
        tkey = "type";
        tv = json_object_get(rs, tkey);
    }
    if (!json_is_string(tv)) {
        err_fmt(err, errlen, "%s: \"%s\" has no \"rope_type\" (or \"type\") string", path, field);
        return ERR_INVAL;
    }
    const char *type = json_string_value(tv);
    struct nn_rope_scaling r = {0};
    if (!strcmp(type, "default"))
        r.type = NN_ROPE_DEFAULT;
    else if (!strcmp(type, "linear"))
        r.type = NN_ROPE_LINEAR;
    else if (!strcmp(type, "dynamic"))
        r.type = NN_ROPE_DYNAMIC;
    else if (!strcmp(type, "llama3"))
        r.type = NN_ROPE_LLAMA3;
    else {
        err_fmt(err, errlen,
                "%s: \"%s\" %s \"%.40s\" is not supported (this engine implements \"linear\", "
                "\"dynamic\" and \"llama3\"; it would compute other rotary frequencies than "
                "transformers)",
                path, field, tkey, type);
        return ERR_INVAL;
    }
    int rc = get_float(rs, "rope_theta", &n->rope_theta, path, err, errlen);
    if (rc && rc != ERR_NOTFOUND)
        return rc;
    const struct {
        const char *key;
        float *dst;
        bool need;
    } fl[] = {{"factor", &r.factor, r.type != NN_ROPE_DEFAULT},
              {"low_freq_factor", &r.low_freq_factor, r.type == NN_ROPE_LLAMA3},
              {"high_freq_factor", &r.high_freq_factor, r.type == NN_ROPE_LLAMA3}};
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
        if (!fl[i].need)
            continue;
        rc = get_float(rs, fl[i].key, fl[i].dst, path, err, errlen);
        if (rc == ERR_NOTFOUND)
            err_fmt(err, errlen, "%s: \"%s\" (%s) needs \"%s\"", path, field, type, fl[i].key);
        if (rc)
            return ERR_INVAL;
    }
    if (r.type == NN_ROPE_LLAMA3) {
        rc = get_int(rs, "original_max_position_embeddings", &r.original_max_position_embeddings,
                     path, err, errlen);
        if (rc == ERR_NOTFOUND)
            err_fmt(err, errlen, "%s: \"%s\" (llama3) needs \"original_max_position_embeddings\"",
                    path, field);
        if (rc)
            return ERR_INVAL;
    }
    if (r.type == NN_ROPE_DYNAMIC && r.factor >= 1.0f && isfinite(r.factor)) {
        double ctx = floor((double)n->max_position_embeddings * r.factor);
        if (ctx > 2147483647.0) {
            err_fmt(err, errlen,
                    "%s: \"%s\" (dynamic) max_position_embeddings %d x factor %g is too long a "
                    "context",
                    path, field, n->max_position_embeddings, (double)r.factor);
            return ERR_INVAL;
        }
        r.original_max_position_embeddings = n->max_position_embeddings;
        n->max_position_embeddings = (int)ctx;
    }
    n->rope_scaling = r;
    return ERR_OK;
}

int nn_config_load(struct nn_config *c, const char *path, char *err, size_t errlen)
{
    if (!c || !path) {
        err_fmt(err, errlen, "nn_config_load: no config or no path");
        return ERR_INVAL;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        err_fmt(err, errlen, "%s: %s", path, strerror(e));
        return e == ENOENT ? ERR_NOTFOUND : ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        err_fmt(err, errlen, "%s: not a regular file", path);
        return ERR_IO;
    }
    if (st.st_size > (off_t)16 << 20) {
        err_fmt(err, errlen, "%s: %lld bytes is too large for a config.json", path,
                (long long)st.st_size);
        return ERR_TOOBIG;
    }
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        err_fmt(err, errlen, "%s:%d:%d: not valid JSON: %s", path, jerr.line, jerr.column,
                jerr.text);
        return ERR_PROTO;
    }
    int rc = ERR_OK;
    if (!json_is_object(root)) {
        err_fmt(err, errlen, "%s: not a JSON object", path);
        rc = ERR_INVAL;
        goto out_root;
    }
    struct nn_config n;
    memset(&n, 0, sizeof n);
    /* transformers' LlamaConfig defaults for the optional keys */
    n.max_position_embeddings = 2048;
    n.rms_norm_eps = 1e-6f;
    n.rope_theta = 10000.0f;
    n.tie_word_embeddings = false;
    n.bos_token_id = 1;
    n.eos_token_id = 2;
    n.pad_token_id = -1;
    n.reward_head = false;
    snprintf(n.tokenizer, sizeof n.tokenizer, "bpe");

    const struct {
        const char *key;
        int *dst;
    } required[] = {
        {"vocab_size", &n.vocab_size},
        {"hidden_size", &n.hidden_size},
        {"intermediate_size", &n.intermediate_size},
        {"num_hidden_layers", &n.num_hidden_layers},
        {"num_attention_heads", &n.num_attention_heads},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        rc = get_int(root, required[i].key, required[i].dst, path, err, errlen);
        if (rc == ERR_NOTFOUND) {
            err_fmt(err, errlen, "%s: required key \"%s\" is missing", path, required[i].key);
            rc = ERR_INVAL;
        }
        if (rc)
            goto out_root;
    }
    n.num_key_value_heads = n.num_attention_heads;
#define OPTIONAL(call)                                                                             \
    rc = call;                                                                                     \
    if (rc && rc != ERR_NOTFOUND)                                                                  \
        goto out_root;
    OPTIONAL(get_int(root, "num_key_value_heads", &n.num_key_value_heads, path, err, errlen))
    OPTIONAL(
        get_int(root, "max_position_embeddings", &n.max_position_embeddings, path, err, errlen))
    OPTIONAL(get_float(root, "rms_norm_eps", &n.rms_norm_eps, path, err, errlen))
    OPTIONAL(get_float(root, "rope_theta", &n.rope_theta, path, err, errlen))
    OPTIONAL(get_bool(root, "tie_word_embeddings", &n.tie_word_embeddings, path, err, errlen))
    OPTIONAL(get_token_id(root, "bos_token_id", &n.bos_token_id, path, err, errlen))
    OPTIONAL(get_token_id(root, "eos_token_id", &n.eos_token_id, path, err, errlen))
    OPTIONAL(get_token_id(root, "pad_token_id", &n.pad_token_id, path, err, errlen))
    OPTIONAL(get_bool(root, "oaif_reward_head", &n.reward_head, path, err, errlen))
#undef OPTIONAL
    const json_t *tk = json_object_get(root, "oaif_tokenizer");
    if (tk) {
        if (!json_is_string(tk) || strlen(json_string_value(tk)) >= sizeof n.tokenizer) {
            err_fmt(err, errlen, "%s: \"oaif_tokenizer\" must be \"byte\" or \"bpe\"", path);
            rc = ERR_INVAL;
            goto out_root;
        }
        snprintf(n.tokenizer, sizeof n.tokenizer, "%s", json_string_value(tk));
    }
    rc = check_unsupported(root, &n, path, err, errlen);
    if (rc)
        goto out_root;
    rc = get_rope(root, &n, path, err, errlen);
    if (rc)
        goto out_root;
    char pfx[512];
    snprintf(pfx, sizeof pfx, "%s: ", path);
    rc = validate(&n, pfx, err, errlen);
    if (rc)
        goto out_root;
    *c = n;
out_root:
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------- save */

/* The shortest decimal that reads back as the same float, as a double: 1e-5f is written
 * "1e-05", not 9.9999997473787516e-06. */
static double float_for_json(float f)
{
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f)
            return strtod(buf, NULL);
    }
    return (double)f;
}

static json_t *token_json(int id)
{
    return id >= 0 ? json_integer(id) : json_null();
}

/* rope_scaling as transformers writes it (null without one); dynamic puts its original context
 * back into max_position_embeddings. Nonzero when out of memory. */
static int rope_json(const struct nn_config *c, json_t *root)
{
    const struct nn_rope_scaling *r = &c->rope_scaling;
    if (r->type == NN_ROPE_DEFAULT)
        return json_object_set_new(root, "rope_scaling", json_null());
    json_t *o = json_pack("{s:s, s:f}", "rope_type", nn_rope_type_name(r->type), "factor",
                          float_for_json(r->factor));
    if (o && r->type == NN_ROPE_LLAMA3 &&
        (json_object_set_new(o, "low_freq_factor", json_real(float_for_json(r->low_freq_factor))) ||
         json_object_set_new(o, "high_freq_factor",
                             json_real(float_for_json(r->high_freq_factor))) ||
         json_object_set_new(o, "original_max_position_embeddings",
                             json_integer(r->original_max_position_embeddings)))) {
        json_decref(o);
        return -1;
    }
    if (o && r->type == NN_ROPE_DYNAMIC &&
        json_object_set_new(root, "max_position_embeddings",
                            json_integer(r->original_max_position_embeddings))) {
        json_decref(o);
        return -1;
    }
    return o ? json_object_set_new(root, "rope_scaling", o) : -1;
}

int nn_config_save(const struct nn_config *c, const char *path, char *err, size_t errlen)
{
    if (!c || !path) {
        err_fmt(err, errlen, "nn_config_save: no config or no path");
        return ERR_INVAL;
    }
    int rc = validate(c, "", err, errlen);
    if (rc)
        return rc;
    json_t *root = json_pack(
        "{s:[s], s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:b, s:o, s:o, s:o,"
        " s:b, s:b, s:f, s:b, s:s}",
        "architectures", "LlamaForCausalLM", "model_type", "llama", "torch_dtype", "float32",
        "hidden_act", "silu", "vocab_size", c->vocab_size, "hidden_size", c->hidden_size,
        "intermediate_size", c->intermediate_size, "num_hidden_layers", c->num_hidden_layers,
        "num_attention_heads", c->num_attention_heads, "num_key_value_heads",
        c->num_key_value_heads, "max_position_embeddings", c->max_position_embeddings,
        "rms_norm_eps", float_for_json(c->rms_norm_eps), "rope_theta",
        float_for_json(c->rope_theta), "tie_word_embeddings", (int)c->tie_word_embeddings,
        "bos_token_id", token_json(c->bos_token_id), "eos_token_id", token_json(c->eos_token_id),
        "pad_token_id", token_json(c->pad_token_id), "attention_bias", 0, "mlp_bias", 0,
        "initializer_range", 0.02, "oaif_reward_head", (int)c->reward_head, "oaif_tokenizer",
        c->tokenizer);
    if (root && rope_json(c, root)) {
        json_decref(root);
        root = NULL;
    }
    if (!root) {
        err_fmt(err, errlen, "%s: out of memory", path);
        return ERR_NOMEM;
    }
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    json_decref(root);
    if (!text) {
        err_fmt(err, errlen, "%s: out of memory", path);
        return ERR_NOMEM;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        free(text);
        err_fmt(err, errlen, "%s: out of memory", path);
        return ERR_NOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        err_fmt(err, errlen, "%s: cannot create a temporary file beside it: %s", path,
                strerror(errno));
        rc = ERR_IO;
        goto out_free;
    }
    size_t len = strlen(text);
    text[len] = '\n'; /* json_dumps gives no final newline; its NUL becomes one */
    len++;
    const char *p = text;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            err_fmt(err, errlen, "%s: writing %s: %s", path, tmp, strerror(errno));
            rc = ERR_IO;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (!rc && fsync(fd) != 0) {
        err_fmt(err, errlen, "%s: fsync %s: %s", path, tmp, strerror(errno));
        rc = ERR_IO;
    }
    if (close(fd) != 0 && !rc) {
        err_fmt(err, errlen, "%s: close %s: %s", path, tmp, strerror(errno));
        rc = ERR_IO;
    }
    if (!rc && rename(tmp, path) != 0) {
        err_fmt(err, errlen, "%s: rename from %s: %s", path, tmp, strerror(errno));
        rc = ERR_IO;
    }
    if (rc)
        unlink(tmp);
out_free:
    free(tmp);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- rope */

const char *nn_rope_type_name(enum nn_rope_type t)
{
    switch (t) {
    case NN_ROPE_LINEAR:
        return "linear";
    case NN_ROPE_DYNAMIC:
        return "dynamic";
    case NN_ROPE_LLAMA3:
        return "llama3";
    default:
        return "default";
    }
}

bool nn_config_rope_grows(const struct nn_config *c, int seq_len)
{
    return c->rope_scaling.type == NN_ROPE_DYNAMIC &&
           seq_len > c->rope_scaling.original_max_position_embeddings;
}

/* In fp32 throughout, step for step as modeling_rope_utils: _compute_default_rope_parameters
 * (1 / base^(2i/D)), then _compute_linear_scaling_rope_parameters (/ factor),
 * _compute_dynamic_ntk_parameters (base x (factor x seq_len / original - (factor - 1))^(D/(D-2))
 * for seq_len past the original) or _compute_llama3_parameters (by wavelength 2 pi / inv_freq). */
void nn_config_rope_inv_freq(const struct nn_config *c, int seq_len, float *inv)
{
    const struct nn_rope_scaling *r = &c->rope_scaling;
    int D = c->hidden_size / c->num_attention_heads, half = D / 2;
    float base = c->rope_theta;
    if (nn_config_rope_grows(c, seq_len)) {
        float s = r->factor * (float)seq_len / (float)r->original_max_position_embeddings -
                  (r->factor - 1.0f);
        base = base * powf(s, (float)D / (float)(D - 2));
    }
    for (int i = 0; i < half; i++)
        inv[i] = 1.0f / powf(base, (float)(2 * i) / (float)D);
    if (r->type == NN_ROPE_LINEAR) {
        for (int i = 0; i < half; i++)
            inv[i] /= r->factor;
    } else if (r->type == NN_ROPE_LLAMA3) {
        float old = (float)r->original_max_position_embeddings;
        float low_wl = old / r->low_freq_factor, high_wl = old / r->high_freq_factor;
        float span = r->high_freq_factor - r->low_freq_factor;
        for (int i = 0; i < half; i++) {
            float wl = (float)(2.0 * M_PI) / inv[i];
            if (wl > low_wl) {
                inv[i] /= r->factor; /* low frequencies: interpolated as linear */
            } else if (!(wl < high_wl)) {
                float sm = (old / wl - r->low_freq_factor) / span;
                inv[i] = (1.0f - sm) * inv[i] / r->factor + sm * inv[i];
            } /* high frequencies: unchanged */
        }
    }
}

/* ---------------------------------------------------------------- size */

size_t nn_config_num_params(const struct nn_config *c)
{
    if (!c || c->vocab_size <= 0 || c->hidden_size <= 0 || c->intermediate_size <= 0 ||
        c->num_hidden_layers <= 0 || c->num_attention_heads <= 0 || c->num_key_value_heads <= 0 ||
        c->hidden_size % c->num_attention_heads)
        return 0;
    /* in 128-bit-free arithmetic: every term is checked against SIZE_MAX by going through
     * double first (exact up to 2^53, far past any model that fits in memory) */
    double C = c->hidden_size, V = c->vocab_size, F = c->intermediate_size;
    int head_dim = c->hidden_size / c->num_attention_heads;
    double hd = head_dim;
    double kv = c->num_key_value_heads * hd;
    double layer = C                              /* input_layernorm */
                   + C * C                        /* q_proj [C, C] */
                   + 2.0 * kv * C                 /* k_proj, v_proj [KVH*hd, C] */
                   + C * C                        /* o_proj */
                   + C                            /* post_attention_layernorm */
                   + 3.0 * F * C;                 /* gate_proj, up_proj [F, C]; down_proj [C, F] */
    double total = V * C                          /* embed_tokens [V, C] */
                   + c->num_hidden_layers * layer /* layers */
                   + C                            /* norm */
                   + (c->tie_word_embeddings ? 0.0 : V * C) /* lm_head [V, C] */
                   + (c->reward_head ? C : 0.0);            /* score [1, C] */
    if (total >= 9007199254740992.0 || total >= (double)SIZE_MAX)
        return 0;
    return (size_t)total;
}
