/* test_judge_conformance.c - the judges against replies shaped as the providers' references show
 * them (tests/judge_conformance_server.h, fixtures in tests/fixtures/judge-replies/), through the
 * real HTTP path (the annotator's libcurl client, the sampler's remote backend): each case asserts
 * the label, or the failure with its reason and whether it is permanent.
 *
 * Every case here was judged wrongly before the verdict grammars (issue 18): a judge reasoning
 * first got the probability of the first "1"/"2" it wrote; a numbered list beat the verdict; a
 * cut-off answer became a label; reasoning models got max_tokens; a 429 for spent credits was
 * retried; cached tokens cost full price; llama.cpp's log-probs were read as 0. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotator.h"
#include "annotator_opts.h"
#include "err.h"
#include "judge_conformance_server.h"
#include "log.h"
#include "sampler_remote.h"

static jcs_t *srv;
/* The option table's defaults; the configurations below are shallow copies that borrow its
 * strings and replace some with literals: never released. */
static struct annotator_opts defaults;

/* An outcome copied out of the callback. */
struct got {
    struct annotator_outcome o;
    int done;
    char error[1100];
};

static void on_done(void *user, const struct annotator_outcome *o)
{
    struct got *g = user;
    g->done++;
    g->o = *o;
    snprintf(g->error, sizeof g->error, "%s", o->error ? o->error : "");
    g->o.error = g->error;
    g->o.judge = g->o.pair_id = "";
}

static void base_config(struct annotator_config *cfg, enum annotator_backend b, const char *model,
                        const char *tpl)
{
    *cfg = defaults.judge;
    cfg->backend = b;
    cfg->base_url = (char *)jcs_base_url(srv);
    cfg->model = (char *)model;
    cfg->api_key = "sk-proj-TESTKEY0123456789";
    cfg->template_name = (char *)tpl;
    cfg->template_dir = JUDGE_TEMPLATES;
    cfg->max_tokens = 512;
    cfg->http.backoff_base_ms = 10;
    cfg->http.backoff_max_ms = 40;
    cfg->http.max_attempts = 3;
    cfg->http.timeout_ms = 5000;
    cfg->http.seed = 7;
}

/* Judges ALPHA (the first response) against BETA with cfg, the server replaying ab to the order
 * showing ALPHA first and ba to the swapped one. */
static void judge(struct annotator_config *cfg, const struct jcs_reply *ab, size_t nab,
                  const struct jcs_reply *ba, size_t nba, struct got *g)
{
    jcs_script(srv, ab, nab, ba, nba);
    annotator_t *a = NULL;
    char why[512] = "";
    if (annotator_new(&a, cfg, why, sizeof why))
        fail_msg("annotator_new: %s", why);
    struct annotator_request req = {
        .pair_id = "pair-1",
        .prompt = "At what temperature does water boil at sea level?",
        .responses = {"ALPHA: water boils at 100 degrees C at sea level.",
                      "BETA: water boils at 90 degrees C at sea level."},
    };
    memset(g, 0, sizeof *g);
    assert_int_equal(annotator_submit(a, &req, on_done, g), ERR_OK);
    int64_t end = http_now_ms() + 10000;
    while (annotator_pending(a) && http_now_ms() < end)
        assert_int_equal(annotator_poll(a, 50, NULL, 0), ERR_OK);
    assert_int_equal(g->done, 1);
    annotator_destroy(&a);
}

static struct jcs_reply ok(const char *fixture)
{
    return (struct jcs_reply){.status = 200, .fixture = fixture};
}

static void assert_failed(const struct got *g, enum annotator_failure f, bool permanent,
                          const char *reason)
{
    if (g->o.rc == ERR_OK)
        fail_msg("a label (winner %d, p %.3f) where a failure (%s) was due", (int)g->o.winner,
                 g->o.prob_first, reason);
    if (g->o.failure != f || g->o.permanent != permanent || !strstr(g->error, reason))
        fail_msg("failure %d permanent %d '%s'; wanted %d %d '%s'", (int)g->o.failure,
                 (int)g->o.permanent, g->error, (int)f, (int)permanent, reason);
}

