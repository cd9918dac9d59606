/* test_sampler - the sampler's logic without sockets (services/sampler/sampler.h): shapes of
 * replies and pair records, determinism by seed, the log-probs against an independent forward,
 * finish reasons on a model whose next token is known, request validation naming the field,
 * loading versions (sha256, missing, corrupt, the LRU), the remote backend against an in-process
 * fake /v1/completions server, the options, and the UTF-8 cleaning of texts. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "cfg.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "fake_completions.h"
#include "http.h"
#include "httpopts.h"
#include "model.h"
#include "sampler.h"
#include "sampler_opts.h"
#include "sampler_remote.h"
#include "tokenizer.h"
#include "utf8.h"

static char root[256]; /* the checkpoint store of the whole group */

/* ---- checkpoints -------------------------------------------------------------------------- */

static void small_config(struct nn_config *c)
{
    nn_config_default(c);
    c->hidden_size = 32;
    c->intermediate_size = 64;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 2;
    c->num_key_value_heads = 1;
    c->max_position_embeddings = 96;
}

static void store_dir(char *out, size_t len, uint32_t version)
{
    assert_int_equal(ckpt_dir(out, len, root,
                              version == 0 ? OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT
                                           : OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY,
                              version),
                     ERR_OK);
}

static void write_random(uint32_t version, uint64_t seed)
{
    struct nn_config c;
    small_config(&c);
    nn_model_t *m = NULL;
    char err[256], dir[512];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, seed, 0.5f);
    store_dir(dir, sizeof dir, version);
    assert_int_equal(nn_checkpoint_save(m, dir, err, sizeof err), ERR_OK);
    nn_model_destroy(&m);
}

static void set_row(const struct nn_tensor *t, int row, int k, float v)
{
    memset(t->data + (size_t)row * t->shape[1], 0, (size_t)t->shape[1] * sizeof(float));
    t->data[(size_t)row * t->shape[1] + k] = v;
}

/* A model whose next token depends only on the current one: attention and MLP outputs are zero,
 * so the hidden state is the token's embedding e_(t mod C); the LM head maps ':' -> ';' -> '<'
 * ... -> 'D' -> EOS with a margin of ~57 nats. After the template's final ':' it writes
 * ";<=>?@ABCD" and then EOS, at any temperature. */
static void write_chain(uint32_t version)
{
    struct nn_config c;
    small_config(&c);
    c.tie_word_embeddings = false;
    nn_model_t *m = NULL;
    char err[256], dir[512], name[96];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, 5, 0.02f);
    int C = c.hidden_size;
    const struct nn_tensor *emb = nn_model_find_tensor(m, "model.embed_tokens.weight");
    const struct nn_tensor *head = nn_model_find_tensor(m, "lm_head.weight");
    assert_non_null(emb);
    assert_non_null(head);
    for (int t = 0; t < c.vocab_size; t++) {
        set_row(emb, t, t % C, 1.0f);
        set_row(head, t, 0, 0.0f);
    }
    for (int t = ':'; t <= 'C'; t++)
        set_row(head, t + 1, t % C, 10.0f);
    set_row(head, TOK_BYTE_EOS, 'D' % C, 10.0f);
    for (int l = 0; l < c.num_hidden_layers; l++) {
        snprintf(name, sizeof name, "model.layers.%d.self_attn.o_proj.weight", l);
        const struct nn_tensor *o = nn_model_find_tensor(m, name);
        snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", l);
        const struct nn_tensor *d = nn_model_find_tensor(m, name);
        assert_non_null(o);
        assert_non_null(d);
        memset(o->data, 0, o->numel * sizeof(float));
        memset(d->data, 0, d->numel * sizeof(float));
    }
    store_dir(dir, sizeof dir, version);
    assert_int_equal(nn_checkpoint_save(m, dir, err, sizeof err), ERR_OK);
    nn_model_destroy(&m);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/oaif-test-sampler-XXXXXX");
    if (!mkdtemp(root))
        return -1;
    write_random(0, 1); /* sft-v000000 */
    write_random(1, 2); /* policy-v000001 */
    write_random(2, 3); /* policy-v000002 */
    write_chain(10);    /* policy-v000010 */
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- requests ----------------------------------------------------------------------------- */

struct req {
    Oaif__V1__SampleRequest r;
    Oaif__V1__SamplingParams sp;
    Oaif__V1__Prompt p[8];
    Oaif__V1__Prompt *pp[8];
    char *stop[4];
};

static void req_init(struct req *q, size_t nprompts, unsigned n, unsigned max_new, uint64_t seed)
{
    static char *texts[8] = {"What is 2+3?",
                             "Reverse 'cat'.",
                             "Count the r in 'mirror'.",
                             "Which is larger, 7 or 9?",
                             "Say hi.",
                             "Order 3 1 2.",
                             "12 + 35?",
                             "One more."};
    static char *ids[8] = {"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"};
    memset(q, 0, sizeof *q);
    oaif__v1__sample_request__init(&q->r);
    oaif__v1__sampling_params__init(&q->sp);
    for (size_t i = 0; i < nprompts; i++) {
        oaif__v1__prompt__init(&q->p[i]);
        q->p[i].id = ids[i];
        q->p[i].text = texts[i];
        q->pp[i] = &q->p[i];
    }
    q->r.n_prompts = nprompts;
    q->r.prompts = q->pp;
    q->r.sampling = &q->sp;
    q->r.run = "test";
    q->sp.n = n;
    q->sp.max_new_tokens = max_new;
    q->sp.seed = seed;
    q->sp.temperature = 1.0f;
}

/* A string option of a config from sampler_config_defaults (its strings are malloc'd). */
static void set_str(char **field, const char *value)
{
    free(*field);
    *field = value ? strdup(value) : NULL;
    assert_true(!value || *field);
}

/* The defaults on the group's store. Release with sampler_config_release. */
static void builtin_config(struct sampler_config *c)
{
    assert_int_equal(sampler_config_defaults(c), ERR_OK);
    set_str(&c->checkpoint_dir, root);
}

