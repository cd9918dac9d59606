/* test_annotator_service - the annotator-proxy's pieces without processes: options (defaults,
 * enum values, the shared bus options and the old heartbeat key, loading by conf_size, credit,
 * cache, CURVE, the judge they make, the key handed over), the rules adapter's errors, and the
 * score reply parser of the reward-model judge. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "annotator_opts.h"
#include "annotator_scorer.h"
#include "buf.h"
#include "bus.h"
#include "cfg.h"
#include "err.h"
#include "http.h"
#include "httpopts.h"

static int load(struct annotator_opts *o, const char *const *flags, buf_t *errs)
{
    char *argv[40] = {"annotator-proxy"};
    int n = 1;
    for (int i = 0; flags && flags[i]; i++)
        argv[n++] = (char *)flags[i];
    argv[n] = NULL;
    return annotator_opts_load(o, n, argv, errs);
}

static void test_defaults_are_the_rules_judge(void **state)
{
    (void)state;
    struct annotator_opts o;
    assert_int_equal(load(&o, NULL, NULL), ERR_OK);
    assert_int_equal(o.judge.backend, ANNOTATOR_BACKEND_RULES);
    assert_false(annotator_opts_cache(&o)); /* auto: rules is not cached */
    assert_int_equal(annotator_opts_credit(&o), 16);
    struct annotator_judge_ctx ctx;
    annotator_t *a = NULL;
    char why[256] = "";
    assert_int_equal(annotator_opts_judge(&o, &ctx, NULL, NULL, &a, why, sizeof why), ERR_OK);
    assert_string_equal(annotator_judge_id(a), "rules/noise=0/seed=1");
    annotator_destroy(&a);
    annotator_opts_release(&o);
}

static void test_credit_and_cache_follow_the_backend(void **state)
{
    (void)state;
    struct annotator_opts o;
    const char *both[] = {"--backend", "openai", "--max-in-flight", "10", NULL};
    assert_int_equal(load(&o, both, NULL), ERR_OK);
    assert_int_equal(annotator_opts_credit(&o), 5); /* K/2: two calls per request */
    assert_true(annotator_opts_cache(&o));
    annotator_opts_release(&o);
    const char *one[] = {"--backend", "anthropic", "--max-in-flight",
                         "10",        "--orders",  "random",
                         "--cache",   "off",       NULL};
    assert_int_equal(load(&o, one, NULL), ERR_OK);
    assert_int_equal(annotator_opts_credit(&o), 10);
    assert_false(annotator_opts_cache(&o));
    annotator_opts_release(&o);
    const char *rm[] = {"--backend", "reward-model", NULL};
    assert_int_equal(load(&o, rm, NULL), ERR_OK);
    assert_int_equal(annotator_opts_credit(&o), 8);
    assert_true(annotator_opts_cache(&o));
    annotator_opts_release(&o);
    const char *fixed[] = {"--backend", "openai", "--max-in-flight", "1", NULL};
    assert_int_equal(load(&o, fixed, NULL), ERR_OK);
    assert_int_equal(annotator_opts_credit(&o), 1); /* never 0 */
    annotator_opts_release(&o);
    const char *given[] = {"--credit", "3", NULL};
    assert_int_equal(load(&o, given, NULL), ERR_OK);
    assert_int_equal(annotator_opts_credit(&o), 3);
    annotator_opts_release(&o);
}

static void test_enum_options_hold_their_values(void **state)
{
    (void)state;
    struct annotator_opts o;
    const char *flags[] = {"--backend", "anthropic", "--orders", "random", "--cache", "off", NULL};
    assert_int_equal(load(&o, flags, NULL), ERR_OK);
    assert_int_equal(o.judge.backend, ANNOTATOR_BACKEND_ANTHROPIC);
    assert_int_equal(o.judge.orders, ANNOTATOR_ORDERS_RANDOM_ONE);
    assert_int_equal(o.cache, ANNOTATOR_CACHE_OFF);
    annotator_opts_release(&o);
    const char *rm[] = {"--backend", "reward-model", "--cache", "on", NULL};
    assert_int_equal(load(&o, rm, NULL), ERR_OK);
    assert_int_equal(o.judge.backend, ANNOTATOR_BACKEND_REWARD_MODEL);
    assert_int_equal(o.cache, ANNOTATOR_CACHE_ON);
    annotator_opts_release(&o);
}

