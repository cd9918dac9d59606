/* test_annotator.c - the judge end to end against the fake judge (a real process on 127.0.0.1):
 * both wire formats, log-probs, order combination, ties, failures as errors, retries, cost
 * totals, rate limits, the key never in any output; plus the rules and reward-model slots, the
 * cache key and the Label. */
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

#include "annotator.h"
#include "annotator_opts.h"
#include "err.h"
#include "fake_judge_run.h"
#include "log.h"

static struct fake_judge fj;
static const char *const KEY = "sk-ant-TESTKEY-abcdefghijklmnopqrstuvwxyz";

/* An outcome copied out of the callback. */
struct got {
    struct annotator_outcome o;
    size_t label_len;
    int done;
    char error[1100];
    char judge[128];
    char pair_id[64];
    uint8_t label[2048]; /* packed Label, when ok */
};

static void on_done(void *user, const struct annotator_outcome *o)
{
    struct got *g = user;
    g->done++;
    g->o = *o;
    snprintf(g->error, sizeof g->error, "%s", o->error ? o->error : "");
    snprintf(g->judge, sizeof g->judge, "%s", o->judge);
    snprintf(g->pair_id, sizeof g->pair_id, "%s", o->pair_id);
    g->o.error = g->error;
    g->o.judge = g->judge;
    g->o.pair_id = g->pair_id;
    assert_true(o->rc == ERR_OK ? o->error == NULL : o->error != NULL && o->error[0]);
    struct annotator_label l;
    if (annotator_fill_label(o, &l) == ERR_OK) {
        g->label_len = oaif__v1__label__get_packed_size(&l.label);
        assert_true(g->label_len <= sizeof g->label);
        oaif__v1__label__pack(&l.label, g->label);
    } else {
        assert_int_not_equal(o->rc, ERR_OK);
    }
}

static char tpl_helpful[512], tpl_alpaca[512];
/* The option table's defaults (the judge's are defaults.judge); the configurations below are
 * shallow copies that borrow its strings, and replace some with literals: never released. */
static struct annotator_opts defaults;

static void base_config(struct annotator_config *cfg, enum annotator_backend b)
{
    *cfg = defaults.judge;
    cfg->backend = b;
    cfg->base_url = fj.base_url;
    cfg->model = "judge-1";
    cfg->template_name = tpl_helpful;
    cfg->http.backoff_base_ms = 10;
    cfg->http.backoff_max_ms = 40;
    cfg->http.max_attempts = 3;
    cfg->http.timeout_ms = 5000;
    cfg->http.seed = 7;
}

static annotator_t *make(struct annotator_config *cfg, const char *const *headers)
{
    size_t n = 0;
    while (headers && headers[n])
        n++;
    cfg->extra_headers.items = (char **)headers;
    cfg->extra_headers.n = n;
    annotator_t *a = NULL;
    char why[256] = "";
    int rc = annotator_new(&a, cfg, why, sizeof why);
    if (rc)
        fail_msg("annotator_new: %s", why);
    return a;
}

static void run(annotator_t *a, int timeout_ms)
{
    int64_t end = http_now_ms() + timeout_ms;
    while (annotator_pending(a) && http_now_ms() < end)
        assert_int_equal(annotator_poll(a, 50, NULL, 0), ERR_OK);
    assert_int_equal(annotator_pending(a), 0);
}

static struct annotator_request pair(const char *r0, const char *r1)
{
    struct annotator_request req = {
        .pair_id = "pair-1",
        .prompt = "Which planet is the largest?",
        .responses = {r0, r1},
    };
    return req;
}

static void judge_one(annotator_t *a, const struct annotator_request *req, struct got *g)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(annotator_submit(a, req, on_done, g), ERR_OK);
    run(a, 8000);
    assert_int_equal(g->done, 1);
}

static json_t *stats(void)
{
    json_t *s = fake_judge_stats(&fj);
    assert_non_null(s);
    return s;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(tpl_helpful, sizeof tpl_helpful, "%s/helpful.txt", JUDGE_TEMPLATES);
    snprintf(tpl_alpaca, sizeof tpl_alpaca, "%s/alpaca_eval.txt", JUDGE_TEMPLATES);
    if (annotator_opts_defaults(&defaults))
        return -1;
    return fake_judge_start(&fj, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    fake_judge_stop(&fj);
    annotator_opts_release(&defaults);
    return 0;
}

static void test_openai_parsed_verdict_both_orders(void **state)
{
    (void)state;
    assert_int_equal(fake_judge_reset(&fj), 0);
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI);
    cfg.logprobs = false;
    annotator_t *a = make(&cfg, NULL);
    assert_string_equal(annotator_judge_id(a), "openai/judge-1/helpful");
    struct got g;
    struct annotator_request req = pair("Jupiter. GOOD", "Mars. BAD");
    judge_one(a, &req, &g);
    assert_int_equal(g.o.rc, ERR_OK);
    assert_int_equal(g.o.winner, ANNOTATOR_WINNER_FIRST);
    assert_float_equal(g.o.prob_first, 1.0, 0);
    assert_float_equal(g.o.disagreement, 0.0, 0);
    assert_int_equal(g.o.norders, 2);
    assert_false(g.o.orders[0].swapped);
    assert_true(g.o.orders[1].swapped);
    assert_string_equal(g.o.orders[0].verdict, "1");
    assert_string_equal(g.o.orders[1].verdict, "2");
    assert_false(g.o.orders[0].has_logprobs);
    assert_string_equal(g.pair_id, "pair-1");

    struct annotator_request rev = pair("Mars. BAD", "Jupiter. GOOD");
    judge_one(a, &rev, &g);
    assert_int_equal(g.o.winner, ANNOTATOR_WINNER_SECOND);
    assert_float_equal(g.o.prob_first, 0.0, 0);

    json_t *s = stats();
    assert_int_equal(json_integer_value(json_object_get(s, "chat")), 4);
    /* what went over the wire: model, temperature 0, the rendered template, no logprobs */
    json_t *body = json_loads(json_string_value(json_object_get(s, "last_body")), 0, NULL);
    assert_non_null(body);
    assert_string_equal(json_string_value(json_object_get(body, "model")), "judge-1");
    assert_float_equal(json_number_value(json_object_get(body, "temperature")), 0, 0);
    assert_null(json_object_get(body, "logprobs"));
    const char *user = json_string_value(
        json_object_get(json_array_get(json_object_get(body, "messages"), 1), "content"));
    assert_non_null(strstr(user, "Which planet is the largest?"));
    assert_non_null(strstr(user, "Preferred Response="));
    json_decref(body);
    json_decref(s);
    annotator_destroy(&a);
    assert_null(a);
}

