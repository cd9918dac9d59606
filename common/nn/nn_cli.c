/* nn_cli.c - `model init|info|generate|export`. */
#include "nn_cli.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "config.h"
#include "err.h"
#include "gguf.h"
#include "model.h"
#include "sample.h"
#include "tokenizer.h"

#define MAX_STOPS 8

static void usage(FILE *f)
{
    fprintf(f, "usage:\n"
               "  model init DIR [--layers N] [--hidden C] [--heads H] [--kv-heads K]\n"
               "                 [--intermediate F] [--vocab V] [--max-pos T]\n"
               "                 [--tokenizer byte|bpe] [--tie|--untie] [--reward-head]\n"
               "                 [--seed S] [--std X]\n"
               "  model info DIR [--tensors]\n"
               "  model generate DIR --prompt TEXT [--max-new N] [--temperature T]\n"
               "                 [--top-p P] [--top-k K] [--seed S] [--stop STR]... [--raw]\n"
               "  model export DIR OUT.gguf --format gguf [--dtype f32|f16] [--name NAME]\n");
}

/* Parse an int option value; names the option on error. */
static bool parse_int(const char *opt, const char *s, long lo, long hi, long *v, FILE *errf)
{
    char *end = NULL;
    errno = 0;
    long x = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || x < lo || x > hi) {
        fprintf(errf, "model: %s: '%s' is not an integer in [%ld, %ld]\n", opt, s ? s : "", lo, hi);
        return false;
    }
    *v = x;
    return true;
}

static bool parse_float(const char *opt, const char *s, double lo, double hi, double *v, FILE *errf)
{
    char *end = NULL;
    errno = 0;
    double x = s ? strtod(s, &end) : 0.0;
    if (!s || errno || end == s || *end || !(x >= lo && x <= hi)) {
        fprintf(errf, "model: %s: '%s' is not a number in [%g, %g]\n", opt, s ? s : "", lo, hi);
        return false;
    }
    *v = x;
    return true;
}

static int cmd_init(int argc, char **argv, FILE *out, FILE *errf)
{
    struct nn_config c;
    nn_config_default(&c);
    long seed = 1, v = 0;
    double std = 0.02;
    const char *dir = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        struct {
            const char *name;
            int *field;
        } ints[] = {
            {"--layers", &c.num_hidden_layers},       {"--hidden", &c.hidden_size},
            {"--heads", &c.num_attention_heads},      {"--kv-heads", &c.num_key_value_heads},
            {"--intermediate", &c.intermediate_size}, {"--vocab", &c.vocab_size},
            {"--max-pos", &c.max_position_embeddings}};
        bool done = false;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !done; k++) {
            if (strcmp(a, ints[k].name))
                continue;
            if (!parse_int(a, val, 1, 1 << 24, &v, errf))
                return 2;
            *ints[k].field = (int)v;
            i++;
            done = true;
        }
        if (done)
            continue;
        if (!strcmp(a, "--seed")) {
            if (!parse_int(a, val, 0, LONG_MAX, &seed, errf))
                return 2;
            i++;
        } else if (!strcmp(a, "--std")) {
            if (!parse_float(a, val, 0.0, 10.0, &std, errf))
                return 2;
            i++;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!val || (strcmp(val, "byte") && strcmp(val, "bpe"))) {
                fprintf(errf, "model init: --tokenizer must be byte or bpe\n");
                return 2;
            }
            snprintf(c.tokenizer, sizeof c.tokenizer, "%s", val);
            i++;
        } else if (!strcmp(a, "--tie")) {
            c.tie_word_embeddings = true;
        } else if (!strcmp(a, "--untie")) {
            c.tie_word_embeddings = false;
        } else if (!strcmp(a, "--reward-head")) {
            c.reward_head = true;
        } else if (a[0] != '-' && !dir) {
            dir = a;
        } else {
            fprintf(errf, "model init: unknown argument '%s'\n", a);
            usage(errf);
            return 2;
        }
    }
    if (!dir) {
        fprintf(errf, "model init: no directory given\n");
        usage(errf);
        return 2;
    }
    if (strcmp(c.tokenizer, "byte")) /* the byte tokenizer's ids mean nothing to a BPE one */
        c.bos_token_id = c.eos_token_id = c.pad_token_id = -1;
    char err[512];
    int rc = nn_config_validate(&c, err, sizeof err);
    if (rc) {
        fprintf(errf, "model init: %s\n", err);
        return 2;
    }
    nn_model_t *m = NULL;
    rc = nn_model_new(&m, &c, err, sizeof err);
    if (!rc) {
        nn_model_init_random(m, (uint64_t)seed, (float)std);
        rc = nn_checkpoint_save(m, dir, err, sizeof err);
    }
    if (rc)
        fprintf(errf, "model init: %s\n", err);
    else
        fprintf(out, "wrote %s: %zu parameters\n", dir, nn_model_num_params(m));
    nn_model_destroy(&m);
    return rc ? 1 : 0;
}

