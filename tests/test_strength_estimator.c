/* test_strength_estimator - the strength estimator's logic without sockets
 * (services/strength-estimator/strength_estimator.h): mu and sigma on known scores and the label's
 * orientation; every action at its thresholds (just below, at, just above) and the precedence of
 * drop over the policy; the running distribution (window, replacement by pair id, exact quantiles
 * against a sort of the same values, both after a few changes and after many); request checks
 * naming the field; the derived score ids; the member versions key; the options' defaults. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "strength_estimator.h"
#include "strength_estimator_opts.h"

#define KEEP   OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_KEEP
#define FLIP   OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP
#define SMOOTH OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SMOOTH
#define MARGIN OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_MARGIN
#define DROP   OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_DROP
#define SOFT   OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SOFT

static const double EPS = 1e-9;

/* The defaults of the option table, so that a test changes only what it is about. */
static struct strength_rules default_rules(void)
{
    struct strength_estimator_config c;
    assert_int_equal(strength_estimator_config_defaults(&c), ERR_OK);
    struct strength_rules r = c.rules;
    strength_estimator_config_release(&c);
    return r;
}

static int decide(const struct strength_rules *r, double mu, double sigma, const strength_dist_t *d,
                  struct strength_decision *out)
{
    strength_decide(r, mu, sigma, d, out);
    return (int)out->action;
}

/* ---- mu and sigma ------------------------------------------------------------------------- */

static void test_mu_and_sigma_on_known_scores(void **state)
{
    (void)state;
    /* d = {2, 0, 1}: mu 1, sigma sqrt(2/3) (population, not sample: sqrt(1) would be wrong) */
    double chosen[3] = {3, 1, 2.5}, rejected[3] = {1, 1, 1.5};
    double mu = 0, sigma = 0;
    assert_int_equal(strength_stats(chosen, rejected, 3, &mu, &sigma), ERR_OK);
    assert_float_equal(mu, 1.0, 1e-12);
    assert_float_equal(sigma, sqrt(2.0 / 3.0), 1e-12);
    /* one member: sigma 0 */
    assert_int_equal(strength_stats(chosen, rejected, 1, &mu, &sigma), ERR_OK);
    assert_float_equal(mu, 2.0, 1e-12);
    assert_float_equal(sigma, 0.0, 0);
    /* the order of the two sides changes mu's sign, not sigma */
    assert_int_equal(strength_stats(rejected, chosen, 3, &mu, &sigma), ERR_OK);
    assert_float_equal(mu, -1.0, 1e-12);
    assert_float_equal(sigma, sqrt(2.0 / 3.0), 1e-12);
    /* nothing to average, or a non-finite reward: refused, nothing written */
    mu = 42;
    assert_int_equal(strength_stats(chosen, rejected, 0, &mu, &sigma), ERR_INVAL);
    double bad[2] = {NAN, 1};
    assert_int_equal(strength_stats(bad, rejected, 2, &mu, &sigma), ERR_INVAL);
    assert_true(mu == 42);
}

/* A request for pair `id` (prompt, two texts) labeled `winner`. Strings are static. */
static void make_request(Oaif__V1__EstimateRequest *req, Oaif__V1__Pair *p, Oaif__V1__Response *r0,
                         Oaif__V1__Response *r1, Oaif__V1__Response **rs, Oaif__V1__Label *l,
                         const char *id, Oaif__V1__Winner winner)
{
    oaif__v1__estimate_request__init(req);
    oaif__v1__pair__init(p);
    oaif__v1__response__init(r0);
    oaif__v1__response__init(r1);
    oaif__v1__label__init(l);
    r0->text = "Paris.";
    r1->text = "Lyon.";
    rs[0] = r0;
    rs[1] = r1;
    p->id = (char *)id;
    p->prompt = "Capital of France?";
    p->responses = rs;
    p->n_responses = 2;
    p->run = "run-a";
    l->pair_id = (char *)id;
    l->winner = winner;
    req->pair = p;
    req->label = l;
}