static void test_openai_logprobs_give_a_soft_probability(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI);
    const char *h[] = {"X-Fake-Logprobs: 1", "X-Fake-Prob: 0.8", NULL};
    annotator_t *a = make(&cfg, h);
    struct got g;
    struct annotator_request req = pair("GOOD", "BAD");
    judge_one(a, &req, &g);
    assert_int_equal(g.o.rc, ERR_OK);
    assert_true(g.o.orders[0].has_logprobs);
    assert_true(g.o.orders[1].has_logprobs);
    assert_float_equal(g.o.orders[0].prob_first, 0.8, 1e-9); /* GOOD shown first */
    assert_float_equal(g.o.orders[1].prob_first, 0.2, 1e-9); /* BAD shown first */
    assert_float_equal(g.o.prob_first, 0.8, 1e-9);
    assert_float_equal(g.o.disagreement, 0.0, 1e-9);
    assert_int_equal(g.o.winner, ANNOTATOR_WINNER_FIRST);
    annotator_destroy(&a);
}

static void test_position_bias_cancels_and_is_recorded(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI);
    const char *h[] = {"X-Fake-Mode: bias", "X-Fake-Logprobs: 1", "X-Fake-Prob: 0.8", NULL};
    annotator_t *a = make(&cfg, h);
    struct got g;
    struct annotator_request req = pair("GOOD", "BAD");
    judge_one(a, &req, &g);
    /* always "1" with 0.8: p = 1/2 [0.8 + 1 - 0.8] = 0.5, disagreement |0.8 - 0.2| = 0.6 */
    assert_float_equal(g.o.prob_first, 0.5, 1e-9);
    assert_float_equal(g.o.disagreement, 0.6, 1e-9);
    assert_int_equal(g.o.winner, ANNOTATOR_WINNER_TIE);
    annotator_destroy(&a);

    /* parsed verdicts, always "1": p = 1/2, disagreement 1 */
    cfg.logprobs = false;
    const char *h2[] = {"X-Fake-Mode: bias", NULL};
    a = make(&cfg, h2);
    judge_one(a, &req, &g);
    assert_float_equal(g.o.prob_first, 0.5, 0);
    assert_float_equal(g.o.disagreement, 1.0, 0);
    assert_int_equal(g.o.winner, ANNOTATOR_WINNER_TIE);
    struct annotator_totals t;
    annotator_totals(a, &t);
    assert_int_equal(t.ties, 1);
    assert_int_equal(t.disagreement_n, 1);
    assert_float_equal(t.disagreement_sum, 1.0, 0);
    annotator_destroy(&a);
}

static void test_ties_by_band_around_one_half(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI);
    const char *h[] = {"X-Fake-Logprobs: 1", "X-Fake-Prob: 0.55", NULL};
    struct got g;
    struct annotator_request first = pair("GOOD", "BAD"), second = pair("BAD", "GOOD");
    cfg.tie_band = 0.1;
    annotator_t *a = make(&cfg, h);
    judge_one(a, &first, &g);
    assert_float_equal(g.o.prob_first, 0.55, 1e-9);
    assert_int_equal(g.o.winner, ANNOTATOR_WINNER_TIE);
    judge_one(a, &second, &g);
    assert_float_equal(g.o.prob_first, 0.45, 1e-9);
    assert_int_equal(g.o.winner, ANNOTATOR_WINNER_TIE);
    annotator_destroy(&a);
    cfg.tie_band = 0.02;
    a = make(&cfg, h);
    judge_one(a, &first, &g);
    assert_int_equal(g.o.winner, ANNOTATOR_WINNER_FIRST);
    judge_one(a, &second, &g);
    assert_int_equal(g.o.winner, ANNOTATOR_WINNER_SECOND);
    annotator_destroy(&a);
}