static sampler_t *new_builtin(int max_loaded)
{
    struct sampler_config c;
    builtin_config(&c);
    c.max_loaded = max_loaded;
    sampler_t *s = NULL;
    char why[256];
    assert_int_equal(sampler_new(&s, &c, why, sizeof why), ERR_OK);
    sampler_config_release(&c); /* the sampler keeps copies of what it needs */
    return s;
}

static void load_ok(sampler_t *s, uint32_t v)
{
    char why[512] = "";
    int rc = sampler_load(s, v, NULL, NULL, why, sizeof why);
    if (rc)
        fprintf(stderr, "load %u: %s\n", v, why);
    assert_int_equal(rc, ERR_OK);
}

static struct sampler_result *run_ok(sampler_t *s, const char *id, struct req *q)
{
    struct sampler_result *r = NULL;
    char why[512] = "";
    int rc = sampler_run(s, id, &q->r, 0, &r, why, sizeof why);
    if (rc)
        fprintf(stderr, "run %s: %s (%s)\n", id, why, err_str(rc));
    assert_int_equal(rc, ERR_OK);
    assert_non_null(r);
    return r;
}

static void test_reply_shapes_and_pair_records(void **state)
{
    (void)state;
    sampler_t *s = new_builtin(2);
    load_ok(s, 0);
    struct req q;
    req_init(&q, 3, 2, 16, 7);
    struct sampler_result *r = run_ok(s, "req-1", &q);
    assert_int_equal(r->version, 0);
    assert_int_equal(r->reply.policy_version, 0);
    assert_int_equal(r->reply.n_pairs, 3);
    assert_int_equal(r->n_records, 3);
    for (size_t i = 0; i < 3; i++) {
        const Oaif__V1__Pair *p = r->reply.pairs[i];
        char id[64];
        snprintf(id, sizeof id, "req-1/%zu", i);
        assert_string_equal(p->id, id);
        assert_string_equal(p->prompt_id, q.p[i].id);
        assert_string_equal(p->prompt, q.p[i].text);
        assert_string_equal(p->run, "test");
        assert_int_equal(p->policy_version, 0);
        assert_int_equal(p->n_responses, 2);
        assert_true(p->sampling->seed == 7);
        assert_int_equal(p->sampling->n, 2);
        assert_int_equal(p->sampling->max_new_tokens, 16);
        for (size_t j = 0; j < 2; j++) {
            const Oaif__V1__Response *resp = p->responses[j];
            assert_true(resp->num_tokens >= 1 && resp->num_tokens <= 16);
            assert_int_equal(resp->n_token_ids, resp->num_tokens);
            assert_true(isfinite(resp->logprob) && resp->logprob < 0.0);
            assert_int_equal(resp->policy_version, 0);
            assert_true(resp->finish == OAIF__V1__FINISH_REASON__FINISH_REASON_LENGTH ||
                        resp->finish == OAIF__V1__FINISH_REASON__FINISH_REASON_EOS);
            assert_non_null(resp->text);
        }
        /* the record is the pair, packed, under the pair id */
        const Oaif__V1__Record *rec = r->records[i];
        assert_int_equal(rec->kind, OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR);
        assert_string_equal(rec->id, id);
        Oaif__V1__Pair *up = oaif__v1__pair__unpack(NULL, rec->data.len, rec->data.data);
        assert_non_null(up);
        assert_string_equal(up->id, id);
        assert_int_equal(up->n_responses, 2);
        assert_string_equal(up->responses[1]->text, p->responses[1]->text);
        oaif__v1__pair__free_unpacked(up, NULL);
    }
    /* the packed reply is the same reply */
    Oaif__V1__SampleReply *rep = oaif__v1__sample_reply__unpack(NULL, r->packed_len, r->packed);
    assert_non_null(rep);
    assert_int_equal(rep->n_pairs, 3);
    assert_int_equal(rep->policy_version, 0);
    assert_memory_equal(rep->pairs[2]->responses[0]->token_ids,
                        r->reply.pairs[2]->responses[0]->token_ids,
                        r->reply.pairs[2]->responses[0]->n_token_ids * sizeof(int32_t));
    oaif__v1__sample_reply__free_unpacked(rep, NULL);
    /* the two samples of a prompt are different draws */
    const Oaif__V1__Pair *p0 = r->reply.pairs[0];
    assert_false(p0->responses[0]->num_tokens == p0->responses[1]->num_tokens &&
                 !memcmp(p0->responses[0]->token_ids, p0->responses[1]->token_ids,
                         p0->responses[0]->num_tokens * sizeof(int32_t)));
    sampler_result_free(&r);
    assert_null(r);
    sampler_destroy(&s);
}

static bool same_tokens(const struct sampler_result *a, const struct sampler_result *b)
{
    if (a->n_prompts * a->n != b->n_prompts * b->n)
        return false;
    for (size_t k = 0; k < a->n_prompts * a->n; k++) {
        const struct sampler_response *x = &a->responses[k], *y = &b->responses[k];
        if (x->num_tokens != y->num_tokens || strcmp(x->text, y->text) != 0 ||
            memcmp(x->token_ids, y->token_ids, x->num_tokens * sizeof(int)) != 0)
            return false;
    }
    return true;
}

static void test_same_seed_same_samples(void **state)
{
    (void)state;
    sampler_t *s = new_builtin(2);
    load_ok(s, 0);
    struct req q;
    req_init(&q, 4, 2, 12, 42);
    struct sampler_result *a = run_ok(s, "a", &q), *b = run_ok(s, "b", &q);
    assert_true(same_tokens(a, b)); /* the seed, not the request id, decides */
    for (size_t k = 0; k < 8; k++)
        assert_true(fabs(a->responses[k].logprob - b->responses[k].logprob) < 1e-9);
    q.sp.seed = 43;
    struct sampler_result *c = run_ok(s, "a", &q);
    assert_false(same_tokens(a, c));
    /* seed 0: derived from the configured seed and the request id */
    q.sp.seed = 0;
    struct sampler_result *d1 = run_ok(s, "x-1", &q), *d2 = run_ok(s, "x-1", &q),
                          *d3 = run_ok(s, "x-2", &q);
    assert_true(same_tokens(d1, d2));
    assert_false(same_tokens(d1, d3));
    assert_true(d1->sampling.seed != 0 && d1->sampling.seed == d2->sampling.seed);
    sampler_result_free(&a);
    sampler_result_free(&b);
    sampler_result_free(&c);
    sampler_result_free(&d1);
    sampler_result_free(&d2);
    sampler_result_free(&d3);
    sampler_destroy(&s);
}