static void test_estimate_orients_by_the_label_and_builds_both_records(void **state)
{
    (void)state;
    struct strength_estimator_config cfg;
    assert_int_equal(strength_estimator_config_defaults(&cfg), ERR_OK);
    Oaif__V1__EstimateRequest req;
    Oaif__V1__Pair p;
    Oaif__V1__Response r0, r1, *rs[2];
    Oaif__V1__Label l;
    /* member-major, two texts: m0 (first 2, second 0), m1 (first 1, second 1.5) */
    double sc[4] = {2, 0, 1, 1.5};
    char *names[2] = {"default/m0@v1", "default/m1@v4"};
    Oaif__V1__ScoreReply rep = OAIF__V1__SCORE_REPLY__INIT;
    rep.members = names;
    rep.n_members = 2;
    rep.scores = sc;
    rep.n_scores = 4;
    char why[512];
    for (int w = 0; w < 2; w++) {
        make_request(&req, &p, &r0, &r1, rs, &l, "pair-7",
                     w ? OAIF__V1__WINNER__WINNER_SECOND : OAIF__V1__WINNER__WINNER_FIRST);
        assert_int_equal(strength_request_check(&req, why, sizeof why), ERR_OK);
        struct strength_result *r = NULL;
        assert_int_equal(strength_estimate(&cfg, &req, &rep, NULL, &r, why, sizeof why), ERR_OK);
        /* d = {2, -0.5} for FIRST: mu 0.75, sigma 1.25; SECOND: mu -0.75 */
        double want = w ? -0.75 : 0.75;
        assert_float_equal(r->mu, want, 1e-12);
        assert_float_equal(r->sigma, 1.25, 1e-12);
        assert_int_equal(r->n_records, 2);
        Oaif__V1__EstimateReply *er =
            oaif__v1__estimate_reply__unpack(NULL, r->packed_len, r->packed);
        assert_non_null(er);
        assert_float_equal(er->strength->mean, want, 1e-12);
        assert_float_equal(er->strength->std, 1.25, 1e-12);
        assert_int_equal(er->strength->action, KEEP); /* the default policy */
        assert_int_equal(er->strength->members, 2);
        assert_string_equal(er->strength->ensemble, cfg.ensemble);
        assert_string_equal(er->strength->run, "run-a");
        assert_string_equal(er->scores->members[1], "default/m1@v4");
        assert_int_equal(er->scores->n_first, 2);
        assert_true(er->scores->first[1] == 1 && er->scores->second[1] == 1.5);
        /* the records: Scores then Strength, both under the pair id, equal to the reply's */
        assert_int_equal(r->records[0]->kind, OAIF__V1__RECORD_KIND__RECORD_KIND_SCORES);
        assert_int_equal(r->records[1]->kind, OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH);
        assert_string_equal(r->records[0]->id, "pair-7");
        assert_string_equal(r->records[1]->id, "pair-7");
        Oaif__V1__Strength *st =
            oaif__v1__strength__unpack(NULL, r->records[1]->data.len, r->records[1]->data.data);
        assert_non_null(st);
        assert_true(st->mean == er->strength->mean && st->std == er->strength->std);
        assert_string_equal(st->pair_id, "pair-7");
        oaif__v1__strength__free_unpacked(st, NULL);
        oaif__v1__estimate_reply__free_unpacked(er, NULL);
        strength_result_free(&r);
        assert_null(r);
    }
    /* fewer members than wanted, or a reply of the wrong shape: retryable */
    cfg.min_members = 3;
    struct strength_result *r = NULL;
    assert_int_equal(strength_estimate(&cfg, &req, &rep, NULL, &r, why, sizeof why), ERR_AGAIN);
    assert_non_null(strstr(why, "2 members answered, at least 3"));
    cfg.min_members = 1;
    rep.n_scores = 3;
    assert_int_equal(strength_estimate(&cfg, &req, &rep, NULL, &r, why, sizeof why), ERR_AGAIN);
    assert_non_null(strstr(why, "3 scores for 2 members"));
    rep.n_scores = 4;
    sc[3] = INFINITY;
    assert_int_equal(strength_estimate(&cfg, &req, &rep, NULL, &r, why, sizeof why), ERR_AGAIN);
    assert_non_null(strstr(why, "not finite"));
    assert_null(r);
    strength_estimator_config_release(&cfg);
}

/* ---- the actions at their thresholds ------------------------------------------------------ */

static void test_drop_below_is_strict_on_abs_mu(void **state)
{
    (void)state;
    struct strength_rules r = default_rules();
    struct strength_decision d;
    r.policy = STRENGTH_POLICY_FLIP;
    r.drop_below = 0.5;
    assert_int_equal(decide(&r, 0.5 - EPS, 0, NULL, &d), DROP);
    assert_non_null(strstr(d.reason, "drop_below"));
    assert_int_equal(decide(&r, -(0.5 - EPS), 0, NULL, &d), DROP); /* |mu|: drop beats flip */
    assert_int_equal(decide(&r, 0.5, 0, NULL, &d), KEEP);
    assert_int_equal(decide(&r, 0.5 + EPS, 0, NULL, &d), KEEP);
    assert_int_equal(decide(&r, -0.5, 0, NULL, &d), FLIP); /* not dropped: the policy decides */
    r.drop_below = 0;                                      /* off: even mu 0 stays */
    assert_int_equal(decide(&r, 0, 0, NULL, &d), KEEP);
}