static void assert_label(const struct got *g, enum annotator_winner w)
{
    if (g->o.rc != ERR_OK)
        fail_msg("failed (%d): %s", (int)g->o.failure, g->error);
    assert_int_equal(g->o.winner, w);
}

/* ---- verdicts ------------------------------------------------------------------------------ */

/* gpt-4o reasoning first: "Response 2 claims ... Preferred Response=1". The probability is the
 * verdict token's (0.8 and 0.9), not that of the "2" in "Response 2" (0.02). */
static void test_reasoning_first_reads_the_verdict_token(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI, "gpt-4o-2024-08-06", "helpful");
    struct jcs_reply ab = ok("openai_reasoning_first.ab.json");
    struct jcs_reply ba = ok("openai_reasoning_first.ba.json");
    ab.gzip = true;
    ba.chunked = true;
    struct got g;
    judge(&cfg, &ab, 1, &ba, 1, &g);
    assert_label(&g, ANNOTATOR_WINNER_FIRST);
    assert_int_equal(jcs_gzipped(srv), 1);
    assert_float_equal(g.o.prob_first, 0.85, 1e-9);
    assert_float_equal(g.o.disagreement, 0.1, 1e-9);
    const struct annotator_order_result *r = &g.o.orders[0];
    assert_false(r->swapped);
    assert_true(r->has_logprobs);
    assert_float_equal(r->prob_first, 0.8, 1e-9);
    assert_string_equal(r->lp_token, "1");
    assert_int_equal(r->verdict_line, 3);
    assert_int_equal(r->verdict_column, 20);
    assert_true(r->lp_index > 20);
    char *body = jcs_last_body(srv);
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(json_object_get(j, "max_tokens")); /* not api.openai.com: max_tokens */
    assert_true(json_is_true(json_object_get(j, "logprobs")));
    json_decref(j);
    free(body);
}

/* "1. Accuracy ..." then "Preferred Response=2": the verdict is the last line's. */
static void test_numbered_list_then_verdict(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI, "gpt-4o-2024-08-06", "helpful");
    struct jcs_reply ab = ok("openai_numbered_list.ab.json");
    struct jcs_reply ba = ok("openai_numbered_list.ba.json");
    struct got g;
    judge(&cfg, &ab, 1, &ba, 1, &g);
    assert_label(&g, ANNOTATOR_WINNER_SECOND);
    assert_float_equal(g.o.prob_first, 0.0, 0);
    assert_float_equal(g.o.disagreement, 0.0, 0);
    assert_false(g.o.orders[0].has_logprobs);
    assert_int_equal(g.o.orders[0].verdict_line, 5);
}

/* Answers cut off at the token limit are failures with that reason, in both formats. */
static void test_truncated_answers_fail(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI, "gpt-4o-2024-08-06", "helpful");
    struct jcs_reply r = ok("openai_truncated.json");
    struct got g;
    judge(&cfg, &r, 1, NULL, 0, &g);
    assert_failed(&g, ANNOTATOR_FAIL_PARSE, true, "cut off (finish_reason length");

    base_config(&cfg, ANNOTATOR_BACKEND_ANTHROPIC, "claude-sonnet-4-20250514", "helpful_cot");
    r = ok("anthropic_max_tokens.json");
    judge(&cfg, &r, 1, NULL, 0, &g);
    assert_failed(&g, ANNOTATOR_FAIL_PARSE, true, "cut off (stop_reason max_tokens");

    /* a reasoning model that spent every token reasoning: empty content, "length" */
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI, "o4-mini", "helpful");
    cfg.reasoning_model = true;
    r = ok("openai_o4mini_length.json");
    judge(&cfg, &r, 1, NULL, 0, &g);
    assert_failed(&g, ANNOTATOR_FAIL_PARSE, true, "cut off");
    /* asked again when so configured */
    cfg.retry_unparseable = true;
    judge(&cfg, &r, 1, NULL, 0, &g);
    assert_failed(&g, ANNOTATOR_FAIL_PARSE, false, "cut off");
}