/* Sum of log p(response | prompt) from a forward of the whole sequence on a fresh copy. */
static double reference_logprob(uint32_t version, const char *prompt, const int *resp, int nresp)
{
    char dir[512], err[256];
    store_dir(dir, sizeof dir, version);
    nn_model_t *m = NULL;
    assert_int_equal(nn_checkpoint_load(&m, dir, err, sizeof err), ERR_OK);
    tok_t *t = tok_new_byte();
    int *ids = NULL;
    size_t n = 0;
    assert_int_equal(tok_encode_prompt(t, prompt, 0, &ids, &n, err, sizeof err), ERR_OK);
    int L = (int)n + nresp;
    int *seq = malloc((size_t)L * sizeof(int));
    memcpy(seq, ids, n * sizeof(int));
    memcpy(seq + n, resp, (size_t)nresp * sizeof(int));
    assert_int_equal(nn_model_reserve(m, 1, L, false), ERR_OK);
    struct nn_batch b = {.B = 1, .T = L, .tokens = seq, .lengths = &L};
    assert_int_equal(nn_model_forward(m, &b, NULL), ERR_OK);
    int plen = (int)n;
    float lp = 0;
    assert_int_equal(nn_model_seq_logprobs(m, &plen, &lp, NULL), ERR_OK);
    free(seq);
    free(ids);
    tok_destroy(&t);
    nn_model_destroy(&m);
    return lp;
}

static void test_logprob_is_the_policy_sum(void **state)
{
    (void)state;
    sampler_t *s = new_builtin(2);
    load_ok(s, 1);
    struct req q;
    req_init(&q, 2, 2, 10, 3);
    q.sp.temperature = 0.7f; /* the log-prob is the policy's, not the tempered one's */
    q.sp.top_p = 0.9f;       /* nor the truncated distribution's */
    struct sampler_result *r = run_ok(s, "lp", &q);
    for (size_t k = 0; k < 4; k++) { /* from the decoder's logits: equal within fp32 rounding */
        const struct sampler_response *x = &r->responses[k];
        double ref = reference_logprob(1, q.p[k / 2].text, x->token_ids, (int)x->num_tokens);
        assert_true(fabs(x->logprob - ref) <= 1e-5 * (fabs(ref) + x->num_tokens));
    }
    sampler_result_free(&r);
    sampler_destroy(&s);
}

static void test_finish_reasons(void **state)
{
    (void)state;
    sampler_t *s = new_builtin(2);
    load_ok(s, 10);
    struct req q;
    req_init(&q, 1, 1, 5, 1);
    struct sampler_result *r = run_ok(s, "f1", &q);
    assert_string_equal(r->responses[0].text, ";<=>?");
    assert_int_equal(r->responses[0].finish, OAIF__V1__FINISH_REASON__FINISH_REASON_LENGTH);
    assert_int_equal(r->responses[0].num_tokens, 5);
    assert_true(r->responses[0].logprob <= 0.0 && r->responses[0].logprob > -0.01);
    sampler_result_free(&r);

    req_init(&q, 1, 2, 20, 1);
    r = run_ok(s, "f2", &q);
    for (int j = 0; j < 2; j++) {
        assert_string_equal(r->responses[j].text, ";<=>?@ABCD");
        assert_int_equal(r->responses[j].finish, OAIF__V1__FINISH_REASON__FINISH_REASON_EOS);
        assert_int_equal(r->responses[j].num_tokens, 11); /* EOS included */
        assert_int_equal(r->responses[j].token_ids[10], TOK_BYTE_EOS);
    }
    sampler_result_free(&r);

    char *stops[2] = {"zz", "=>"};
    q.sp.stop = stops;
    q.sp.n_stop = 2;
    r = run_ok(s, "f3", &q);
    assert_string_equal(r->responses[0].text, ";<"); /* cut before the stop string */
    assert_int_equal(r->responses[0].finish, OAIF__V1__FINISH_REASON__FINISH_REASON_STOP);
    assert_int_equal(r->responses[0].num_tokens, 4); /* ';' '<' '=' '>' */
    assert_int_equal(r->reply.pairs[0]->responses[0]->finish,
                     OAIF__V1__FINISH_REASON__FINISH_REASON_STOP);
    assert_int_equal(r->sampling.n_stop, 2);
    sampler_result_free(&r);
    sampler_destroy(&s);
}

/* A request mutated by `mut` fails with rc and a reason naming `field`. */
static void expect_bad(sampler_t *s, struct req *q, int rc_want, const char *field)
{
    struct sampler_result *r = NULL;
    char why[512] = "";
    int rc = sampler_run(s, "bad", &q->r, 0, &r, why, sizeof why);
    if (rc != rc_want || !strstr(why, field))
        fprintf(stderr, "want %s naming '%s', got %s: %s\n", err_str(rc_want), field, err_str(rc),
                why);
    assert_int_equal(rc, rc_want);
    assert_null(r);
    assert_non_null(strstr(why, field));
}