static void test_drop_std_above_is_strict_on_sigma(void **state)
{
    (void)state;
    struct strength_rules r = default_rules();
    struct strength_decision d;
    r.policy = STRENGTH_POLICY_SOFT;
    r.drop_std_above = 1.0;
    assert_int_equal(decide(&r, 2, 1.0 - EPS, NULL, &d), SOFT);
    assert_int_equal(decide(&r, 2, 1.0, NULL, &d), SOFT);
    assert_int_equal(decide(&r, 2, 1.0 + EPS, NULL, &d), DROP);
    assert_non_null(strstr(d.reason, "sigma"));
    assert_true(d.soft_target == 0 && d.margin == 0 && d.smoothing == 0);
    r.drop_std_above = 0; /* off */
    assert_int_equal(decide(&r, 2, 1e6, NULL, &d), SOFT);
}

static void test_flip_below_zero(void **state)
{
    (void)state;
    struct strength_rules r = default_rules();
    struct strength_decision d;
    r.policy = STRENGTH_POLICY_FLIP;
    r.flip_quantile = 0;
    assert_int_equal(decide(&r, -EPS, 0, NULL, &d), FLIP);
    assert_int_equal(decide(&r, 0, 0, NULL, &d), KEEP);
    assert_int_equal(decide(&r, EPS, 0, NULL, &d), KEEP);
    assert_true(d.sample == 0 && d.threshold == 0);
    /* the keep policy never flips */
    r.policy = STRENGTH_POLICY_KEEP;
    assert_int_equal(decide(&r, -5, 0, NULL, &d), KEEP);
}

static void test_flip_bottom_quantile_and_its_warm_up(void **state)
{
    (void)state;
    strength_dist_t *dist = strength_dist_new(0);
    assert_non_null(dist);
    /* mu 1 .. 100 in a shuffled order: the 0.1-quantile (type 1) is the 10th smallest, 10 */
    for (int i = 0; i < 100; i++) {
        int v = (i * 37) % 100 + 1;
        char id[16];
        snprintf(id, sizeof id, "p%d", v);
        assert_int_equal(strength_dist_add(dist, id, v), ERR_OK);
    }
    struct strength_rules r = default_rules();
    struct strength_decision d;
    r.policy = STRENGTH_POLICY_FLIP;
    r.flip_quantile = 0.1;
    r.min_sample = 100;
    assert_int_equal(decide(&r, 10 - EPS, 0, dist, &d), FLIP);
    assert_int_equal(d.sample, 100);
    assert_true(d.threshold == 10);
    assert_int_equal(decide(&r, 10, 0, dist, &d), FLIP); /* ties the 10th smallest */
    assert_int_equal(decide(&r, 10 + EPS, 0, dist, &d), KEEP);
    assert_non_null(strstr(d.reason, "q0.10"));
    /* bottom 20%: 20 */
    r.flip_quantile = 0.2;
    assert_int_equal(decide(&r, 20, 0, dist, &d), FLIP);
    assert_int_equal(decide(&r, 20 + EPS, 0, dist, &d), KEEP);
    /* under min_sample (and with no distribution at all): the rule is mu < 0 */
    r.min_sample = 101;
    assert_int_equal(decide(&r, 5, 0, dist, &d), KEEP);
    assert_int_equal(decide(&r, -EPS, 0, dist, &d), FLIP);
    assert_true(d.sample == 0 && d.threshold == 0);
    assert_non_null(strstr(d.reason, "under min_sample"));
    r.min_sample = 1;
    assert_int_equal(decide(&r, 5, 0, NULL, &d), KEEP);
    assert_int_equal(decide(&r, -1, 0, NULL, &d), FLIP);
    strength_dist_destroy(&dist);
    assert_null(dist);
}