static int cmd_info(int argc, char **argv, FILE *out, FILE *errf)
{
    const char *dir = NULL;
    bool tensors = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--tensors"))
            tensors = true;
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else {
            fprintf(errf, "model info: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!dir) {
        usage(errf);
        return 2;
    }
    char err[512];
    nn_model_t *m = NULL;
    int rc = nn_checkpoint_load(&m, dir, err, sizeof err);
    if (rc) {
        fprintf(errf, "model info: %s\n", err);
        return 1;
    }
    const struct nn_config *c = nn_model_config(m);
    const struct nn_rope_scaling *r = &c->rope_scaling;
    char rope[160] = "none";
    if (r->type != NN_ROPE_DEFAULT)
        snprintf(rope, sizeof rope, "%s, factor %g", nn_rope_type_name(r->type), (double)r->factor);
    if (r->type == NN_ROPE_LLAMA3)
        snprintf(rope + strlen(rope), sizeof rope - strlen(rope),
                 ", low/high_freq_factor %g/%g, original context %d", (double)r->low_freq_factor,
                 (double)r->high_freq_factor, r->original_max_position_embeddings);
    if (r->type == NN_ROPE_DYNAMIC)
        snprintf(rope + strlen(rope), sizeof rope - strlen(rope),
                 ", plain up to %d tokens (context %d)", r->original_max_position_embeddings,
                 c->max_position_embeddings);
    fprintf(out,
            "model %s\n"
            "  vocab_size              %d\n"
            "  hidden_size             %d\n"
            "  intermediate_size       %d\n"
            "  num_hidden_layers       %d\n"
            "  num_attention_heads     %d (head_dim %d)\n"
            "  num_key_value_heads     %d\n"
            "  max_position_embeddings %d\n"
            "  rms_norm_eps            %g\n"
            "  rope_theta              %g\n"
            "  rope_scaling            %s\n"
            "  tie_word_embeddings     %s\n"
            "  reward_head             %s\n"
            "  bos/eos/pad             %d/%d/%d\n"
            "  tokenizer               %s\n"
            "  parameters              %zu (%.2fM)\n",
            dir, c->vocab_size, c->hidden_size, c->intermediate_size, c->num_hidden_layers,
            c->num_attention_heads, c->hidden_size / c->num_attention_heads, c->num_key_value_heads,
            c->max_position_embeddings, (double)c->rms_norm_eps, (double)c->rope_theta, rope,
            c->tie_word_embeddings ? "true" : "false", c->reward_head ? "true" : "false",
            c->bos_token_id, c->eos_token_id, c->pad_token_id, c->tokenizer, nn_model_num_params(m),
            (double)nn_model_num_params(m) / 1e6);
    for (size_t i = 0; tensors && i < nn_model_num_tensors(m); i++) {
        const struct nn_tensor *t = nn_model_tensor(m, i);
        if (t->ndim == 2)
            fprintf(out, "  %-50s [%lld, %lld]\n", t->name, (long long)t->shape[0],
                    (long long)t->shape[1]);
        else
            fprintf(out, "  %-50s [%lld]\n", t->name, (long long)t->shape[0]);
    }
    nn_model_destroy(&m);
    return 0;
}

static const char *tok_bytes_cb(void *ctx, int id, size_t *len)
{
    return tok_token_bytes(ctx, id, len);
}

static int cmd_generate(int argc, char **argv, FILE *out, FILE *errf)
{
    const char *dir = NULL, *prompt = NULL, *stops[MAX_STOPS];
    int nstop = 0;
    bool raw = false;
    long max_new = 64, top_k = 0, seed = 1;
    double temp = 0.0, top_p = 1.0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true, takes = true;
        if (!strcmp(a, "--prompt"))
            ok = (prompt = val) != NULL;
        else if (!strcmp(a, "--max-new"))
            ok = parse_int(a, val, 1, 1 << 20, &max_new, errf);
        else if (!strcmp(a, "--top-k"))
            ok = parse_int(a, val, 0, INT_MAX, &top_k, errf);
        else if (!strcmp(a, "--seed"))
            ok = parse_int(a, val, 0, LONG_MAX, &seed, errf);
        else if (!strcmp(a, "--temperature"))
            ok = parse_float(a, val, 0.0, 100.0, &temp, errf);
        else if (!strcmp(a, "--top-p"))
            ok = parse_float(a, val, 0.0, 1.0, &top_p, errf);
        else if (!strcmp(a, "--stop")) {
            ok = val && val[0] && nstop < MAX_STOPS;
            if (ok)
                stops[nstop++] = val;
        } else {
            takes = false;
            if (!strcmp(a, "--raw"))
                raw = true;
            else if (a[0] != '-' && !dir)
                dir = a;
            else {
                fprintf(errf, "model generate: unknown argument '%s'\n", a);
                usage(errf);
                return 2;
            }
        }
        if (!ok) {
            fprintf(errf, "model generate: bad or missing value for %s\n", a);
            return 2;
        }
        i += takes;
    }
    if (!dir || !prompt) {
        fprintf(errf, "model generate: a directory and --prompt are required\n");
        usage(errf);
        return 2;
    }
    char err[512];
    nn_model_t *m = NULL;
    tok_t *tk = NULL;
    char *text = NULL, *outtext = NULL;
    int *ids = NULL, *gen = NULL;
    size_t nids = 0, outlen = 0;
    int rc = nn_checkpoint_load(&m, dir, err, sizeof err);
    if (rc)
        goto out_err;
    const struct nn_config *c = nn_model_config(m);
    if (!strcmp(c->tokenizer, "byte")) {
        tk = tok_new_byte();
        rc = tk ? ERR_OK : ERR_NOMEM;
        snprintf(err, sizeof err, "out of memory");
    } else {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        rc = tok_load(&tk, path, err, sizeof err);
    }
    if (rc)
        goto out_err;
    if (raw) {
        text = strdup(prompt);
        rc = text ? ERR_OK : ERR_NOMEM;
    } else {
        rc = tok_render_prompt(tk, prompt, &text);
    }
    if (rc) {
        snprintf(err, sizeof err, "rendering the prompt: %s", err_str(rc));
        goto out_err;
    }
    rc = tok_encode(tk, text, strlen(text), tok_wants_bos(tk) ? TOK_ADD_BOS : 0, &ids, &nids, err,
                    sizeof err);
    if (rc)
        goto out_err;
    if (nids == 0 || nids >= (size_t)c->max_position_embeddings) {
        snprintf(err, sizeof err, "the prompt is %zu tokens; it must be 1 to %d", nids,
                 c->max_position_embeddings - 1);
        rc = ERR_INVAL;
        goto out_err;
    }
    gen = malloc((size_t)max_new * sizeof(int));
    if (!gen) {
        rc = ERR_NOMEM;
        snprintf(err, sizeof err, "out of memory");
        goto out_err;
    }
    struct nn_sample_opts so = {.temperature = (float)temp,
                                .top_k = (int)top_k,
                                .top_p = (float)top_p,
                                .seed = (uint64_t)seed,
                                .max_new_tokens = (int)max_new,
                                .eos_token_id =
                                    c->eos_token_id >= 0 ? c->eos_token_id : tok_eos_id(tk),
                                .stop = stops,
                                .nstop = nstop,
                                .token_bytes = tok_bytes_cb,
                                .token_ctx = tk};
    const int *prompts[1] = {ids};
    int plen = (int)nids, ngen = 0, fin = 0;
    rc = nn_sample(m, 1, prompts, &plen, &so, gen, &ngen, &fin);
    if (rc) {
        snprintf(err, sizeof err, "sampling: %s", err_str(rc));
        goto out_err;
    }
    rc = tok_decode(tk, gen, (size_t)ngen, TOK_SKIP_SPECIAL, &outtext, &outlen);
    if (rc) {
        snprintf(err, sizeof err, "decoding: %s", err_str(rc));
        goto out_err;
    }
    if (fin == NN_FINISH_STOP) /* cut at the first stop string */
        for (int s = 0; s < nstop; s++) {
            char *p = strstr(outtext, stops[s]);
            if (p) {
                *p = '\0';
                outlen = (size_t)(p - outtext);
            }
        }
    fwrite(outtext, 1, outlen, out);
    fputc('\n', out);
out_err:
    if (rc)
        fprintf(errf, "model generate: %s\n", err);
    free(outtext);
    free(gen);
    free(ids);
    free(text);
    tok_destroy(&tk);
    nn_model_destroy(&m);
    return rc ? 1 : 0;
}