static void test_bad_requests_name_the_field(void **state)
{
    (void)state;
    sampler_t *s = new_builtin(2);
    struct req q;
    /* before anything is loaded: not a bad request, a retryable one */
    req_init(&q, 1, 2, 8, 1);
    expect_bad(s, &q, ERR_AGAIN, "no policy version is loaded");
    assert_false(sampler_error_permanent(ERR_AGAIN));
    load_ok(s, 0);

    req_init(&q, 0, 2, 8, 1);
    expect_bad(s, &q, ERR_INVAL, "prompts");
    req_init(&q, 2, 2, 8, 1);
    q.p[1].text = "";
    expect_bad(s, &q, ERR_INVAL, "prompts[1].text");
    req_init(&q, 1, 17, 8, 1);
    expect_bad(s, &q, ERR_INVAL, "sampling.n");
    req_init(&q, 1, 2, 5000, 1);
    expect_bad(s, &q, ERR_INVAL, "sampling.max_new_tokens");
    req_init(&q, 1, 2, 8, 1);
    q.sp.temperature = 6.0f;
    expect_bad(s, &q, ERR_INVAL, "sampling.temperature");
    q.sp.temperature = -1.0f;
    expect_bad(s, &q, ERR_INVAL, "sampling.temperature");
    q.sp.temperature = NAN;
    expect_bad(s, &q, ERR_INVAL, "sampling.temperature");
    req_init(&q, 1, 2, 8, 1);
    q.sp.top_p = 1.5f;
    expect_bad(s, &q, ERR_INVAL, "sampling.top_p");
    req_init(&q, 1, 2, 8, 1);
    q.sp.top_k = 300; /* over the byte vocabulary (259) */
    expect_bad(s, &q, ERR_INVAL, "sampling.top_k");
    req_init(&q, 1, 2, 8, 1);
    char *stops[1] = {""};
    q.sp.stop = stops;
    q.sp.n_stop = 1;
    expect_bad(s, &q, ERR_INVAL, "sampling.stop[0]");
    /* longer than the context (96 positions) once templated */
    req_init(&q, 2, 2, 8, 1);
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    q.p[1].text = longp;
    expect_bad(s, &q, ERR_INVAL, "prompts[1].text");
    expect_bad(s, &q, ERR_INVAL, "context");
    /* 8 prompts x 16 = 128 responses is fine, but 8 x 16 over a limit of 100 is not */
    req_init(&q, 1, 2, 8, 1);
    q.r.pin_version = true;
    q.r.policy_version = 7;
    expect_bad(s, &q, ERR_NOTFOUND, "policy_version");
    assert_true(sampler_error_permanent(ERR_INVAL));
    assert_true(sampler_error_permanent(ERR_NOTFOUND));
    /* no sampling message at all: every default */
    req_init(&q, 1, 0, 0, 0);
    q.r.sampling = NULL;
    struct sampler_result *r = run_ok(s, "defaults", &q);
    assert_int_equal(r->n, 2);
    assert_int_equal(r->sampling.max_new_tokens, 128);
    assert_true(fabsf(r->sampling.temperature - 0.9f) < 1e-6f);
    sampler_result_free(&r);
    sampler_destroy(&s);

    struct sampler_config c;
    builtin_config(&c);
    c.max_responses = 100;
    assert_int_equal(sampler_new(&s, &c, (char[256]){0}, 256), ERR_OK);
    sampler_config_release(&c);
    load_ok(s, 0);
    req_init(&q, 8, 16, 8, 1);
    expect_bad(s, &q, ERR_INVAL, "sampling.n");
    sampler_destroy(&s);
}

static void test_bad_configuration_names_the_option(void **state)
{
    (void)state;
    struct sampler_config c;
    sampler_t *s = NULL;
    char why[256];
    builtin_config(&c);
    set_str(&c.prompt_template, "no placeholder");
    assert_int_equal(sampler_new(&s, &c, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "sampler.template"));
    sampler_config_release(&c);
    builtin_config(&c);
    c.n = 40;
    assert_int_equal(sampler_new(&s, &c, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "sampler.responses_per_prompt"));
    c.n = 2;
    c.top_k = -1;
    assert_int_equal(sampler_new(&s, &c, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "sampler.top_k"));
    sampler_config_release(&c);
    builtin_config(&c);
    c.backend = SAMPLER_BACKEND_REMOTE;
    assert_int_equal(sampler_new(&s, &c, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "sampler.remote.base_url"));
    /* the key from a variable that is not set */
    set_str(&c.remote.base_url, "http://127.0.0.1:9/v1");
    set_str(&c.remote.model, "m");
    set_str(&c.remote.api_key_env, "OAIF_TEST_UNSET_KEY_VAR");
    unsetenv("OAIF_TEST_UNSET_KEY_VAR");
    assert_int_equal(sampler_new(&s, &c, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "sampler.remote.api_key_env"));
    assert_non_null(strstr(why, "OAIF_TEST_UNSET_KEY_VAR"));
    sampler_config_release(&c);
    assert_null(s);
}

/* ---- versions ----------------------------------------------------------------------------- */

static void test_versions_lru_and_pinning(void **state)
{
    (void)state;
    sampler_t *s = new_builtin(2);
    assert_true(sampler_newest(s) == -1);
    load_ok(s, 0);
    load_ok(s, 1);
    assert_true(sampler_newest(s) == 1);
    struct req q;
    req_init(&q, 1, 2, 4, 1);
    struct sampler_result *r = run_ok(s, "v", &q);
    assert_int_equal(r->version, 1); /* unpinned: the newest */
    sampler_result_free(&r);
    q.r.pin_version = true;
    q.r.policy_version = 0;
    r = run_ok(s, "v0", &q);
    assert_int_equal(r->version, 0);
    assert_int_equal(r->reply.pairs[0]->responses[1]->policy_version, 0);
    sampler_result_free(&r);
    /* a third version: the least recently used that is not the newest goes (1, since 0 ran) */
    load_ok(s, 2);
    uint32_t v[4];
    assert_int_equal(sampler_loaded(s, v, 4), 2);
    assert_true(sampler_has(s, 2) && sampler_has(s, 0) && !sampler_has(s, 1));
    q.r.policy_version = 1;
    expect_bad(s, &q, ERR_NOTFOUND, "version 1 is not loaded");
    q.r.policy_version = 0;
    r = run_ok(s, "v0b", &q);
    assert_int_equal(r->version, 0);
    sampler_result_free(&r);
    sampler_destroy(&s);
}