/* o4-mini rejects max_tokens, temperature 0 and log-probs (as OpenAI does): a reasoning model
 * gets max_completion_tokens and neither of the others. */
static void test_reasoning_model_request(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI, "o4-mini", "helpful");
    struct jcs_reply ab = ok("openai_o4mini.ab.json"), ba = ok("openai_o4mini.ba.json");
    struct got g;
    judge(&cfg, &ab, 1, &ba, 1, &g); /* as a plain model: the server's 400, not retried */
    assert_failed(&g, ANNOTATOR_FAIL_HTTP, true, "max_completion_tokens");

    cfg.reasoning_model = true;
    cfg.reasoning_effort = "low";
    judge(&cfg, &ab, 1, &ba, 1, &g);
    assert_label(&g, ANNOTATOR_WINNER_FIRST);
    assert_int_equal(g.o.completion_tokens, 460 + 390);
    char *body = jcs_last_body(srv);
    json_t *j = json_loads(body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "max_completion_tokens")), 512);
    assert_null(json_object_get(j, "max_tokens"));
    assert_null(json_object_get(j, "temperature"));
    assert_null(json_object_get(j, "logprobs"));
    assert_string_equal(json_string_value(json_object_get(j, "reasoning_effort")), "low");
    json_decref(j);
    free(body);

    /* the field by configuration, and by default for OpenAI's own API */
    cfg.reasoning_model = false;
    cfg.limit_field = ANNOTATOR_LIMIT_MAX_COMPLETION_TOKENS;
    cfg.logprobs = false;
    cfg.temperature = 1;
    judge(&cfg, &ab, 1, &ba, 1, &g);
    assert_label(&g, ANNOTATOR_WINNER_FIRST);
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI, "gpt-4o", "helpful");
    cfg.base_url = "https://api.openai.com/v1";
    annotator_t *a = NULL;
    char why[256], desc[2048];
    assert_int_equal(annotator_new(&a, &cfg, why, sizeof why), ERR_OK);
    annotator_describe(a, desc, sizeof desc);
    assert_non_null(strstr(desc, "max_completion_tokens 512"));
    annotator_destroy(&a);
}

/* Reasoning kept out of the verdict: <think> in the content (llama.cpp), reasoning_content
 * (vLLM's reasoning parser), Anthropic thinking and redacted_thinking blocks. */
static void test_reasoning_text_is_not_parsed(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI, "DeepSeek-R1-Distill-Qwen-7B", "helpful");
    struct jcs_reply ab = ok("llamacpp_think.ab.json"), ba = ok("llamacpp_think.ba.json");
    struct got g;
    judge(&cfg, &ab, 1, &ba, 1, &g);
    assert_label(&g, ANNOTATOR_WINNER_FIRST);
    assert_float_equal(g.o.prob_first, 1.0, 0);

    ab = ok("vllm_reasoning_content.ab.json");
    ba = ok("vllm_reasoning_content.ba.json");
    judge(&cfg, &ab, 1, &ba, 1, &g);
    assert_label(&g, ANNOTATOR_WINNER_FIRST);

    base_config(&cfg, ANNOTATOR_BACKEND_ANTHROPIC, "claude-sonnet-4-20250514", "helpful_cot");
    cfg.thinking_budget = 1024;
    cfg.max_tokens = 2048;
    ab = ok("anthropic_thinking.ab.json");
    ba = ok("anthropic_thinking.ba.json");
    judge(&cfg, &ab, 1, &ba, 1, &g);
    assert_label(&g, ANNOTATOR_WINNER_FIRST);
    assert_int_equal(g.o.orders[1].verdict_line, 3);
    char *body = jcs_last_body(srv);
    json_t *j = json_loads(body, 0, NULL);
    assert_null(json_object_get(j, "temperature")); /* thinking takes none */
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "thinking"), "budget_tokens")), 1024);
    json_decref(j);
    free(body);
}