static void test_single_random_order(void **state)
{
    (void)state;
    assert_int_equal(fake_judge_reset(&fj), 0);
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI);
    cfg.orders = ANNOTATOR_ORDERS_RANDOM_ONE;
    cfg.logprobs = false;
    annotator_t *a = make(&cfg, NULL);
    int swapped = 0;
    for (uint64_t seed = 1; seed <= 16; seed++) {
        struct got g;
        struct annotator_request req = pair("GOOD", "BAD");
        req.seed = seed;
        judge_one(a, &req, &g);
        assert_int_equal(g.o.norders, 1);
        swapped += g.o.orders[0].swapped;
        /* whatever order was shown, the answer is about responses[0] */
        assert_float_equal(g.o.prob_first, 1.0, 0);
        assert_int_equal(g.o.winner, ANNOTATOR_WINNER_FIRST);
        assert_float_equal(g.o.disagreement, 0, 0);
        /* the same seed picks the same order */
        struct got g2;
        judge_one(a, &req, &g2);
        assert_int_equal(g2.o.orders[0].swapped, g.o.orders[0].swapped);
    }
    assert_true(swapped > 0 && swapped < 16);
    json_t *s = stats();
    assert_int_equal(json_integer_value(json_object_get(s, "chat")), 32);
    json_decref(s);
    annotator_destroy(&a);
}

static void test_anthropic_messages_with_the_api_key(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_ANTHROPIC);
    cfg.api_key = (char *)KEY;
    cfg.logprobs = true; /* ignored: the Messages API has none */
    const char *h[] = {"X-Fake-Mode: explain", NULL};
    annotator_t *a = make(&cfg, h);
    struct got g;
    struct annotator_request req = pair("BAD", "GOOD");
    judge_one(a, &req, &g);
    assert_int_equal(g.o.rc, ERR_OK);
    assert_int_equal(g.o.winner, ANNOTATOR_WINNER_SECOND);
    assert_false(g.o.orders[0].has_logprobs);
    json_t *s = stats();
    assert_string_equal(json_string_value(json_object_get(s, "last_path")), "/v1/messages");
    assert_string_equal(json_string_value(json_object_get(s, "last_x_api_key")), KEY);
    assert_string_equal(json_string_value(json_object_get(s, "last_anthropic_version")),
                        defaults.judge.anthropic_version);
    assert_string_equal(json_string_value(json_object_get(s, "last_authorization")), "");
    json_t *body = json_loads(json_string_value(json_object_get(s, "last_body")), 0, NULL);
    assert_non_null(json_object_get(body, "system"));
    assert_int_equal(json_integer_value(json_object_get(body, "max_tokens")),
                     defaults.judge.max_tokens);
    json_decref(body);
    json_decref(s);
    annotator_destroy(&a);
}

static void test_alpaca_eval_template_m_and_M(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI);
    cfg.template_name = tpl_alpaca;
    const char *h[] = {"X-Fake-Answers: m,M", "X-Fake-Logprobs: 1", "X-Fake-Prob: 0.7", NULL};
    annotator_t *a = make(&cfg, h);
    struct got g;
    struct annotator_request req = pair("BAD", "GOOD");
    judge_one(a, &req, &g);
    assert_int_equal(g.o.rc, ERR_OK);
    assert_float_equal(g.o.prob_first, 0.3, 1e-9);
    assert_string_equal(g.o.orders[0].verdict, "M");
    assert_string_equal(g.o.orders[1].verdict, "m");
    annotator_destroy(&a);
}

static void expect_failure(const char *const *headers, enum annotator_backend b,
                           enum annotator_failure want, int want_rc, const char *want_text)
{
    struct annotator_config cfg;
    base_config(&cfg, b);
    annotator_t *a = make(&cfg, headers);
    struct got g;
    struct annotator_request req = pair("GOOD", "BAD");
    judge_one(a, &req, &g);
    if (g.o.rc != want_rc || g.o.failure != want || !strstr(g.error, want_text))
        fail_msg("rc %d failure %d error '%s'; wanted rc %d failure %d '%s'", g.o.rc,
                 (int)g.o.failure, g.error, want_rc, (int)want, want_text);
    assert_int_equal(g.label_len, 0); /* a failure is never a label */
    struct annotator_totals t;
    annotator_totals(a, &t);
    assert_int_equal(t.failed, 1);
    assert_int_equal(t.failed_by[want], 1);
    assert_int_equal(t.ok, 0);
    annotator_destroy(&a);
}

static void test_garbage_and_refusals_are_errors(void **state)
{
    (void)state;
    const char *garbage[] = {"X-Fake-Mode: garbage", NULL};
    expect_failure(garbage, ANNOTATOR_BACKEND_OPENAI, ANNOTATOR_FAIL_PARSE, ERR_PROTO, "not JSON");
    expect_failure(garbage, ANNOTATOR_BACKEND_ANTHROPIC, ANNOTATOR_FAIL_PARSE, ERR_PROTO,
                   "upstream proxy hiccup");
    const char *chatter[] = {"X-Fake-Mode: chatter", NULL};
    expect_failure(chatter, ANNOTATOR_BACKEND_OPENAI, ANNOTATOR_FAIL_PARSE, ERR_PROTO,
                   "no verdict");
    expect_failure(chatter, ANNOTATOR_BACKEND_ANTHROPIC, ANNOTATOR_FAIL_PARSE, ERR_PROTO,
                   "I cannot decide");
    const char *refuse[] = {"X-Fake-Mode: refuse", NULL};
    expect_failure(refuse, ANNOTATOR_BACKEND_OPENAI, ANNOTATOR_FAIL_REFUSAL, ERR_REMOTE,
                   "refusal: I'm sorry");
    expect_failure(refuse, ANNOTATOR_BACKEND_ANTHROPIC, ANNOTATOR_FAIL_REFUSAL, ERR_REMOTE,
                   "refusal");
}

