/* test_annotator_service - the annotator-proxy's pieces without processes: options (defaults,
 * credit, cache, CURVE, the judge they make, the key handed over), the rules adapter's errors,
 * and the score reply parser of the reward-model judge. */
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
#include "err.h"

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
    assert_int_equal(annotator_opts_backend(&o), ANNOTATOR_BACKEND_RULES);
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

static void test_key_is_handed_over_and_described_without_it(void **state)
{
    (void)state;
    static const char key[] = "sk-UNITKEY-0123456789";
    setenv("ANNOTATOR_API_KEY", key, 1);
    struct annotator_opts o;
    const char *flags[] = {"--backend",      "openai",        "--model", "m",
                           "--template-dir", JUDGE_TEMPLATES, NULL};
    assert_int_equal(load(&o, flags, NULL), ERR_OK);
    unsetenv("ANNOTATOR_API_KEY");
    assert_string_equal(o.api_key, key);
    struct annotator_judge_ctx ctx;
    annotator_t *a = NULL;
    char why[256] = "", desc[2048];
    assert_int_equal(annotator_opts_judge(&o, &ctx, NULL, NULL, &a, why, sizeof why), ERR_OK);
    annotator_opts_describe(&o, a, desc, sizeof desc);
    assert_non_null(strstr(desc, "api key set from annotator.api_key, template"));
    assert_null(strstr(desc, "UNITKEY"));
    assert_null(strstr(desc, "/dev/fd/"));
    /* the pipe it went through is closed: no descriptor leaks per judge made */
    int fd = dup(0);
    assert_true(fd >= 0);
    close(fd);
    annotator_t *b = NULL;
    assert_int_equal(annotator_opts_judge(&o, &ctx, NULL, NULL, &b, why, sizeof why), ERR_OK);
    int fd2 = dup(0);
    assert_int_equal(fd2, fd);
    close(fd2);
    annotator_destroy(&a);
    annotator_destroy(&b);
    /* a key with a line break is refused, and the refusal does not quote it */
    free(o.api_key);
    o.api_key = strdup("sk-UNITKEY\nsecond");
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
        cmocka_unit_test(test_bad_values_name_the_option),
        cmocka_unit_test(test_http_judge_needs_model_and_template),
        cmocka_unit_test(test_key_is_handed_over_and_described_without_it),
        cmocka_unit_test(test_curve_needs_both_keys),
        cmocka_unit_test(test_rules_adapter_explains_refusals),
        cmocka_unit_test(test_score_reply_means_over_members),
    };
    int rc = cmocka_run_group_tests_name("annotator_service", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