/* llama.cpp's chat log-probs (ids, bytes, top_logprobs), reasoning first. */
static void test_llamacpp_chat_logprobs(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI, "qwen2.5-7b-instruct", "helpful");
    struct jcs_reply ab = ok("llamacpp_logprobs.ab.json"), ba = ok("llamacpp_logprobs.ba.json");
    struct got g;
    judge(&cfg, &ab, 1, &ba, 1, &g);
    assert_label(&g, ANNOTATOR_WINNER_FIRST);
    assert_true(g.o.orders[0].has_logprobs && g.o.orders[1].has_logprobs);
    assert_float_equal(g.o.orders[0].prob_first, 0.7, 1e-9);
    assert_float_equal(g.o.orders[1].prob_first, 0.4, 1e-9);
    assert_float_equal(g.o.prob_first, 0.5 * (0.7 + 0.6), 1e-9);
}

/* JSON answers: response_format asked for, the verdict read from the "preferred" field. */
static void test_json_mode(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI, "gpt-4o-2024-08-06", "helpful_json");
    struct jcs_reply ab = ok("openai_json.ab.json"), ba = ok("openai_json.ba.json");
    struct got g;
    judge(&cfg, &ab, 1, &ba, 1, &g);
    assert_label(&g, ANNOTATOR_WINNER_FIRST);
    char *body = jcs_last_body(srv);
    json_t *j = json_loads(body, 0, NULL);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "response_format"), "type")),
        "json_object");
    json_decref(j);
    free(body);
}

/* No verdict, and refusals: permanent unless retry_unparseable. */
static void test_unparseable_and_refusals_follow_the_retry_rule(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI, "gpt-4o-2024-08-06", "helpful");
    struct jcs_reply r = ok("openai_no_verdict.json");
    struct got g;
    judge(&cfg, &r, 1, NULL, 0, &g);
    assert_failed(&g, ANNOTATOR_FAIL_PARSE, true, "no verdict (@verdict last-line");
    r = ok("openai_refusal.json");
    judge(&cfg, &r, 1, NULL, 0, &g);
    assert_failed(&g, ANNOTATOR_FAIL_REFUSAL, true, "can't help");
    cfg.retry_unparseable = true;
    judge(&cfg, &r, 1, NULL, 0, &g);
    assert_failed(&g, ANNOTATOR_FAIL_REFUSAL, false, "can't help");
}

/* ---- errors ------------------------------------------------------------------------------- */