static void test_http_failures_after_retries_are_errors(void **state)
{
    (void)state;
    const char *always500[] = {"X-Fake-Fail: 1000", "X-Fake-Key: ann-always500", NULL};
    expect_failure(always500, ANNOTATOR_BACKEND_OPENAI, ANNOTATOR_FAIL_HTTP, ERR_AGAIN, "HTTP 500");
    const char *overloaded[] = {"X-Fake-Fail: 1000", "X-Fake-Fail-Status: 529",
                                "X-Fake-Key: ann-529", NULL};
    expect_failure(overloaded, ANNOTATOR_BACKEND_ANTHROPIC, ANNOTATOR_FAIL_HTTP, ERR_AGAIN,
                   "overloaded_error");
    const char *closed[] = {"X-Fake-Mode: close", NULL};
    expect_failure(closed, ANNOTATOR_BACKEND_OPENAI, ANNOTATOR_FAIL_TRANSPORT, ERR_IO,
                   "after 3 attempts");
    const char *bad_request[] = {"X-Fake-Fail: 1000", "X-Fake-Fail-Status: 400",
                                 "X-Fake-Key: ann-400", NULL};
    expect_failure(bad_request, ANNOTATOR_BACKEND_OPENAI, ANNOTATOR_FAIL_HTTP, ERR_REMOTE,
                   "HTTP 400");
}

static void test_500_then_ok_and_retry_after(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI);
    cfg.orders = ANNOTATOR_ORDERS_RANDOM_ONE;
    const char *h[] = {"X-Fake-Fail: 2", "X-Fake-Key: ann-500-then-ok", NULL};
    annotator_t *a = make(&cfg, h);
    struct got g;
    struct annotator_request req = pair("GOOD", "BAD");
    judge_one(a, &req, &g);
    assert_int_equal(g.o.rc, ERR_OK);
    assert_int_equal(g.o.orders[0].attempts, 3);
    struct annotator_totals t;
    annotator_totals(a, &t);
    assert_int_equal(t.http_retries, 2);
    annotator_destroy(&a);

    const char *h2[] = {"X-Fake-Fail: 1", "X-Fake-Fail-Status: 429", "X-Fake-Retry-After: 1",
                        "X-Fake-Key: ann-429", NULL};
    a = make(&cfg, h2);
    judge_one(a, &req, &g);
    assert_int_equal(g.o.rc, ERR_OK);
    assert_int_equal(g.o.orders[0].attempts, 2);
    assert_true(g.o.latency_ms >= 990);
    annotator_destroy(&a);
}

static void test_cost_and_token_totals(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI);
    cfg.price_input_per_mtok = 2.5;
    cfg.price_output_per_mtok = 10;
    const char *h[] = {"X-Fake-Usage: 1000,10", NULL};
    annotator_t *a = make(&cfg, h);
    struct got g[3];
    struct annotator_request req = pair("GOOD", "BAD");
    for (int i = 0; i < 3; i++) {
        memset(&g[i], 0, sizeof g[i]);
        assert_int_equal(annotator_submit(a, &req, on_done, &g[i]), ERR_OK);
    }
    run(a, 8000);
    /* per call 1000 * 2.5e-6 + 10 * 10e-6 = 0.0026; two calls a judgement */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g[i].o.rc, ERR_OK);
        assert_float_equal(g[i].o.orders[0].cost, 0.0026, 1e-12);
        assert_float_equal(g[i].o.cost, 0.0052, 1e-12);
        assert_int_equal(g[i].o.prompt_tokens, 2000);
        assert_int_equal(g[i].o.completion_tokens, 20);
        assert_true(g[i].o.latency_ms >= 0);
        Oaif__V1__Label *l = oaif__v1__label__unpack(NULL, g[i].label_len, g[i].label);
        assert_non_null(l);
        assert_float_equal(l->cost, 0.0052, 1e-12);
        assert_int_equal(l->prompt_tokens, 2000);
        assert_int_equal(l->n_orders, 2);
        assert_float_equal(l->orders[1]->cost, 0.0026, 1e-12);
        oaif__v1__label__free_unpacked(l, NULL);
    }
    struct annotator_totals t;
    annotator_totals(a, &t);
    assert_int_equal(t.judgements, 3);
    assert_int_equal(t.ok, 3);
    assert_int_equal(t.calls, 6);
    assert_int_equal(t.prompt_tokens, 6000);
    assert_int_equal(t.completion_tokens, 60);
    assert_float_equal(t.cost, 0.0156, 1e-12);
    assert_int_equal(t.wins_first, 3);
    annotator_destroy(&a);
}