static void test_bus_options_are_the_shared_ones(void **state)
{
    (void)state;
    struct annotator_opts o;
    assert_int_equal(load(&o, NULL, NULL), ERR_OK);
    assert_string_equal(o.bus.clients_endpoint, BUS_DEFAULT_CLIENTS);
    assert_string_equal(o.bus.workers_endpoint, BUS_DEFAULT_WORKERS);
    assert_null(o.bus.ledger_public_key);
    assert_null(o.bus.curve_secret_key);
    annotator_opts_release(&o);
    const char *flags[] = {"--clients",           "tcp://10.0.0.1:7000", "--workers",
                           "tcp://10.0.0.1:7001", "--heartbeat",         "250ms",
                           "--ledger-key",        "ledger.key.pub",      NULL};
    assert_int_equal(load(&o, flags, NULL), ERR_OK);
    assert_string_equal(o.bus.clients_endpoint, "tcp://10.0.0.1:7000");
    assert_string_equal(o.bus.workers_endpoint, "tcp://10.0.0.1:7001");
    assert_int_equal(o.bus.heartbeat_ms, 250);
    assert_string_equal(o.bus.ledger_public_key, "ledger.key.pub");
    annotator_opts_release(&o);
}

/* annotator.http.* are httpopts.h's rows: http.h's defaults, the names the service always had. */
static void test_http_options_are_the_shared_ones(void **state)
{
    (void)state;
    struct annotator_opts o;
    assert_int_equal(load(&o, NULL, NULL), ERR_OK);
    /* the block's defaults are http.h's (test_http checks each row against http_config_default) */
    struct http_config c = http_opts_config(&o.judge.http), d = http_config_default();
    assert_true(c.max_in_flight == d.max_in_flight && c.total_timeout_ms == d.total_timeout_ms);
    annotator_opts_release(&o);
    setenv("ANNOTATOR_MAX_IN_FLIGHT", "6", 1);
    setenv("ANNOTATOR_BACKOFF_MAX", "9s", 1);
    const char *flags[] = {"--connect-timeout",
                           "3s",
                           "--timeout",
                           "45s",
                           "--max-attempts",
                           "2",
                           "--rpm",
                           "30",
                           "--tpm",
                           "5000",
                           "--max-response-size",
                           "1MiB",
                           NULL};
    int rc = load(&o, flags, NULL);
    unsetenv("ANNOTATOR_MAX_IN_FLIGHT");
    unsetenv("ANNOTATOR_BACKOFF_MAX");
    assert_int_equal(rc, ERR_OK);
    assert_int_equal(o.judge.http.max_in_flight, 6);
    assert_int_equal(o.judge.http.backoff_max_ms, 9000);
    assert_int_equal(o.judge.http.connect_timeout_ms, 3000);
    assert_int_equal(o.judge.http.timeout_ms, 45000);
    assert_int_equal(o.judge.http.max_attempts, 2);
    assert_true(o.judge.http.requests_per_minute == 30);
    assert_true(o.judge.http.tokens_per_minute == 5000);
    assert_int_equal(o.judge.http.max_response_bytes, 1 << 20);
    annotator_opts_release(&o);
    buf_t help;
    buf_init(&help, 0);
    assert_int_equal(cfg_help(&annotator_opts_spec, &help), ERR_OK);
    assert_int_equal(buf_append(&help, "", 1), ERR_OK);
    const char *h = (const char *)help.data;
    assert_non_null(strstr(h, "--timeout DURATION  annotator.http.timeout  $ANNOTATOR_TIMEOUT"));
    assert_non_null(strstr(h, "annotator.http.backoff_base  $ANNOTATOR_BACKOFF_BASE"));
    assert_non_null(strstr(h, "default 120s)"));
    assert_non_null(strstr(h, "default 500ms)"));
    buf_free(&help);
}