static void test_load_checks_sha256_and_names_missing_versions(void **state)
{
    (void)state;
    sampler_t *s = new_builtin(2);
    char why[512], dir[512], file[600], hex[65], err[256];
    store_dir(dir, sizeof dir, 1);
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    assert_int_equal(ckpt_file_sha256(file, hex, err, sizeof err), ERR_OK);
    char wrong[65];
    memcpy(wrong, hex, sizeof wrong);
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    assert_int_equal(sampler_load(s, 1, NULL, wrong, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "version 1"));
    assert_non_null(strstr(why, "sha256"));
    assert_false(sampler_has(s, 1));
    assert_int_equal(sampler_load(s, 1, NULL, hex, why, sizeof why), ERR_OK);
    assert_true(sampler_has(s, 1));

    assert_int_equal(sampler_load(s, 9, NULL, NULL, why, sizeof why), ERR_NOTFOUND);
    assert_non_null(strstr(why, "version 9"));
    assert_non_null(strstr(why, "policy-v000009"));

    /* a truncated weights file in a directory given explicitly */
    char bad[600], cmd[4096];
    snprintf(bad, sizeof bad, "%s/corrupt", root);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && cp %s/config.json %s/ && head -c 300 %s > "
             "%s/model.safetensors",
             bad, dir, bad, file, bad);
    assert_int_equal(system(cmd), 0);
    int rc = sampler_load(s, 4, bad, NULL, why, sizeof why);
    assert_true(rc == ERR_PROTO || rc == ERR_INVAL);
    assert_non_null(strstr(why, "version 4"));
    assert_false(sampler_has(s, 4));
    sampler_destroy(&s);
}

/* ---- the remote backend ------------------------------------------------------------------- */

static struct fake_completions fc;

static sampler_t *new_remote(void)
{
    struct sampler_config c;
    assert_int_equal(sampler_config_defaults(&c), ERR_OK);
    c.backend = SAMPLER_BACKEND_REMOTE;
    set_str(&c.remote.base_url, fc.base_url);
    set_str(&c.remote.model, "policy");
    /* the key from the variable api_key_env names (read once, by sampler_new) */
    set_str(&c.remote.api_key_env, "OAIF_TEST_REMOTE_KEY");
    setenv("OAIF_TEST_REMOTE_KEY", "sk-test-REMOTEKEY", 1);
    c.remote.version = 3;
    c.remote.http.backoff_base_ms = 5;
    c.remote.http.backoff_max_ms = 20;
    c.remote.http.max_attempts = 3;
    set_str(&c.prompt_template, "Q: {prompt}\nA:");
    sampler_t *s = NULL;
    char why[256] = "";
    int rc = sampler_new(&s, &c, why, sizeof why);
    if (rc)
        fprintf(stderr, "%s\n", why);
    assert_int_equal(rc, ERR_OK);
    unsetenv("OAIF_TEST_REMOTE_KEY");
    sampler_config_release(&c);
    return s;
}

static void test_remote_backend(void **state)
{
    (void)state;
    assert_int_equal(fake_completions_start(&fc), 0);
    sampler_t *s = new_remote();
    assert_true(sampler_newest(s) == 3);
    struct req q;
    req_init(&q, 2, 2, 64, 11);
    q.p[0].text = "abc";
    struct sampler_result *r = run_ok(s, "rem", &q);
    assert_int_equal(r->version, 3);
    assert_int_equal(r->reply.pairs[1]->responses[0]->policy_version, 3);
    assert_non_null(strstr(fc.last_auth, "sk-test-REMOTEKEY"));
    for (size_t k = 0; k < 4; k++) {
        const struct sampler_response *x = &r->responses[k];
        assert_int_equal(x->text[0], 'r');
        assert_int_equal(x->finish, OAIF__V1__FINISH_REASON__FINISH_REASON_EOS);
        assert_int_equal(x->num_tokens, strlen(x->text));
        assert_true(fabs(x->logprob + 0.25 * x->num_tokens) < 1e-9);
    }
    /* the templated prompt, reversed */
    assert_non_null(strstr(r->responses[0].text, ":A\ncba :Q"));
    /* the two samples of a prompt get different seeds; the same request the same ones */
    assert_string_not_equal(r->responses[0].text, r->responses[1].text);
    struct sampler_result *r2 = run_ok(s, "rem-again", &q);
    for (size_t k = 0; k < 4; k++)
        assert_string_equal(r->responses[k].text, r2->responses[k].text);
    sampler_result_free(&r);
    sampler_result_free(&r2);

    /* length and stop */
    req_init(&q, 1, 1, 4, 11);
    r = run_ok(s, "len", &q);
    assert_int_equal(r->responses[0].finish, OAIF__V1__FINISH_REASON__FINISH_REASON_LENGTH);
    assert_int_equal(strlen(r->responses[0].text), 4);
    sampler_result_free(&r);
    req_init(&q, 1, 1, 64, 11);
    char *stops[1] = {"?"};
    q.sp.stop = stops;
    q.sp.n_stop = 1;
    q.p[0].text = "x?y";
    r = run_ok(s, "stop", &q);
    assert_int_equal(r->responses[0].finish, OAIF__V1__FINISH_REASON__FINISH_REASON_STOP);
    assert_null(strchr(r->responses[0].text, '?'));
    sampler_result_free(&r);

    /* retried through two 503s */
    int before = atomic_load(&fc.requests);
    atomic_store(&fc.fail_first, 2);
    req_init(&q, 1, 1, 16, 5);
    r = run_ok(s, "retry", &q);
    assert_int_equal(atomic_load(&fc.requests) - before, 3);
    sampler_result_free(&r);

    /* a 400 is permanent, and the key never appears in the reason */
    req_init(&q, 1, 2, 16, 5);
    q.p[0].text = "REJECT me";
    char why[1024] = "";
    assert_int_equal(sampler_run(s, "rej", &q.r, 0, &r, why, sizeof why), ERR_REMOTE);
    assert_non_null(strstr(why, "400"));
    assert_null(strstr(why, "REMOTEKEY"));
    assert_true(sampler_error_permanent(ERR_REMOTE));
    /* attempts spent on 503s: retryable */
    atomic_store(&fc.fail_first, 10);
    req_init(&q, 1, 1, 16, 5);
    int rc = sampler_run(s, "spent", &q.r, 0, &r, why, sizeof why);
    assert_int_equal(rc, ERR_AGAIN);
    assert_false(sampler_error_permanent(rc));
    atomic_store(&fc.fail_first, 0);
    /* a pinned version the server does not serve */
    req_init(&q, 1, 1, 16, 5);
    q.r.pin_version = true;
    q.r.policy_version = 4;
    expect_bad(s, &q, ERR_NOTFOUND, "policy_version");
    q.r.policy_version = 3;
    r = run_ok(s, "pin3", &q);
    sampler_result_free(&r);
    assert_int_equal(sampler_load(s, 0, NULL, NULL, why, sizeof why), ERR_INVAL);
    sampler_destroy(&s);
    fake_completions_stop(&fc);
}