static void test_smooth_only_below_zero(void **state)
{
    (void)state;
    struct strength_rules r = default_rules();
    struct strength_decision d;
    r.policy = STRENGTH_POLICY_SMOOTH;
    r.epsilon = 0.15;
    assert_int_equal(decide(&r, -EPS, 0, NULL, &d), SMOOTH);
    assert_true(d.smoothing == 0.15);
    assert_int_equal(decide(&r, 0, 0, NULL, &d), KEEP);
    assert_true(d.smoothing == 0);
    assert_int_equal(decide(&r, EPS, 0, NULL, &d), KEEP);
}

static void test_margin_is_scaled_and_clipped(void **state)
{
    (void)state;
    struct strength_rules r = default_rules();
    struct strength_decision d;
    r.policy = STRENGTH_POLICY_MARGIN;
    r.margin_scale = 2;
    r.margin_clip = 1;
    assert_int_equal(decide(&r, 1 - EPS, 0, NULL, &d), MARGIN);
    assert_float_equal(d.margin, 2 * (1 - EPS), 1e-15);
    assert_int_equal(decide(&r, 1, 0, NULL, &d), MARGIN);
    assert_true(d.margin == 2);
    assert_int_equal(decide(&r, 1 + EPS, 0, NULL, &d), MARGIN);
    assert_true(d.margin == 2);
    assert_int_equal(decide(&r, -3, 0, NULL, &d), MARGIN);
    assert_true(d.margin == -2);
    assert_true(d.smoothing == 0 && d.soft_target == 0);
}

static void test_soft_target_is_sigmoid_of_mu_over_t(void **state)
{
    (void)state;
    struct strength_rules r = default_rules();
    struct strength_decision d;
    r.policy = STRENGTH_POLICY_SOFT;
    r.temperature = 2;
    assert_int_equal(decide(&r, 0, 0, NULL, &d), SOFT);
    assert_true(d.soft_target == 0.5);
    decide(&r, 2, 0, NULL, &d);
    assert_float_equal(d.soft_target, 1.0 / (1.0 + exp(-1.0)), 1e-15);
    decide(&r, -2, 0, NULL, &d);
    assert_float_equal(d.soft_target, 1.0 / (1.0 + exp(1.0)), 1e-15);
}

static void test_rules_are_checked_naming_the_option(void **state)
{
    (void)state;
    char why[256];
    struct strength_rules r = default_rules();
    assert_int_equal(strength_rules_check(&r, why, sizeof why), ERR_OK);
    struct {
        double *field;
        double value;
        const char *name;
    } bad[] = {{&r.flip_quantile, 1.0, "flip_quantile"},
               {&r.epsilon, 0.5, "epsilon"},
               {&r.margin_scale, -1, "margin_scale"},
               {&r.margin_clip, NAN, "margin_clip"},
               {&r.temperature, 0, "temperature"},
               {&r.drop_below, -0.1, "drop_below"},
               {&r.drop_std_above, INFINITY, "drop_std_above"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double keep = *bad[i].field;
        *bad[i].field = bad[i].value;
        assert_int_equal(strength_rules_check(&r, why, sizeof why), ERR_INVAL);
        assert_non_null(strstr(why, bad[i].name));
        *bad[i].field = keep;
    }
    r.policy = 9;
    assert_int_equal(strength_rules_check(&r, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "policy"));
}

/* ---- the running distribution ------------------------------------------------------------- */

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The reference: the values of the live ids, sorted; type-1 quantile. */
static double ref_quantile(const double *vals, const int *live, size_t n, double q)
{
    double *s = malloc(n * sizeof *s);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (live[i])
            s[k++] = vals[i];
    qsort(s, k, sizeof *s, cmp_d);
    double idx = ceil(q * (double)k - 1e-9) - 1;
    size_t i = idx < 0 ? 0 : (size_t)idx;
    double v = s[i < k ? i : k - 1];
    free(s);
    return v;
}

static void test_distribution_window_replacement_and_quantiles(void **state)
{
    (void)state;
    /* ids 0..199 with random values, replaced at random; window 50 by recency. The reference
     * tracks each id's value and its last touch. Queries after 1, 5 and 100 changes exercise the
     * one-by-one update and the rebuild. */
    enum { IDS = 200, WIN = 50 };
    strength_dist_t *d = strength_dist_new(WIN);
    assert_non_null(d);
    double vals[IDS];
    long touch[IDS];
    int live[IDS];
    memset(live, 0, sizeof live);
    srand(7);
    long clock = 0;
    const int gaps[] = {1, 5, 100, 3, 33, 1, 1, 2};
    for (int round = 0; round < 200; round++) {
        int g = gaps[round % 8];
        for (int k = 0; k < g; k++) {
            int id = rand() % IDS;
            double v = (double)(rand() % 1000) / 10.0 - 50.0; /* ties happen */
            char name[16];
            snprintf(name, sizeof name, "pair-%d", id);
            assert_int_equal(strength_dist_add(d, name, v), ERR_OK);
            vals[id] = v;
            touch[id] = ++clock;
            live[id] = 1;
            /* the window: the WIN most recently touched */
            int n = 0;
            for (int i = 0; i < IDS; i++)
                n += live[i];
            while (n > WIN) {
                int old = -1;
                for (int i = 0; i < IDS; i++)
                    if (live[i] && (old < 0 || touch[i] < touch[old]))
                        old = i;
                live[old] = 0;
                n--;
            }
        }
        size_t n = 0;
        for (int i = 0; i < IDS; i++)
            n += (size_t)live[i];
        assert_int_equal(strength_dist_count(d), n);
        const double qs[] = {0, 0.1, 0.25, 0.5, 0.9, 0.999};
        for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
            double got = 0;
            assert_true(strength_dist_quantile(d, qs[i], &got));
            assert_true(got == ref_quantile(vals, live, IDS, qs[i]));
        }
    }
    assert_int_equal(strength_dist_add(d, "x", NAN), ERR_INVAL);
    strength_dist_destroy(&d);
    /* empty: no quantile; NULL-safe */
    d = strength_dist_new(0);
    double v;
    assert_false(strength_dist_quantile(d, 0.5, &v));
    assert_int_equal(strength_dist_count(NULL), 0);
    strength_dist_destroy(&d);
    strength_dist_destroy(&d);
}