/* model export: the checkpoint as a GGUF file for llama.cpp and Ollama (gguf.h). */
static int cmd_export(int argc, char **argv, FILE *out, FILE *errf)
{
    const char *dir = NULL, *dst = NULL, *format = NULL, *dtype = "f16", *name = NULL;
    for (int i = 2; i < argc; i++) {
        const char **opt = !strcmp(argv[i], "--format")  ? &format
                           : !strcmp(argv[i], "--dtype") ? &dtype
                           : !strcmp(argv[i], "--name")  ? &name
                                                         : NULL;
        if (opt && i + 1 < argc)
            *opt = argv[++i];
        else if (!opt && argv[i][0] != '-' && !dir)
            dir = argv[i];
        else if (!opt && argv[i][0] != '-' && !dst)
            dst = argv[i];
        else {
            fprintf(errf, "model export: unknown or incomplete argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!dir || !dst || !format) {
        usage(errf);
        return 2;
    }
    if (strcmp(format, "gguf")) {
        fprintf(errf, "model export: --format '%s': only gguf is written\n", format);
        return 2;
    }
    if (strcmp(dtype, "f32") && strcmp(dtype, "f16")) {
        fprintf(errf, "model export: --dtype '%s': f32 or f16\n", dtype);
        return 2;
    }
    char err[512], tj[4096], nm[256];
    nn_model_t *m = NULL;
    if (nn_checkpoint_load(&m, dir, err, sizeof err)) {
        fprintf(errf, "model export: %s\n", err);
        return 1;
    }
    const struct nn_config *c = nn_model_config(m);
    snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
    if (!name) { /* the directory's last component */
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/')
            n--;
        const char *s = dir + n;
        while (s > dir && s[-1] != '/')
            s--;
        snprintf(nm, sizeof nm, "%.*s", (int)(dir + n - s), s);
        name = nm;
    }
    int rc = nn_gguf_write(m, strcmp(c->tokenizer, "bpe") ? NULL : tj, name,
                           strcmp(dtype, "f16") ? NN_GGUF_F32 : NN_GGUF_F16, dst, err, sizeof err);
    if (rc)
        fprintf(errf, "model export: %s\n", err);
    else
        fprintf(out, "model export: %s -> %s (GGUF, %s%s)\n", dir, dst, dtype,
                c->reward_head ? "; the reward head is left out" : "");
    nn_model_destroy(&m);
    return rc ? 1 : 0;
}

int nn_cli_run(int argc, char **argv, FILE *out, FILE *errf)
{
    if (argc < 2) {
        usage(errf);
        return 2;
    }
    if (!strcmp(argv[1], "init"))
        return cmd_init(argc, argv, out, errf);
    if (!strcmp(argv[1], "info"))
        return cmd_info(argc, argv, out, errf);
    if (!strcmp(argv[1], "generate"))
        return cmd_generate(argc, argv, out, errf);
    if (!strcmp(argv[1], "export"))
        return cmd_export(argc, argv, out, errf);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(out);
        return 0;
    }
    fprintf(errf, "model: unknown subcommand '%s'\n", argv[1]);
    usage(errf);
    return 2;
}

int nn_cli_main(int argc, char **argv)
{
    return nn_cli_run(argc, argv, stdout, stderr);
}