static void test_remote_wire(void **state)
{
    (void)state;
    struct sampler_config c;
    assert_int_equal(sampler_config_defaults(&c), ERR_OK);
    set_str(&c.remote.model, "m");
    c.remote.logprobs = true;
    const char *stop[1] = {"\n"};
    struct sampler_remote_call call = {.prompt = "hi",
                                       .max_tokens = 9,
                                       .temperature = 0.5f,
                                       .top_p = 1.0f,
                                       .top_k = 1,
                                       .seed = 77,
                                       .stop = stop,
                                       .nstop = 1};
    char *body = NULL;
    assert_int_equal(sampler_remote_body(&c.remote, &call, &body), ERR_OK);
    assert_non_null(strstr(body, "\"prompt\":\"hi\""));
    assert_non_null(strstr(body, "\"max_tokens\":9"));
    assert_non_null(strstr(body, "\"temperature\":0.0")); /* top_k 1: greedy */
    assert_non_null(strstr(body, "\"top_k\":1"));
    assert_non_null(strstr(body, "\"seed\":77"));
    assert_non_null(strstr(body, "\"stop\":[\"\\n\"]"));
    assert_non_null(strstr(body, "\"logprobs\":1"));
    free(body);
    call.top_k = 0;
    assert_int_equal(sampler_remote_body(&c.remote, &call, &body), ERR_OK);
    assert_null(strstr(body, "top_k"));
    free(body);
    sampler_config_release(&c);

    struct sampler_response o;
    char why[256];
    const char *vllm = "{\"choices\":[{\"text\":\" 47\",\"finish_reason\":\"stop\",\"stop_reason\":"
                       "\"\\n\",\"logprobs\":{\"tokens\":[\" 4\",\"7\"],\"token_logprobs\":[-0.5,"
                       "-0.25]}}],\"usage\":{\"completion_tokens\":3}}";
    assert_int_equal(sampler_remote_parse(vllm, strlen(vllm), &o, why, sizeof why), ERR_OK);
    assert_string_equal(o.text, " 47");
    assert_int_equal(o.finish, OAIF__V1__FINISH_REASON__FINISH_REASON_STOP);
    assert_true(o.has_logprob && fabs(o.logprob + 0.75) < 1e-12);
    assert_int_equal(o.num_tokens, 3);
    free(o.text);
    const char *eos =
        "{\"choices\":[{\"text\":\"ok\",\"finish_reason\":\"stop\",\"stop_reason\":null,"
        "\"logprobs\":null}]}";
    assert_int_equal(sampler_remote_parse(eos, strlen(eos), &o, why, sizeof why), ERR_OK);
    assert_int_equal(o.finish, OAIF__V1__FINISH_REASON__FINISH_REASON_EOS);
    assert_false(o.has_logprob);
    assert_int_equal(o.num_tokens, 0);
    free(o.text);
    const char *llama = "{\"choices\":[{\"text\":\"a\",\"finish_reason\":\"length\"}],\"usage\":"
                        "{\"completion_tokens\":1}}";
    assert_int_equal(sampler_remote_parse(llama, strlen(llama), &o, why, sizeof why), ERR_OK);
    assert_int_equal(o.finish, OAIF__V1__FINISH_REASON__FINISH_REASON_LENGTH);
    free(o.text);
    static const char bad_lp[] =
        "{\"choices\":[{\"text\":\"x\",\"logprobs\":{\"token_logprobs\":[\"a\"]}}]}";
    const char *bad[] = {"<html>", "{}", "{\"choices\":[{\"finish_reason\":\"stop\"}]}",
                         "{\"choices\":[{\"text\":\"x\",\"finish_reason\":\"weird\"}]}", bad_lp};
    const char *says[] = {"not JSON", "no choices", "text", "finish_reason", "token_logprobs"};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(sampler_remote_parse(bad[i], strlen(bad[i]), &o, why, sizeof why),
                         ERR_PROTO);
        assert_non_null(strstr(why, says[i]));
        assert_null(o.text);
    }
    const char *err = "{\"error\":{\"message\":\"model not found\"}}";
    assert_int_equal(sampler_remote_parse(err, strlen(err), &o, why, sizeof why), ERR_PROTO);
    assert_non_null(strstr(why, "model not found"));
}

/* ---- options and texts -------------------------------------------------------------------- */

static void test_options(void **state)
{
    (void)state;
    struct sampler_config c;
    static char example[] = OAIF_FIXTURES "/../../deploy/oaif.example.yaml";
    char *argv[] = {"sampler", "--config", example, "--temperature", "0.7", NULL};
    buf_t errs;
    buf_init(&errs, 0);
    int rc = sampler_config_load(&c, 5, argv, &errs);
    if (rc)
        fprintf(stderr, "%.*s", (int)errs.len, errs.data ? (char *)errs.data : "");
    assert_int_equal(rc, ERR_OK);
    assert_true(c.temperature == 0.7f);
    assert_int_equal(c.max_loaded, 2);
    assert_int_equal(c.backend, SAMPLER_BACKEND_BUILTIN);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.max_new_tokens, 128);
    assert_int_equal(c.remote.http.timeout_ms, 60000);
    assert_string_equal(c.bus.workers_endpoint, "tcp://127.0.0.1:5556");
    sampler_config_release(&c);
    sampler_config_release(&c); /* safe twice */

    char *bad[] = {"sampler", "--top-p", "2", "--backend", "vllm", NULL};
    buf_reset(&errs);
    assert_int_equal(sampler_config_load(&c, 5, bad, &errs), ERR_INVAL);
    assert_non_null(strstr((char *)errs.data, "--top-p"));
    assert_non_null(strstr((char *)errs.data, "--backend"));
    sampler_config_release(&c);

    /* the enum stores the value of its name */
    char *remote[] = {"sampler", "--backend", "remote", "--seed", "12345678901", NULL};
    assert_int_equal(sampler_config_load(&c, 5, remote, NULL), ERR_OK);
    assert_int_equal(c.backend, SAMPLER_BACKEND_REMOTE);
    assert_true(c.seed == 12345678901ull);
    sampler_config_release(&c);
    buf_free(&errs);
}