/* Loads the run file `yaml` (written to a temporary file) and flags, collecting the warnings. */
static int load_file(struct annotator_opts *o, const char *yaml, buf_t *warnings)
{
    char path[] = "/tmp/oaif-annotator-run-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    char *argv[] = {"annotator-proxy", "--config", path, NULL};
    struct cfg_trace trace = {.warnings = warnings};
    memset(o, 0, sizeof *o);
    int rc = cfg_load_ex(&annotator_opts_spec, o, 3, argv, NULL, &trace);
    unlink(path);
    return rc;
}

static void test_old_heartbeat_key_works_with_a_warning(void **state)
{
    (void)state;
    struct annotator_opts o;
    buf_t w;
    buf_init(&w, 0);
    assert_int_equal(load_file(&o, "ledger:\n  heartbeat_interval: 300ms\n", &w), ERR_OK);
    assert_int_equal(o.bus.heartbeat_ms, 300);
    assert_non_null(w.data);
    assert_non_null(strstr(w.data, "ledger.heartbeat_interval"));
    assert_non_null(strstr(w.data, "bus.heartbeat_interval"));
    annotator_opts_release(&o);
    buf_free(&w);
    /* the new key wins */
    buf_init(&w, 0);
    assert_int_equal(load_file(&o,
                               "ledger:\n  heartbeat_interval: 300ms\n"
                               "bus:\n  heartbeat_interval: 2s\n",
                               &w),
                     ERR_OK);
    assert_int_equal(o.bus.heartbeat_ms, 2000);
    annotator_opts_release(&o);
    buf_free(&w);
}

static void test_generic_load_by_conf_size(void **state)
{
    (void)state;
    /* as `oaif config show` does it: a zeroed block of conf_size, nothing else set up */
    assert_int_equal(annotator_opts_spec.conf_size, sizeof(struct annotator_opts));
    void *conf = calloc(1, annotator_opts_spec.conf_size);
    struct cfg_origin *origins = calloc(annotator_opts_spec.n_options, sizeof *origins);
    assert_non_null(conf);
    assert_non_null(origins);
    char *argv[] = {"oaif", "--backend", "openai", NULL};
    struct cfg_trace trace = {.origins = origins};
    assert_int_equal(cfg_load_ex(&annotator_opts_spec, conf, 3, argv, NULL, &trace), ERR_OK);
    buf_t y;
    buf_init(&y, 0);
    assert_int_equal(cfg_render_yaml_origins(&annotator_opts_spec, conf, origins, &y), ERR_OK);
    assert_non_null(strstr(y.data, "backend: openai  # flag --backend"));
    assert_non_null(strstr(y.data, "orders: both  # default"));
    assert_non_null(strstr(y.data, "heartbeat_interval: "));
    buf_free(&y);
    cfg_release(&annotator_opts_spec, conf);
    free(conf);
    free(origins);
}

static void test_bad_values_name_the_option(void **state)
{
    (void)state;
    struct annotator_opts o;
    buf_t errs;
    buf_init(&errs, 0);
    const char *bad[] = {"--backend", "gpt", "--tie-band", "0.7", NULL};
    assert_int_equal(load(&o, bad, &errs), ERR_INVAL);
    assert_non_null(strstr(errs.data, "--backend"));
    assert_non_null(strstr(errs.data, "--tie-band"));
    buf_free(&errs);
}