static void test_label_from_outcome(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI);
    cfg.name = "helpful-judge";
    const char *h[] = {"X-Fake-Logprobs: 1", "X-Fake-Prob: 0.9", NULL};
    annotator_t *a = make(&cfg, h);
    struct got g;
    struct annotator_request req = pair("BAD", "GOOD");
    judge_one(a, &req, &g);
    Oaif__V1__Label *l = oaif__v1__label__unpack(NULL, g.label_len, g.label);
    assert_non_null(l);
    assert_string_equal(l->pair_id, "pair-1");
    assert_string_equal(l->judge, "helpful-judge");
    assert_int_equal(l->winner, OAIF__V1__WINNER__WINNER_SECOND);
    assert_float_equal(l->prob_first, 0.1, 1e-9);
    assert_int_equal(l->n_orders, 2);
    assert_false(l->orders[0]->swapped);
    assert_true(l->orders[1]->swapped);
    assert_float_equal(l->orders[0]->prob_first, 0.1, 1e-9);
    assert_float_equal(l->orders[1]->prob_first, 0.9, 1e-9);
    assert_true(l->orders[0]->has_logprobs);
    assert_string_equal(l->orders[0]->verdict, "2");
    assert_false(l->noise_flipped);
    oaif__v1__label__free_unpacked(l, NULL);
    struct annotator_outcome failed = {.rc = ERR_PROTO, .error = "x"};
    struct annotator_label lab;
    assert_int_equal(annotator_fill_label(&failed, &lab), ERR_INVAL);
    annotator_destroy(&a);
}

/* ---- the key never leaves ------------------------------------------------------------------ */

static char *capture_stderr(void (*fn)(void))
{
    char path[] = "/tmp/oaif-test-annotator-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    char *s = calloc(1, (size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(pread(fd, s, (size_t)n, 0), n);
    close(fd);
    unlink(path);
    return s;
}

/* Does needle occur in the n bytes at p? (memmem is a GNU extension) */
static bool bytes_contain(const void *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i <= n - k; i++)
        if (memcmp((const char *)p + i, needle, k) == 0)
            return true;
    return false;
}

static struct got key_got[4];
static char key_describe[2048];
static struct annotator_totals key_totals;

static void key_scenario(void)
{
    log_set_level(LOG_LVL_DEBUG);
    setenv("OAIF_TEST_JUDGE_KEY", KEY, 1);
    static const enum annotator_backend backends[2] = {ANNOTATOR_BACKEND_OPENAI,
                                                       ANNOTATOR_BACKEND_ANTHROPIC};
    for (int b = 0; b < 2; b++) {
        struct annotator_config cfg;
        base_config(&cfg, backends[b]);
        cfg.api_key_env = "OAIF_TEST_JUDGE_KEY";
        /* the server echoes the key in every error body (as real APIs do for a bad key) */
        const char *h[] = {"X-Fake-Fail: 1000", "X-Fake-Echo-Auth: 1", "X-Fake-Key: echo-key",
                           NULL};
        annotator_t *a = make(&cfg, h);
        struct annotator_request req = pair("GOOD", "BAD");
        judge_one(a, &req, &key_got[2 * (size_t)b]);
        annotator_destroy(&a);
        const char *ok[] = {NULL};
        a = make(&cfg, ok);
        judge_one(a, &req, &key_got[2 * (size_t)b + 1]);
        annotator_describe(a, key_describe, sizeof key_describe);
        log_info("%s", key_describe); /* as main() logs it at start-up */
        annotator_totals(a, &key_totals);
        annotator_destroy(&a);
    }
    unsetenv("OAIF_TEST_JUDGE_KEY");
    log_set_level(LOG_LVL_INFO);
}

static void test_key_absent_from_logs_errors_totals_and_labels(void **state)
{
    (void)state;
    char *logs = capture_stderr(key_scenario);
    assert_non_null(strstr(logs, "attempt 2/3")); /* retries were logged ... */
    assert_null(strstr(logs, KEY));               /* ... without the key */
    assert_null(strstr(logs, "TESTKEY"));
    for (int i = 0; i < 4; i += 2) {
        assert_int_not_equal(key_got[i].o.rc, ERR_OK);
        assert_non_null(strstr(key_got[i].error, "incorrect API key provided"));
        assert_non_null(strstr(key_got[i].error, "[REDACTED]"));
        assert_null(strstr(key_got[i].error, KEY));
        assert_int_equal(key_got[i + 1].o.rc, ERR_OK);
        assert_true(key_got[i + 1].label_len > 0);
        assert_false(bytes_contain(key_got[i + 1].label, key_got[i + 1].label_len, KEY));
    }
    assert_false(bytes_contain(&key_totals, sizeof key_totals, KEY));
    assert_null(strstr(key_describe, KEY));
    assert_non_null(strstr(key_describe, "set from env OAIF_TEST_JUDGE_KEY"));
    /* and yet it was sent */
    json_t *s = stats();
    assert_string_equal(json_string_value(json_object_get(s, "last_x_api_key")), KEY);
    json_decref(s);
    free(logs);
}

static void test_rate_limit_spaces_the_calls(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI);
    cfg.http.requests_per_minute = 600; /* 10 calls a second */
    cfg.http.burst_seconds = 0.1;
    annotator_t *a = make(&cfg, NULL);
    struct got g[3];
    struct annotator_request req = pair("GOOD", "BAD");
    int64_t t0 = http_now_ms();
    for (int i = 0; i < 3; i++) {
        memset(&g[i], 0, sizeof g[i]);
        assert_int_equal(annotator_submit(a, &req, on_done, &g[i]), ERR_OK);
    }
    run(a, 8000);
    /* six calls: the first at once, then one every 100 ms */
    assert_true(http_now_ms() - t0 >= 480);
    struct annotator_totals t;
    annotator_totals(a, &t);
    assert_true(t.rate_waits >= 4);
    assert_int_equal(t.ok, 3);
    annotator_destroy(&a);
}