/* sampler.remote.*'s HTTP client rows are httpopts.h's: http.h's defaults, the names they had,
 * and the three the annotator had too (requests and tokens per minute, the largest answer). */
static void test_remote_http_options_are_the_shared_ones(void **state)
{
    (void)state;
    struct sampler_config o;
    assert_int_equal(sampler_config_defaults(&o), ERR_OK);
    /* the block's defaults are http.h's (test_http checks each row against http_config_default) */
    struct http_config c = http_opts_config(&o.remote.http), d = http_config_default();
    assert_true(c.max_in_flight == d.max_in_flight && c.total_timeout_ms == d.total_timeout_ms);
    sampler_config_release(&o);
    setenv("SAMPLER_REMOTE_MAX_IN_FLIGHT", "4", 1);
    setenv("SAMPLER_REMOTE_RETRY_AFTER_MAX", "1m", 1);
    char *argv[] = {"sampler", "--connect-timeout",   "2s",   "--timeout",
                    "30s",     "--max-attempts",      "7",    "--backoff-base",
                    "250ms",   "--backoff-max",       "5s",   "--rpm",
                    "90",      "--max-response-size", "2MiB", NULL};
    int rc = sampler_config_load(&o, 15, argv, NULL);
    unsetenv("SAMPLER_REMOTE_MAX_IN_FLIGHT");
    unsetenv("SAMPLER_REMOTE_RETRY_AFTER_MAX");
    assert_int_equal(rc, ERR_OK);
    assert_int_equal(o.remote.http.max_in_flight, 4);
    assert_int_equal(o.remote.http.retry_after_max_ms, 60000);
    assert_int_equal(o.remote.http.connect_timeout_ms, 2000);
    assert_int_equal(o.remote.http.timeout_ms, 30000);
    assert_int_equal(o.remote.http.max_attempts, 7);
    assert_int_equal(o.remote.http.backoff_base_ms, 250);
    assert_int_equal(o.remote.http.backoff_max_ms, 5000);
    assert_true(o.remote.http.requests_per_minute == 90);
    assert_int_equal(o.remote.http.max_response_bytes, 2 << 20);
    sampler_config_release(&o);
    buf_t help;
    buf_init(&help, 0);
    assert_int_equal(cfg_help(&sampler_opts_spec, &help), ERR_OK);
    assert_int_equal(buf_append(&help, "", 1), ERR_OK);
    const char *h = (const char *)help.data;
    assert_non_null(strstr(
        h, "--max-in-flight N  sampler.remote.max_in_flight  $SAMPLER_REMOTE_MAX_IN_FLIGHT"));
    assert_non_null(strstr(h, "sampler.remote.timeout  $SAMPLER_REMOTE_TIMEOUT"));
    assert_non_null(strstr(h, "default 10s)"));
    buf_free(&help);
}

/* The table is the only place a default is written: sampler_config_defaults() gives what a
 * load with nothing set gives, and the bus defaults are bus.h's. */
static void test_defaults_are_the_tables(void **state)
{
    (void)state;
    struct sampler_config d, l;
    assert_int_equal(sampler_config_defaults(&d), ERR_OK);
    char *argv[] = {"sampler", NULL};
    assert_int_equal(sampler_config_load(&l, 1, argv, NULL), ERR_OK);
    assert_int_equal(d.backend, SAMPLER_BACKEND_BUILTIN);
    assert_true(d.temperature == l.temperature && d.top_p == l.top_p);
    assert_int_equal(d.n, l.n);
    assert_int_equal(d.max_new_tokens, l.max_new_tokens);
    assert_int_equal(d.max_responses, l.max_responses);
    assert_true(d.seed == l.seed);
    assert_string_equal(d.checkpoint_dir, l.checkpoint_dir);
    assert_true(d.remote.logprobs);
    assert_int_equal(d.remote.http.timeout_ms, l.remote.http.timeout_ms);
    assert_string_equal(d.bus.clients_endpoint, BUS_DEFAULT_CLIENTS);
    assert_string_equal(d.bus.workers_endpoint, BUS_DEFAULT_WORKERS);
    assert_string_equal(d.bus.events_endpoint, BUS_DEFAULT_EVENTS);
    assert_null(d.bus.ledger_public_key);
    assert_int_equal(d.bus.heartbeat_ms, 1000);
    assert_int_equal(d.bus.max_message, BUS_DEFAULT_MAX_MSG);
    /* the defaults make a valid sampler */
    sampler_t *s = NULL;
    char why[256] = "";
    assert_int_equal(sampler_new(&s, &d, why, sizeof why), ERR_OK);
    sampler_destroy(&s);
    sampler_config_release(&d);
    sampler_config_release(&l);
}