static void test_errors_are_classified_by_meaning(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI, "gpt-4o-2024-08-06", "helpful");
    cfg.orders = ANNOTATOR_ORDERS_RANDOM_ONE;
    struct got g;
    /* credits spent: a 429 that no wait fixes, asked once */
    struct jcs_reply r = {.status = 429, .fixture = "openai_insufficient_quota.json"};
    judge(&cfg, &r, 1, &r, 1, &g);
    assert_failed(&g, ANNOTATOR_FAIL_HTTP, true, "insufficient_quota");
    assert_int_equal(jcs_requests(srv), 1);
    /* a rate limit is retried, Retry-After honoured, then answered */
    struct jcs_reply rl[2] = {
        {.status = 429, .fixture = "openai_rate_limit.json", .header = "retry-after-ms: 20"},
        ok("openai_cached.ab.json")};
    struct jcs_reply rl_ba[2] = {rl[0], ok("openai_cached.ba.json")};
    judge(&cfg, rl, 2, rl_ba, 2, &g);
    assert_label(&g, ANNOTATOR_WINNER_FIRST);
    assert_int_equal(g.o.orders[0].attempts, 2);
    /* Retry-After in seconds, on a 503 */
    struct jcs_reply un[2] = {
        {.status = 503, .fixture = "openrouter_error_in_200.json", .header = "Retry-After: 0"},
        ok("openai_cached.ab.json")};
    struct jcs_reply un_ba[2] = {un[0], ok("openai_cached.ba.json")};
    judge(&cfg, un, 2, un_ba, 2, &g);
    assert_label(&g, ANNOTATOR_WINNER_FIRST);
    assert_int_equal(g.o.orders[0].attempts, 2);
    /* an invalid key */
    r = (struct jcs_reply){.status = 401, .fixture = "openai_invalid_key.json"};
    judge(&cfg, &r, 1, &r, 1, &g);
    assert_failed(&g, ANNOTATOR_FAIL_HTTP, true, "invalid_api_key");
    assert_int_equal(jcs_requests(srv), 1);
    /* errors inside a 200: a provider's transient one, and spent credits */
    r = ok("openrouter_error_in_200.json");
    judge(&cfg, &r, 1, &r, 1, &g);
    assert_failed(&g, ANNOTATOR_FAIL_PARSE, false, "Provider returned error");
    r = ok("openrouter_quota_in_200.json");
    judge(&cfg, &r, 1, &r, 1, &g);
    assert_failed(&g, ANNOTATOR_FAIL_PARSE, true, "insufficient_quota");
    /* Anthropic: a bad key; 529 overloaded is retried */
    base_config(&cfg, ANNOTATOR_BACKEND_ANTHROPIC, "claude-sonnet-4-20250514", "helpful");
    r = (struct jcs_reply){.status = 401, .fixture = "anthropic_authentication_error.json"};
    judge(&cfg, &r, 1, &r, 1, &g);
    assert_failed(&g, ANNOTATOR_FAIL_HTTP, true, "authentication_error");
    struct jcs_reply ov[2] = {{.status = 529, .fixture = "anthropic_overloaded.json"},
                              ok("anthropic_cached.ab.json")};
    struct jcs_reply ov_ba[2] = {ov[0], ok("anthropic_cached.ba.json")};
    judge(&cfg, ov, 2, ov_ba, 2, &g);
    assert_label(&g, ANNOTATOR_WINNER_FIRST);
    assert_int_equal(g.o.orders[0].attempts, 2);
}

/* ---- cost --------------------------------------------------------------------------------- */

static void test_cached_tokens_have_their_own_price(void **state)
{
    (void)state;
    struct annotator_config cfg;
    base_config(&cfg, ANNOTATOR_BACKEND_OPENAI, "gpt-4o-2024-08-06", "helpful");
    cfg.price_input_per_mtok = 2.5;
    cfg.price_cached_input_per_mtok = 1.25;
    cfg.price_output_per_mtok = 10;
    struct jcs_reply ab = ok("openai_cached.ab.json"), ba = ok("openai_cached.ba.json");
    struct got g;
    judge(&cfg, &ab, 1, &ba, 1, &g);
    assert_label(&g, ANNOTATOR_WINNER_FIRST);
    /* each order: 1200 prompt tokens of which 1024 cached, 1 completion token */
    double one = (176 * 2.5 + 1024 * 1.25 + 1 * 10) / 1e6;
    assert_float_equal(g.o.cost, 2 * one, 1e-12);
    assert_int_equal(g.o.orders[0].cached_tokens, 1024);
    /* unset, the cached rate is the input price */
    cfg.price_cached_input_per_mtok = -1;
    judge(&cfg, &ab, 1, &ba, 1, &g);
    assert_float_equal(g.o.cost, 2 * (1200 * 2.5 + 10) / 1e6, 1e-12);

    /* Anthropic: input_tokens excludes cache reads (a tenth of the price) and writes */
    base_config(&cfg, ANNOTATOR_BACKEND_ANTHROPIC, "claude-sonnet-4-20250514", "helpful");
    cfg.price_input_per_mtok = 3;
    cfg.price_cached_input_per_mtok = 0.3;
    cfg.price_cache_write_per_mtok = 3.75;
    cfg.price_output_per_mtok = 15;
    ab = ok("anthropic_cached.ab.json");
    ba = ok("anthropic_cached.ba.json");
    judge(&cfg, &ab, 1, &ba, 1, &g);
    assert_label(&g, ANNOTATOR_WINNER_FIRST);
    double ab_cost = (100 * 3 + 1000 * 0.3 + 10 * 15) / 1e6;
    double ba_cost = (100 * 3 + 2000 * 3.75 + 10 * 15) / 1e6;
    assert_float_equal(g.o.cost, ab_cost + ba_cost, 1e-12);
    assert_int_equal(g.o.prompt_tokens, 1100 + 2100);
}