/* ---- rules and reward-model slots ---------------------------------------------------------- */

static int fake_rules(void *user, const struct annotator_request *req,
                      struct annotator_verdict *out, char *why, size_t whylen)
{
    int *calls = user;
    (*calls)++;
    if (!req->reference) {
        snprintf(why, whylen, "no reference answer");
        return ERR_INVAL;
    }
    bool c0 = strstr(req->responses[0], req->reference) != NULL;
    bool c1 = strstr(req->responses[1], req->reference) != NULL;
    out->prob_first = c0 == c1 ? 0.5 : c0 ? 1 : 0;
    out->noise_flipped = req->seed == 99;
    if (out->noise_flipped)
        out->prob_first = 1 - out->prob_first;
    snprintf(out->verdict, sizeof out->verdict, "%s", c0 == c1 ? "tie" : "correct wins");
    return ERR_OK;
}

static void test_rules_backend_slot(void **state)
{
    (void)state;
    int calls = 0;
    struct annotator_config cfg = defaults.judge;
    cfg.backend = ANNOTATOR_BACKEND_RULES;
    cfg.rules = fake_rules;
    cfg.rules_user = &calls;
    cfg.name = "rules/noise=0.25";
    annotator_t *a = make(&cfg, NULL);
    assert_string_equal(annotator_judge_id(a), "rules/noise=0.25");
    struct got g;
    struct annotator_request req = pair("it is 4", "it is 5");
    req.reference = "4";
    judge_one(a, &req, &g);
    assert_int_equal(g.o.rc, ERR_OK);
    assert_int_equal(g.o.winner, ANNOTATOR_WINNER_FIRST);
    assert_int_equal(g.o.norders, 1);
    assert_string_equal(g.o.orders[0].verdict, "correct wins");
    assert_false(g.o.noise_flipped);
    req.seed = 99;
    judge_one(a, &req, &g);
    assert_int_equal(g.o.winner, ANNOTATOR_WINNER_SECOND);
    assert_true(g.o.noise_flipped);
    Oaif__V1__Label *l = oaif__v1__label__unpack(NULL, g.label_len, g.label);
    assert_true(l->noise_flipped);
    oaif__v1__label__free_unpacked(l, NULL);
    req.reference = NULL;
    judge_one(a, &req, &g);
    assert_int_equal(g.o.failure, ANNOTATOR_FAIL_BACKEND);
    assert_non_null(strstr(g.error, "no reference answer"));
    assert_int_equal(calls, 3);
    /* no sockets: a poll with no fds and no timeout returns at once */
    assert_int_equal(annotator_poll(a, -1, NULL, 0), ERR_OK);
    assert_int_equal(annotator_timeout_ms(a), -1);
    annotator_destroy(&a);
}

struct scorer {
    uint64_t tickets[8];
    int n;
    bool sync;
    double r[2];
};

static int fake_score(void *user, annotator_t *a, uint64_t ticket,
                      const struct annotator_request *req)
{
    struct scorer *s = user;
    if (strcmp(req->prompt, "fail") == 0)
        return ERR_IO;
    if (s->sync)
        return annotator_scored(a, ticket, ERR_OK, s->r[0], s->r[1], NULL);
    s->tickets[s->n++] = ticket;
    return ERR_OK;
}