/* ---- requests, ids, members --------------------------------------------------------------- */

static void test_bad_requests_name_the_field(void **state)
{
    (void)state;
    Oaif__V1__EstimateRequest req;
    Oaif__V1__Pair p;
    Oaif__V1__Response r0, r1, *rs[2];
    Oaif__V1__Label l;
    char why[512];
#define EXPECT(text)                                                                               \
    do {                                                                                           \
        assert_int_equal(strength_request_check(&req, why, sizeof why), ERR_INVAL);                \
        if (!strstr(why, text))                                                                    \
            fail_msg("'%s' does not say '%s'", why, text);                                         \
    } while (0)
    make_request(&req, &p, &r0, &r1, rs, &l, "p1", OAIF__V1__WINNER__WINNER_FIRST);
    req.pair = NULL;
    EXPECT("pair: missing");
    make_request(&req, &p, &r0, &r1, rs, &l, "", OAIF__V1__WINNER__WINNER_FIRST);
    EXPECT("pair.id");
    make_request(&req, &p, &r0, &r1, rs, &l, "p1", OAIF__V1__WINNER__WINNER_FIRST);
    p.n_responses = 1;
    EXPECT("pair.responses: 1 responses");
    make_request(&req, &p, &r0, &r1, rs, &l, "p1", OAIF__V1__WINNER__WINNER_FIRST);
    r1.text = NULL;
    EXPECT("pair.responses[1].text");
    make_request(&req, &p, &r0, &r1, rs, &l, "p1", OAIF__V1__WINNER__WINNER_FIRST);
    req.label = NULL;
    EXPECT("label: missing");
    make_request(&req, &p, &r0, &r1, rs, &l, "p1", OAIF__V1__WINNER__WINNER_TIE);
    EXPECT("label.winner: a tie");
    make_request(&req, &p, &r0, &r1, rs, &l, "p1", OAIF__V1__WINNER__WINNER_UNSPECIFIED);
    EXPECT("label.winner: 0");
    make_request(&req, &p, &r0, &r1, rs, &l, "p1", OAIF__V1__WINNER__WINNER_SECOND);
    l.pair_id = "p2";
    EXPECT("label.pair_id: 'p2'");
    l.pair_id = ""; /* unset: fine */
    assert_int_equal(strength_request_check(&req, why, sizeof why), ERR_OK);
#undef EXPECT
}