/* ---- the sampler's remote backend: completions log-probs ---------------------------------- */

static void remote_one(const char *fixture, struct sampler_response *out)
{
    struct jcs_reply r = ok(fixture);
    jcs_script(srv, &r, 1, NULL, 0);
    struct sampler_remote_config rc = {
        .base_url = (char *)jcs_base_url(srv),
        .model = "qwen2.5-0.5b-instruct",
        .logprobs = true,
        .version = 1,
        .http = defaults.judge.http,
    };
    rc.http.backoff_base_ms = 10;
    rc.http.max_attempts = 2;
    sampler_remote_t *sr = NULL;
    char why[512] = "";
    if (sampler_remote_new(&sr, &rc, why, sizeof why))
        fail_msg("sampler_remote_new: %s", why);
    struct sampler_remote_call call = {
        .prompt = "Q: what is six times seven?\nA:", .max_tokens = 8, .top_p = 1, .seed = 3};
    if (sampler_remote_run(sr, &call, 1, 0, out, why, sizeof why))
        fail_msg("sampler_remote_run: %s", why);
    sampler_remote_destroy(&sr);
}

static void test_remote_sampler_reads_llamacpp_and_vllm_logprobs(void **state)
{
    (void)state;
    struct sampler_response r;
    remote_one("llamacpp_completions_logprobs.json", &r); /* logprobs.content[].logprob */
    assert_true(r.has_logprob);
    assert_float_equal(r.logprob, 6 * -0.0123, 1e-12);
    assert_string_equal(r.text, " The answer is 42.");
    free(r.text);
    remote_one("vllm_completions_logprobs.json", &r); /* token_logprobs */
    assert_true(r.has_logprob);
    assert_float_equal(r.logprob, -1.96875, 1e-12);
    free(r.text);
    remote_one("llamacpp_completions_plain.json", &r); /* none: unknown, not 0 = certain */
    assert_false(r.has_logprob);
    free(r.text);
}

static int setup(void **state)
{
    (void)state;
    log_set_level(LOG_LVL_ERROR);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (annotator_opts_defaults(&defaults))
        return -1;
    return jcs_start(&srv, JUDGE_REPLIES);
}

static int teardown(void **state)
{
    (void)state;
    jcs_stop(&srv);
    annotator_opts_release(&defaults);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reasoning_first_reads_the_verdict_token),
        cmocka_unit_test(test_numbered_list_then_verdict),
        cmocka_unit_test(test_truncated_answers_fail),
        cmocka_unit_test(test_reasoning_model_request),
        cmocka_unit_test(test_reasoning_text_is_not_parsed),
        cmocka_unit_test(test_llamacpp_chat_logprobs),
        cmocka_unit_test(test_json_mode),
        cmocka_unit_test(test_unparseable_and_refusals_follow_the_retry_rule),
        cmocka_unit_test(test_errors_are_classified_by_meaning),
        cmocka_unit_test(test_cached_tokens_have_their_own_price),
        cmocka_unit_test(test_remote_sampler_reads_llamacpp_and_vllm_logprobs),
    };
    return cmocka_run_group_tests_name("judge_conformance", tests, setup, teardown);
}