static void test_reward_model_backend_slot(void **state)
{
    (void)state;
    struct scorer sc = {0};
    struct annotator_config cfg = defaults.judge;
    cfg.backend = ANNOTATOR_BACKEND_REWARD_MODEL;
    cfg.score = fake_score;
    cfg.score_user = &sc;
    annotator_t *a = make(&cfg, NULL);
    assert_string_equal(annotator_judge_id(a), "reward-model");
    struct annotator_request req = pair("x", "y");
    struct got g[3];
    memset(g, 0, sizeof g);
    for (int i = 0; i < 3; i++)
        assert_int_equal(annotator_submit(a, &req, on_done, &g[i]), ERR_OK);
    assert_int_equal(sc.n, 3);
    assert_int_equal(annotator_poll(a, 0, NULL, 0), ERR_OK);
    assert_int_equal(g[0].done + g[1].done + g[2].done, 0);
    /* answers arrive out of order, later (as bus replies would) */
    assert_int_equal(annotator_scored(a, sc.tickets[1], ERR_OK, 2.0, 1.0, NULL), ERR_OK);
    assert_int_equal(annotator_scored(a, sc.tickets[0], ERR_OK, -1.0, 1.0, NULL), ERR_OK);
    assert_int_equal(annotator_scored(a, sc.tickets[2], ERR_TIMEOUT, 0, 0, "score timed out"),
                     ERR_OK);
    assert_int_equal(annotator_scored(a, sc.tickets[2], ERR_OK, 0, 0, NULL), ERR_NOTFOUND);
    assert_int_equal(annotator_timeout_ms(a), 0);
    assert_int_equal(annotator_poll(a, 0, NULL, 0), ERR_OK);
    assert_float_equal(g[1].o.prob_first, 1 / (1 + exp(-1.0)), 1e-12);
    assert_int_equal(g[1].o.winner, ANNOTATOR_WINNER_FIRST);
    assert_float_equal(g[0].o.prob_first, 1 / (1 + exp(2.0)), 1e-12);
    assert_int_equal(g[0].o.winner, ANNOTATOR_WINNER_SECOND);
    assert_int_equal(g[2].o.failure, ANNOTATOR_FAIL_BACKEND);
    assert_non_null(strstr(g[2].error, "score timed out"));
    /* scored from inside the scoring function; a failure to start; a non-finite reward */
    sc.sync = true;
    sc.r[0] = 0.5;
    sc.r[1] = 0.5;
    struct got h;
    judge_one(a, &req, &h);
    assert_float_equal(h.o.prob_first, 0.5, 0);
    assert_int_equal(h.o.winner, ANNOTATOR_WINNER_TIE);
    sc.r[0] = NAN;
    judge_one(a, &req, &h);
    assert_int_equal(h.o.failure, ANNOTATOR_FAIL_BACKEND);
    struct annotator_request bad = pair("x", "y");
    bad.prompt = "fail";
    judge_one(a, &bad, &h);
    assert_int_equal(h.o.rc, ERR_IO);
    assert_int_equal(h.o.failure, ANNOTATOR_FAIL_BACKEND);
    /* one left unscored at destroy: freed, no callback */
    sc.sync = false;
    sc.n = 0;
    assert_int_equal(annotator_submit(a, &req, on_done, &h), ERR_OK);
    annotator_destroy(&a);
}

/* ---- cache key, config, requests ------------------------------------------------------------ */

static void test_cache_key_covers_judge_and_question(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI);
    annotator_t *a = make(&cfg, NULL);
    cfg.model = "judge-2";
    annotator_t *b = make(&cfg, NULL);
    cfg.model = "judge-1";
    cfg.template_name = tpl_alpaca;
    annotator_t *c = make(&cfg, NULL);
    struct annotator_request r = pair("A", "B");
    char k1[65], k2[65];
    annotator_cache_key(a, &r, k1);
    assert_int_equal(strlen(k1), 64);
    annotator_cache_key(a, &r, k2);
    assert_string_equal(k1, k2);
    r.seed = 5; /* both orders: the seed changes nothing */
    annotator_cache_key(a, &r, k2);
    assert_string_equal(k1, k2);
    annotator_cache_key(b, &r, k2);
    assert_string_not_equal(k1, k2);
    annotator_cache_key(c, &r, k2);
    assert_string_not_equal(k1, k2);
    struct annotator_request swapped = pair("B", "A");
    annotator_cache_key(a, &swapped, k2);
    assert_string_not_equal(k1, k2);
    struct annotator_request instr = pair("A", "B");
    instr.instruction = "prefer shorter responses";
    annotator_cache_key(a, &instr, k2);
    assert_string_not_equal(k1, k2);
    /* field boundaries are unambiguous */
    struct annotator_request s1 = pair("AB", ""), s2 = pair("A", "B");
    annotator_cache_key(a, &s1, k1);
    annotator_cache_key(a, &s2, k2);
    assert_string_not_equal(k1, k2);
    annotator_destroy(&a);
    annotator_destroy(&b);
    annotator_destroy(&c);
}