static void test_http_judge_needs_model_and_template(void **state)
{
    (void)state;
    struct annotator_opts o;
    struct annotator_judge_ctx ctx;
    annotator_t *a = NULL;
    char why[512] = "";
    const char *nomodel[] = {"--backend", "openai", "--template-dir", JUDGE_TEMPLATES, NULL};
    assert_int_equal(load(&o, nomodel, NULL), ERR_OK);
    assert_int_equal(annotator_opts_judge(&o, &ctx, NULL, NULL, &a, why, sizeof why), ERR_INVAL);
    assert_null(a);
    assert_non_null(strstr(why, "model: required"));
    annotator_opts_release(&o);
    const char *notpl[] = {"--backend", "openai",         "--model",      "m", "--template",
                           "missing",   "--template-dir", "/nonexistent", NULL};
    assert_int_equal(load(&o, notpl, NULL), ERR_OK);
    assert_int_equal(annotator_opts_judge(&o, &ctx, NULL, NULL, &a, why, sizeof why), ERR_IO);
    assert_non_null(strstr(why, "/nonexistent/missing.txt"));
    annotator_opts_release(&o);
    const char *rm[] = {"--backend", "reward-model", NULL};
    assert_int_equal(load(&o, rm, NULL), ERR_OK);
    assert_int_equal(annotator_opts_judge(&o, &ctx, NULL, NULL, &a, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "score service"));
    annotator_opts_release(&o);
}

static void test_key_is_taken_and_described_without_it(void **state)
{
    (void)state;
    static const char key[] = "sk-UNITKEY-0123456789";
    setenv("ANNOTATOR_API_KEY", key, 1);
    struct annotator_opts o;
    const char *flags[] = {"--backend",      "openai",        "--model", "m",
                           "--template-dir", JUDGE_TEMPLATES, NULL};
    assert_int_equal(load(&o, flags, NULL), ERR_OK);
    unsetenv("ANNOTATOR_API_KEY");
    assert_string_equal(o.judge.api_key, key);
    struct annotator_judge_ctx ctx;
    annotator_t *a = NULL;
    char why[256] = "", desc[2048];
    assert_int_equal(annotator_opts_judge(&o, &ctx, NULL, NULL, &a, why, sizeof why), ERR_OK);
    annotator_describe(a, desc, sizeof desc);
    assert_non_null(strstr(desc, "api key set from annotator.api_key, template"));
    assert_null(strstr(desc, "UNITKEY"));
    annotator_destroy(&a);
    /* a key with a line break is refused, and the refusal does not quote it */
    free(o.judge.api_key);
    o.judge.api_key = strdup("sk-UNITKEY\nsecond");
    assert_int_equal(annotator_opts_judge(&o, &ctx, NULL, NULL, &a, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "annotator.api_key"));
    assert_null(strstr(why, "UNITKEY"));
    annotator_opts_release(&o);
}