static void test_score_ids_are_derived_and_distinct(void **state)
{
    (void)state;
    char a[96], b[96];
    strength_score_id("default", "pair-1", "m0@v1,m1@v1", 0, a, sizeof a);
    strength_score_id("default", "pair-1", "m0@v1,m1@v1", 0, b, sizeof b);
    assert_string_equal(a, b); /* the same question, the same id */
    assert_int_equal(strlen(a), strlen("strength-score-") + 64);
    assert_true(!strncmp(a, "strength-score-", 15));
    const char *other[][3] = {{"other", "pair-1", "m0@v1,m1@v1"},
                              {"default", "pair-2", "m0@v1,m1@v1"},
                              {"default", "pair-1", "m0@v1,m1@v2"},
                              {"default", "pair-1m0@v1,m1@v1", ""}}; /* no boundary confusion */
    for (size_t i = 0; i < 4; i++) {
        strength_score_id(other[i][0], other[i][1], other[i][2], 0, b, sizeof b);
        assert_string_not_equal(a, b);
    }
    strength_score_id("default", "pair-1", "m0@v1,m1@v1", 1, b, sizeof b);
    assert_string_not_equal(a, b);
}

static void test_members_key_takes_each_members_newest_version(void **state)
{
    (void)state;
    int64_t v[8];
    for (int i = 0; i < 8; i++)
        v[i] = -1;
    char key[128];
    strength_members_key(v, 8, key, sizeof key);
    assert_string_equal(key, "");
    Oaif__V1__Checkpoint c = OAIF__V1__CHECKPOINT__INIT;
    c.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD;
    c.ensemble = "e";
    c.member = 2;
    c.version = 3;
    assert_true(strength_members_note("e", &c, v, 8));
    c.version = 2; /* older: no change */
    assert_false(strength_members_note("e", &c, v, 8));
    c.member = 0;
    c.version = 1;
    assert_true(strength_members_note("e", &c, v, 8));
    c.ensemble = "other";
    c.version = 9;
    assert_false(strength_members_note("e", &c, v, 8));
    c.ensemble = "e";
    c.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY;
    assert_false(strength_members_note("e", &c, v, 8));
    c.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD;
    c.member = 8; /* out of range */
    assert_false(strength_members_note("e", &c, v, 8));
    assert_false(strength_members_note("e", NULL, v, 8));
    strength_members_key(v, 8, key, sizeof key);
    assert_string_equal(key, "m0@v1,m2@v3");
    strength_members_key(v, 8, key, 9); /* room for one member, not two: the first alone */
    assert_string_equal(key, "m0@v1");
}

static void test_defaults_are_the_documented_ones(void **state)
{
    (void)state;
    struct strength_estimator_config c;
    assert_int_equal(strength_estimator_config_defaults(&c), ERR_OK);
    assert_string_equal(c.ensemble, "default");
    assert_int_equal(c.rules.policy, STRENGTH_POLICY_KEEP);
    assert_true(c.rules.flip_quantile == 0 && c.rules.epsilon == 0.1);
    assert_true(c.rules.margin_scale == 1 && c.rules.margin_clip == 5);
    assert_true(c.rules.temperature == 1 && c.rules.drop_below == 0);
    assert_int_equal(c.window, 10000);
    assert_string_equal(strength_policy_name(c.rules.policy), "keep");
    assert_string_equal(strength_action_name(FLIP), "flip");
    strength_estimator_config_release(&c);
    /* flags reach the rules */
    char *argv[] = {"strength-estimator", "--policy", "flip", "--flip-quantile", "0.2", NULL};
    assert_int_equal(strength_estimator_config_load(&c, 5, argv, NULL), ERR_OK);
    assert_int_equal(c.rules.policy, STRENGTH_POLICY_FLIP);
    assert_true(c.rules.flip_quantile == 0.2);
    strength_estimator_config_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mu_and_sigma_on_known_scores),
        cmocka_unit_test(test_estimate_orients_by_the_label_and_builds_both_records),
        cmocka_unit_test(test_drop_below_is_strict_on_abs_mu),
        cmocka_unit_test(test_drop_std_above_is_strict_on_sigma),
        cmocka_unit_test(test_flip_below_zero),
        cmocka_unit_test(test_flip_bottom_quantile_and_its_warm_up),
        cmocka_unit_test(test_smooth_only_below_zero),
        cmocka_unit_test(test_margin_is_scaled_and_clipped),
        cmocka_unit_test(test_soft_target_is_sigmoid_of_mu_over_t),
        cmocka_unit_test(test_rules_are_checked_naming_the_option),
        cmocka_unit_test(test_distribution_window_replacement_and_quantiles),
        cmocka_unit_test(test_bad_requests_name_the_field),
        cmocka_unit_test(test_score_ids_are_derived_and_distinct),
        cmocka_unit_test(test_members_key_takes_each_members_newest_version),
        cmocka_unit_test(test_defaults_are_the_documented_ones),
    };
    return cmocka_run_group_tests_name("strength_estimator", tests, NULL, NULL);
}