/* What `oaif config show` does: a struct of conf_size bytes, zeroed, and nothing else set up. */
static void test_spec_loads_into_a_bare_struct(void **state)
{
    (void)state;
    assert_int_equal(sampler_opts_spec.conf_size, sizeof(struct sampler_config));
    void *conf = calloc(1, sampler_opts_spec.conf_size);
    struct cfg_origin *origins = calloc(sampler_opts_spec.n_options, sizeof *origins);
    assert_non_null(conf);
    assert_non_null(origins);
    buf_t errs, warns, out;
    buf_init(&errs, 0);
    buf_init(&warns, 0);
    buf_init(&out, 0);
    struct cfg_trace trace = {.origins = origins, .warnings = &warns};
    char *argv[] = {"sampler", "--backend", "remote", "--max-message-size", "1MiB", NULL};
    assert_int_equal(cfg_load_ex(&sampler_opts_spec, conf, 5, argv, &errs, &trace), ERR_OK);
    const struct sampler_config *c = conf;
    assert_int_equal(c->backend, SAMPLER_BACKEND_REMOTE);
    assert_int_equal(c->bus.max_message, 1 << 20);
    assert_int_equal(cfg_render_yaml_origins(&sampler_opts_spec, conf, origins, &out), ERR_OK);
    assert_int_equal(buf_append(&out, "", 1), ERR_OK);
    assert_non_null(strstr((char *)out.data, "backend: remote"));
    assert_non_null(strstr((char *)out.data, "heartbeat_interval: 1s"));
    cfg_release(&sampler_opts_spec, conf);
    free(conf);
    free(origins);
    buf_free(&errs);
    buf_free(&warns);
    buf_free(&out);
}

/* The heartbeat moved to bus.heartbeat_interval; the ledger section's key and variable still
 * work for one release, each with a warning that names the new name, and lose to the new ones. */
static void test_old_heartbeat_names_warn_and_work(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/old-heartbeat.yaml", root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("ledger:\n  heartbeat_interval: 250ms\n", f);
    fclose(f);
    struct sampler_config c;
    buf_t warns;
    buf_init(&warns, 0);
    struct cfg_trace trace = {.warnings = &warns};
    char *argv[] = {"sampler", "--config", path, NULL};
    memset(&c, 0, sizeof c);
    assert_int_equal(cfg_load_ex(&sampler_opts_spec, &c, 3, argv, NULL, &trace), ERR_OK);
    assert_int_equal(c.bus.heartbeat_ms, 250);
    assert_int_equal(buf_append(&warns, "", 1), ERR_OK);
    assert_non_null(strstr((char *)warns.data, "ledger.heartbeat_interval"));
    assert_non_null(strstr((char *)warns.data, "bus.heartbeat_interval"));
    sampler_config_release(&c);

    buf_reset(&warns);
    setenv("LEDGER_HEARTBEAT_INTERVAL", "300ms", 1);
    char *plain[] = {"sampler", NULL};
    memset(&c, 0, sizeof c);
    assert_int_equal(cfg_load_ex(&sampler_opts_spec, &c, 1, plain, NULL, &trace), ERR_OK);
    assert_int_equal(c.bus.heartbeat_ms, 300);
    assert_int_equal(buf_append(&warns, "", 1), ERR_OK);
    assert_non_null(strstr((char *)warns.data, "BUS_HEARTBEAT_INTERVAL"));
    sampler_config_release(&c);
    char *flag[] = {"sampler", "--heartbeat", "400ms", NULL};
    assert_int_equal(sampler_config_load(&c, 3, flag, NULL), ERR_OK);
    assert_int_equal(c.bus.heartbeat_ms, 400);
    sampler_config_release(&c);
    unsetenv("LEDGER_HEARTBEAT_INTERVAL");
    unlink(path);
    buf_free(&warns);
}

static void test_text_clean(void **state)
{
    (void)state;
    const char *ok = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80";
    char *t = utf8_clean(ok, strlen(ok));
    assert_string_equal(t, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"); /* valid: unchanged */
    free(t);
    t = utf8_clean("a\xff"
                   "b\0c\xc3",
                   6); /* a bad byte, a NUL, a truncated sequence */
    assert_string_equal(t, "a\xef\xbf\xbd"
                           "b\xef\xbf\xbd"
                           "c\xef\xbf\xbd");
    free(t);
    t = utf8_clean("\xc0\xaf\xed\xa0\x80", 5); /* overlong '/', a surrogate */
    for (const char *p = t; *p; p += 3)
        assert_memory_equal(p, "\xef\xbf\xbd", 3);
    assert_int_equal(strlen(t), 15);
    free(t);
    /* the sequence lengths behind it, which pbjson's string escaping uses too */
    assert_int_equal(utf8_seq((const unsigned char *)"a", 1), 1);
    assert_int_equal(utf8_seq((const unsigned char *)"\xc3\xa9", 2), 2);
    assert_int_equal(utf8_seq((const unsigned char *)"\xe2\x82\xac", 3), 3);
    assert_int_equal(utf8_seq((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
    assert_int_equal(utf8_seq((const unsigned char *)"\xf0\x9f\x98\x80", 3), 0); /* cut short */
    assert_int_equal(utf8_seq((const unsigned char *)"\x80", 1), 0);
    assert_int_equal(utf8_seq((const unsigned char *)"\xf4\x90\x80\x80", 4), 0); /* > U+10FFFF */
    assert_int_equal(utf8_seq((const unsigned char *)"", 0), 0);
    char id[16];
    assert_int_equal(sampler_pair_id(id, sizeof id, "r", 12), ERR_OK);
    assert_string_equal(id, "r/12");
    assert_int_equal(sampler_pair_id(id, 4, "req", 1), ERR_TOOBIG);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_shapes_and_pair_records),
        cmocka_unit_test(test_same_seed_same_samples),
        cmocka_unit_test(test_logprob_is_the_policy_sum),
        cmocka_unit_test(test_finish_reasons),
        cmocka_unit_test(test_bad_requests_name_the_field),
        cmocka_unit_test(test_bad_configuration_names_the_option),
        cmocka_unit_test(test_versions_lru_and_pinning),
        cmocka_unit_test(test_load_checks_sha256_and_names_missing_versions),
        cmocka_unit_test(test_remote_backend),
        cmocka_unit_test(test_remote_wire),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_remote_http_options_are_the_shared_ones),
        cmocka_unit_test(test_defaults_are_the_tables),
        cmocka_unit_test(test_spec_loads_into_a_bare_struct),
        cmocka_unit_test(test_old_heartbeat_names_warn_and_work),
        cmocka_unit_test(test_text_clean),
    };
    int rc = cmocka_run_group_tests_name("sampler", tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}