static void test_bad_configs_say_what_is_wrong(void **state)
{
    (void)state;
    static const struct {
        const char *field;
        const char *want;
    } cases[] = {
        {"model", "model: required"},
        {"url", "base_url"},
        {"template", "template: required"},
        {"template_missing", "/nonexistent/t.txt"},
        {"env", "OAIF_SURELY_UNSET_VAR"},
        {"key", "annotator.api_key: the key must be one line"},
        {"top", "top_logprobs"},
        {"tau", "tie_band"},
        {"temp", "temperature"},
        {"rules", "rules function"},
        {"score", "scoring function"},
        {"header", "extra_headers"},
        {"k", "max_in_flight"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct annotator_config cfg;
        base_config(&cfg, ANNOTATOR_BACKEND_OPENAI);
        const char *f = cases[i].field;
        const char *bad_header[] = {"no colon here"};
        if (!strcmp(f, "model"))
            cfg.model = NULL;
        else if (!strcmp(f, "url"))
            cfg.base_url = "ftp://x";
        else if (!strcmp(f, "template"))
            cfg.template_name = NULL;
        else if (!strcmp(f, "template_missing"))
            cfg.template_name = "/nonexistent/t.txt";
        else if (!strcmp(f, "env"))
            cfg.api_key_env = "OAIF_SURELY_UNSET_VAR";
        else if (!strcmp(f, "key"))
            cfg.api_key = "sk-TESTKEY\nsecond line";
        else if (!strcmp(f, "top"))
            cfg.top_logprobs = 0;
        else if (!strcmp(f, "tau"))
            cfg.tie_band = 0.7;
        else if (!strcmp(f, "temp"))
            cfg.temperature = -1;
        else if (!strcmp(f, "rules"))
            cfg.backend = ANNOTATOR_BACKEND_RULES;
        else if (!strcmp(f, "score"))
            cfg.backend = ANNOTATOR_BACKEND_REWARD_MODEL;
        else if (!strcmp(f, "header")) {
            cfg.extra_headers.items = (char **)bad_header;
            cfg.extra_headers.n = 1;
        } else if (!strcmp(f, "k"))
            cfg.http.max_in_flight = 0;
        annotator_t *a = NULL;
        char why[256] = "";
        int rc = annotator_new(&a, &cfg, why, sizeof why);
        if (rc == ERR_OK || !strstr(why, cases[i].want) || strstr(why, "TESTKEY"))
            fail_msg("case %s: rc %d why '%s'", f, rc, why);
        assert_null(a);
    }
    enum annotator_backend b;
    assert_int_equal(annotator_backend_parse("reward-model", &b), ERR_OK);
    assert_int_equal(b, ANNOTATOR_BACKEND_REWARD_MODEL);
    assert_int_equal(annotator_backend_parse("gpt", &b), ERR_INVAL);
    assert_string_equal(annotator_backend_name(ANNOTATOR_BACKEND_ANTHROPIC), "anthropic");
    assert_string_equal(annotator_backend_name((enum annotator_backend)0), "?");
    assert_string_equal(annotator_orders_name(ANNOTATOR_ORDERS_RANDOM_ONE), "random");
}

static void test_bad_requests_are_refused(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI);
    annotator_t *a = make(&cfg, NULL);
    struct got g = {0};
    struct annotator_request r = pair("A", NULL);
    assert_int_equal(annotator_submit(a, &r, on_done, &g), ERR_INVAL);
    struct annotator_request utf = pair("ok", "bad \xc3\x28 utf-8");
    assert_int_equal(annotator_submit(a, &utf, on_done, &g), ERR_INVAL);
    assert_int_equal(annotator_pending(a), 0);
    assert_int_equal(g.done, 0);

    Oaif__V1__Response r0 = OAIF__V1__RESPONSE__INIT, r1 = OAIF__V1__RESPONSE__INIT;
    r0.text = "first";
    r1.text = "second";
    Oaif__V1__Response *rs[2] = {&r0, &r1};
    Oaif__V1__Pair p = OAIF__V1__PAIR__INIT;
    p.id = "p9";
    p.prompt = "q";
    p.n_responses = 1;
    p.responses = rs;
    Oaif__V1__AnnotateRequest ar = OAIF__V1__ANNOTATE_REQUEST__INIT;
    ar.pair = &p;
    ar.instruction = "be brief";
    ar.seed = 3;
    struct annotator_request req;
    char why[128];
    assert_int_equal(annotator_request_from_pb(&ar, &req, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "p9 has 1 responses"));
    p.n_responses = 2;
    assert_int_equal(annotator_request_from_pb(&ar, &req, why, sizeof why), ERR_OK);
    assert_string_equal(req.responses[1], "second");
    assert_string_equal(req.instruction, "be brief");
    assert_null(req.reference);
    assert_int_equal(req.seed, 3);
    ar.pair = NULL;
    assert_int_equal(annotator_request_from_pb(&ar, &req, why, sizeof why), ERR_INVAL);
    annotator_destroy(&a);
}

static void not_called(void *user, const struct annotator_outcome *o)
{
    (void)user;
    (void)o;
    fail_msg("a destroyed annotator called back");
}

static void test_destroy_with_judgements_in_flight(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI);
    cfg.http.max_in_flight = 2;
    const char *h[] = {"X-Fake-Latency: 300", NULL};
    annotator_t *a = make(&cfg, h);
    struct annotator_request req = pair("GOOD", "BAD");
    for (int i = 0; i < 4; i++)
        assert_int_equal(annotator_submit(a, &req, not_called, NULL), ERR_OK);
    assert_int_equal(annotator_poll(a, 20, NULL, 0), ERR_OK);
    assert_int_equal(annotator_pending(a), 4);
    annotator_destroy(&a);
    annotator_destroy(&a);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_parsed_verdict_both_orders),
        cmocka_unit_test(test_openai_logprobs_give_a_soft_probability),
        cmocka_unit_test(test_position_bias_cancels_and_is_recorded),
        cmocka_unit_test(test_ties_by_band_around_one_half),
        cmocka_unit_test(test_single_random_order),
        cmocka_unit_test(test_anthropic_messages_with_the_api_key),
        cmocka_unit_test(test_alpaca_eval_template_m_and_M),
        cmocka_unit_test(test_garbage_and_refusals_are_errors),
        cmocka_unit_test(test_http_failures_after_retries_are_errors),
        cmocka_unit_test(test_500_then_ok_and_retry_after),
        cmocka_unit_test(test_cost_and_token_totals),
        cmocka_unit_test(test_label_from_outcome),
        cmocka_unit_test(test_key_absent_from_logs_errors_totals_and_labels),
        cmocka_unit_test(test_rate_limit_spaces_the_calls),
        cmocka_unit_test(test_rules_backend_slot),
        cmocka_unit_test(test_reward_model_backend_slot),
        cmocka_unit_test(test_cache_key_covers_judge_and_question),
        cmocka_unit_test(test_bad_configs_say_what_is_wrong),
        cmocka_unit_test(test_bad_requests_are_refused),
        cmocka_unit_test(test_destroy_with_judgements_in_flight),
    };
    int rc = cmocka_run_group_tests_name("annotator", tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}