static void test_curve_needs_both_keys(void **state)
{
    (void)state;
    struct annotator_opts o;
    struct bus_curve c;
    char why[512] = "";
    assert_int_equal(load(&o, NULL, NULL), ERR_OK);
    assert_int_equal(annotator_opts_curve(&o, &c, why, sizeof why), ERR_OK);
    assert_false(c.on);
    annotator_opts_release(&o);
    const char *half[] = {"--ledger-key", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", NULL};
    assert_int_equal(load(&o, half, NULL), ERR_OK);
    assert_int_equal(annotator_opts_curve(&o, &c, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "curve_secret_key"));
    annotator_opts_release(&o);
    const char *nofile[] = {"--ledger-key", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
                            "--curve-secret", "/nonexistent/annotator.key", NULL};
    assert_int_equal(load(&o, nofile, NULL), ERR_OK);
    assert_int_equal(annotator_opts_curve(&o, &c, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "annotator.curve_secret_key"));
    annotator_opts_release(&o);
}

static void test_rules_adapter_explains_refusals(void **state)
{
    (void)state;
    struct rules_config rc = {.p_noise = 0, .seed = 1};
    struct annotator_verdict v;
    char why[256];
    struct annotator_request req = {
        .pair_id = "p1", .prompt = "What is 47 + 38?", .responses = {"85", "The answer is 84."}};
    assert_int_equal(annotator_opts_rules(&rc, &req, &v, why, sizeof why), ERR_OK);
    assert_true(v.prob_first == 1);
    assert_string_equal(v.verdict, "correct beats wrong");
    req.instruction = "prefer longer responses";
    req.responses[1] = "The answer is 85.";
    assert_int_equal(annotator_opts_rules(&rc, &req, &v, why, sizeof why), ERR_OK);
    assert_true(v.prob_first == 0);
    assert_string_equal(v.verdict, "longer wins");
    req.instruction = "be nice";
    assert_int_equal(annotator_opts_rules(&rc, &req, &v, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "no preference"));
    req.instruction = NULL;
    req.prompt = "Write a poem.";
    assert_int_equal(annotator_opts_rules(&rc, &req, &v, why, sizeof why), ERR_NOTFOUND);
    assert_non_null(strstr(why, "no reference answer"));
    rc.p_noise = 0.5;
    req.prompt = "What is 47 + 38?";
    req.pair_id = NULL;
    assert_int_equal(annotator_opts_rules(&rc, &req, &v, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "no id"));
}

static size_t pack_reply(uint8_t *buf, char **members, size_t nm, double *scores, size_t ns)
{
    Oaif__V1__ScoreReply r = OAIF__V1__SCORE_REPLY__INIT;
    r.members = members;
    r.n_members = nm;
    r.scores = scores;
    r.n_scores = ns;
    return oaif__v1__score_reply__pack(&r, buf);
}

static void test_score_reply_means_over_members(void **state)
{
    (void)state;
    uint8_t buf[512];
    char *m3[] = {"a", "b", "c"};
    double s3[] = {1, 0, 2, 0.5, 3, -0.5}; /* member-major: (1,0) (2,0.5) (3,-0.5) */
    double r1 = 0, r2 = 0;
    char why[256];
    size_t n = pack_reply(buf, m3, 3, s3, 6);
    assert_int_equal(annotator_scorer_parse(buf, n, &r1, &r2, why, sizeof why), ERR_OK);
    assert_float_equal(r1, 2, 1e-12);
    assert_float_equal(r2, 0, 1e-12);
    /* no member names: one member per pair of scores */
    n = pack_reply(buf, NULL, 0, s3, 2);
    assert_int_equal(annotator_scorer_parse(buf, n, &r1, &r2, why, sizeof why), ERR_OK);
    assert_float_equal(r1, 1, 0);
    assert_float_equal(r2, 0, 0);
    /* wrong shapes and bad bytes */
    n = pack_reply(buf, m3, 3, s3, 4);
    assert_int_equal(annotator_scorer_parse(buf, n, &r1, &r2, why, sizeof why), ERR_PROTO);
    assert_non_null(strstr(why, "4 scores for 3 members"));
    n = pack_reply(buf, NULL, 0, NULL, 0);
    assert_int_equal(annotator_scorer_parse(buf, n, &r1, &r2, why, sizeof why), ERR_PROTO);
    assert_int_equal(
        annotator_scorer_parse((const uint8_t *)"\xff\xff\xff", 3, &r1, &r2, why, sizeof why),
        ERR_PROTO);
    assert_non_null(strstr(why, "not a ScoreReply"));
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_the_rules_judge),
        cmocka_unit_test(test_credit_and_cache_follow_the_backend),
        cmocka_unit_test(test_enum_options_hold_their_values),
        cmocka_unit_test(test_bus_options_are_the_shared_ones),
        cmocka_unit_test(test_http_options_are_the_shared_ones),
        cmocka_unit_test(test_old_heartbeat_key_works_with_a_warning),
        cmocka_unit_test(test_generic_load_by_conf_size),
        cmocka_unit_test(test_bad_values_name_the_option),
        cmocka_unit_test(test_http_judge_needs_model_and_template),
        cmocka_unit_test(test_key_is_taken_and_described_without_it),
        cmocka_unit_test(test_curve_needs_both_keys),
        cmocka_unit_test(test_rules_adapter_explains_refusals),
        cmocka_unit_test(test_score_reply_means_over_members),
    };
    int rc = cmocka_run_group_tests_name("annotator_service", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
