/* test_report_procs - `oaif report` as a real process against a real ledger process holding
 * hand-made records of run "r1" (EvalResults of versions 1..3 with v2 written twice under two ids
 * and one of another run, policy Checkpoints giving each version's step, six TrainSteps with
 * metrics, pairs and pairs set aside, Labels of their pairs, Strengths, Pairs at versions 0 and 3
 * whose answers hold markup) and a feature CSV; the page is opened in headless Chromium.
 *
 * Checked: the JSON the page embeds equals the records (the latest of a version written twice,
 * the judge's means over each step's labels, per-step counts of what was set aside and of
 * strength actions, the strength table, the CSV's rows); in Chromium the page raised no script
 * error and says "ready", every chart drew (each canvas has coloured pixels in its plot area, as
 * the page counts them into data-painted, and the number of its points; a decoded screenshot has
 * coloured pixels where each plot area stands), and the numbers the tables show are the
 * records' (the newest evaluation, each version's row, the reward-model accuracy where one record
 * has it and not where the others lack it, the strength table); an answer that tries to
 * close the script element is shown as text. `oaif status --run r1` from the same records: step,
 * version, loss, the pairs/s of the last steps, the last evaluation with its interval, the spend of
 * the run's pairs' labels (JSON and the table), and redrawn on a terminal. Bad usage is named.
 * Skipped, saying why, only when no Chromium is installed (Debian's chromium; deploy/setup.sh
 * installs it). The ledger and the records' directory: tests/rmfixture.h (KEEP_LOGS=1 keeps the
 * pages). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#ifdef HAVE_PNG
#include <png.h>
#endif

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rmfixture.h"
#include "testproc.h"

static struct rmfx *g;

/* ---- the records ------------------------------------------------------------------------------
 */

/* Records packed for one put (rmfx_pack, rmfx_put). */
struct recs {
    Oaif__V1__Record r[128];
    uint8_t *bufs[128];
    char ids[128][64];
    size_t n;
};

static void add(struct recs *s, Oaif__V1__RecordKind kind, const ProtobufCMessage *m)
{
    assert_true(s->n < 128);
    rmfx_pack(&s->r[s->n], &s->bufs[s->n], kind, s->ids[s->n], m);
    s->n++;
}

static void put(struct rmfx *f, struct recs *s, const char *put_id)
{
    rmfx_put(f, put_id, s->r, s->bufs, s->n);
    s->n = 0;
}

struct ev {
    const char *run;
    unsigned version;
    double win_rate, lo, hi, lc, acc, base_acc, len, kl;
};

/* v2 twice, under two ids: the second, committed later, counts. */
static const struct ev evs[] = {
    {"r1", 1, 0.4375, 0.3125, 0.5625, 0.4290, 0.125, 0.1875, 41.5, 0.12},
    {"r1", 2, 0.1000, 0.0500, 0.2000, 0.1100, 0.010, 0.1875, 10.0, 0.50},
    {"r1", 3, 0.6250, 0.5000, 0.7500, 0.5810, 0.375, 0.1875, 36.5, 1.35},
    {"r1", 2, 0.2500, 0.0938, 0.4375, 0.2390, 0.0625, 0.1875, 33.0, 0.80},
    {"other", 4, 0.9900, 0.9800, 1.0000, 0.9900, 0.99, 0.1875, 5.0, 0.01},
};
#define NEVS           (sizeof evs / sizeof evs[0])
#define NSTEPS         6
#define PAIRS_PER_STEP 4

static double step_loss(int s)
{
    return 0.6931 - 0.05 * s;
}
static double label_latency(int s, int p)
{
    return 100.0 + 10.0 * s + p;
}

static void put_all(struct rmfx *f)
{
    static struct recs s;
    Oaif__V1__Metric ms[8][3], *mp[8][3];
    for (size_t i = 0; i < NEVS; i++) {
        Oaif__V1__EvalResult e = OAIF__V1__EVAL_RESULT__INIT;
        snprintf(s.ids[s.n], sizeof s.ids[0], "eval-%s-v%u-annotate-eval%s", evs[i].run,
                 evs[i].version, i == 3 ? "-again" : "");
        e.id = s.ids[s.n];
        e.run = (char *)evs[i].run;
        e.version = evs[i].version;
        e.judge = "annotate-eval";
        e.win_rate = evs[i].win_rate;
        e.win_rate_lo = evs[i].lo;
        e.win_rate_hi = evs[i].hi;
        e.lc_win_rate = evs[i].lc;
        e.accuracy = evs[i].acc;
        e.mean_length = evs[i].len;
        e.baseline_mean_length = 40.0;
        e.kl = evs[i].kl;
        e.prompts = 16;
        e.wins = 3;
        e.ties = 4;
        e.losses = 9;
        oaif__v1__metric__init(&ms[i][0]);
        ms[i][0].name = "baseline_accuracy";
        ms[i][0].value = evs[i].base_acc;
        oaif__v1__metric__init(&ms[i][1]);
        ms[i][1].name = "has_kl";
        ms[i][1].value = 1;
        mp[i][0] = &ms[i][0];
        mp[i][1] = &ms[i][1];
        e.metrics = mp[i];
        e.n_metrics = 2;
        if (i == 2) { /* v3 measured the reward ensemble; the others did not */
            e.rm_accuracy = 0.8125;
            oaif__v1__metric__init(&ms[i][2]);
            ms[i][2].name = "has_rm_accuracy";
            ms[i][2].value = 1;
            mp[i][2] = &ms[i][2];
            e.n_metrics = 3;
        }
        add(&s, OAIF__V1__RECORD_KIND__RECORD_KIND_EVAL, &e.base);
        if (i == 2)
            put(f, &s, "evals-1"); /* v2's second record is committed after its first */
    }
    put(f, &s, "evals-2");
    /* Version v is published after step 2v. */
    for (unsigned v = 1; v <= 3; v++) {
        Oaif__V1__Checkpoint c = OAIF__V1__CHECKPOINT__INIT;
        snprintf(s.ids[s.n], sizeof s.ids[0], "ckpt-r1-v%u", v);
        c.id = s.ids[s.n];
        c.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY;
        c.version = v;
        c.step = 2 * (uint64_t)v;
        c.run = "r1";
        add(&s, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT, &c.base);
    }
    put(f, &s, "ckpts");
    static char pids[NSTEPS][PAIRS_PER_STEP][32];
    for (int st = 1; st <= NSTEPS; st++) {
        Oaif__V1__TrainStep t = OAIF__V1__TRAIN_STEP__INIT;
        static const char *const names[] = {"loss", "margin",     "accuracy",
                                            "kl",   "len_chosen", "len_rejected"};
        Oaif__V1__Metric m[6], *mpp[6];
        double vals[6] = {step_loss(st), 0.1 * st, 0.5 + 0.05 * st, 0.01 * st, 20 - st, 25 + st};
        for (int k = 0; k < 6; k++) {
            oaif__v1__metric__init(&m[k]);
            m[k].name = (char *)names[k];
            m[k].value = vals[k];
            mpp[k] = &m[k];
        }
        char *pp[PAIRS_PER_STEP];
        for (int p = 0; p < PAIRS_PER_STEP; p++) {
            snprintf(pids[st - 1][p], sizeof pids[0][0], "pair-%d-%d", st, p);
            pp[p] = pids[st - 1][p];
        }
        /* Step s set aside s % 3 ties and one stale pair on even steps. */
        char *sk[4], *why[4];
        size_t nsk = 0;
        for (int k = 0; k < st % 3; k++) {
            sk[nsk] = "set-aside";
            why[nsk++] = "tie";
        }
        if (st % 2 == 0) {
            sk[nsk] = "set-aside";
            why[nsk++] = "stale";
        }
        snprintf(s.ids[s.n], sizeof s.ids[0], "step-r1-%06d", st);
        t.id = s.ids[s.n];
        t.run = "r1";
        t.step = (uint64_t)st;
        t.policy_version = (uint32_t)((st - 1) / 2);
        t.metrics = mpp;
        t.n_metrics = 6;
        t.pair_ids = pp;
        t.n_pair_ids = PAIRS_PER_STEP;
        t.skipped_pair_ids = sk;
        t.n_skipped_pair_ids = nsk;
        t.skip_reasons = why;
        t.n_skip_reasons = nsk;
        t.created_ms = 1000 * (uint64_t)st; /* a step a second, 4 pairs each */
        add(&s, OAIF__V1__RECORD_KIND__RECORD_KIND_STEP, &t.base);
        for (int p = 0; p < PAIRS_PER_STEP; p++) {
            Oaif__V1__Label l = OAIF__V1__LABEL__INIT;
            snprintf(s.ids[s.n], sizeof s.ids[0], "label-%.31s", pids[st - 1][p]);
            l.id = s.ids[s.n];
            l.pair_id = pids[st - 1][p];
            l.winner = OAIF__V1__WINNER__WINNER_FIRST;
            l.latency_ms = label_latency(st, p);
            l.cost = 0.001 * (p + 1);
            l.disagreement = 0.02 * st;
            add(&s, OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, &l.base);
            /* A strength for every pair: flip for the first of even steps, keep otherwise. */
            Oaif__V1__Strength sg = OAIF__V1__STRENGTH__INIT;
            snprintf(s.ids[s.n], sizeof s.ids[0], "strength-%.31s", pids[st - 1][p]);
            sg.id = s.ids[s.n];
            sg.pair_id = pids[st - 1][p];
            sg.run = "r1";
            sg.mean = 0.1 * (p - 1) + 0.01 * st;
            sg.std = 0.2;
            sg.action = p == 0 && st % 2 == 0 ? OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP
                                              : OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_KEEP;
            add(&s, OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH, &sg.base);
        }
    }
    put(f, &s, "steps");
    /* Pairs: version 0 and version 3 answer prompts p0..p2; version 1 answers p0 (older, not
     * shown). One answer tries to end the page's script. */
    static const struct {
        unsigned v;
        const char *prompt, *answer;
    } pairs[] = {
        {0, "p0", "base answer 0"},
        {0, "p1", "base answer 1"},
        {0, "p2", "base answer 2"},
        {1, "p0", "v1 answer 0"},
        {3, "p0", "policy answer 0"},
        {3, "p1", "policy </script><script>document.title='pwned'</script> 1"},
        {3, "p9", "policy answer to a prompt the baseline never saw"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        Oaif__V1__Pair p = OAIF__V1__PAIR__INIT;
        Oaif__V1__Response r0 = OAIF__V1__RESPONSE__INIT, r1 = OAIF__V1__RESPONSE__INIT;
        Oaif__V1__Response *rs[2] = {&r0, &r1};
        r0.text = (char *)pairs[i].answer;
        r1.text = "second";
        snprintf(s.ids[s.n], sizeof s.ids[0], "pair-r1-%zu", i);
        p.id = s.ids[s.n];
        p.prompt_id = (char *)pairs[i].prompt;
        p.prompt = "What is 2+2?";
        p.responses = rs;
        p.n_responses = 2;
        p.policy_version = pairs[i].v;
        p.run = "r1";
        add(&s, OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, &p.base);
        /* Its judgement, for oaif status's spend: cost i / 8, tokens 10 i + 1 and 1. */
        Oaif__V1__Label l = OAIF__V1__LABEL__INIT;
        snprintf(s.ids[s.n], sizeof s.ids[0], "label-pair-r1-%zu", i);
        l.id = s.ids[s.n];
        l.pair_id = s.ids[s.n - 1];
        l.winner = OAIF__V1__WINNER__WINNER_FIRST;
        l.cost = (double)i / 8;
        l.prompt_tokens = 10 * (uint32_t)i + 1;
        l.completion_tokens = 1;
        add(&s, OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, &l.base);
    }
    put(f, &s, "pairs");
}

static int setup(void **state)
{
    struct rmfx *f = rmfx_open("report", 150);
    assert_non_null(f);
    put_all(f);
    g = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    return rmfx_close(*state);
}

/* ---- helpers -------------------------------------------------------------------------------- */

/* Runs a shell command, its stdout and stderr into out (malloc'd); returns the exit status. */
static int run(char **out, const char *cmd)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    assert_non_null(b);
    size_t got;
    while ((got = fread(b + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            b = realloc(b, cap);
            assert_non_null(b);
        }
    }
    b[n] = '\0';
    *out = b;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* `pre oaif args 2>&1` (pre: a wrapper such as "timeout 20", or ""). */
static int oaif(char **out, const char *pre, const char *args)
{
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "%s %s %s 2>&1", pre, tp_bin("services/oaif/oaif"), args);
    return run(out, cmd);
}

static int report(char **out, const char *args)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "report %s", args);
    return oaif(out, "", cmd);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* The JSON between <script type="application/json" id="oaif-data"> and </script>. */
static json_t *embedded(const char *html)
{
    static const char open[] = "<script type=\"application/json\" id=\"oaif-data\">";
    const char *a = strstr(html, open);
    assert_non_null(a);
    a += strlen(open);
    const char *b = strstr(a, "</script>");
    assert_non_null(b);
    json_error_t je;
    json_t *d = json_loadb(a, (size_t)(b - a), 0, &je);
    if (!d)
        fail_msg("the embedded data is not JSON: %s", je.text);
    return d;
}

static double num(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fail_msg("no number '%s'", key);
    return json_number_value(v);
}

static void near(double got, double want, const char *what)
{
    if (fabs(got - want) > 1e-9)
        fail_msg("%s: %.12g, expected %.12g", what, got, want);
}

/* The value of attribute `attr` in the tag that contains `needle`. */
static bool tag_attr(const char *dom, const char *needle, const char *attr, char *out, size_t len)
{
    const char *p = strstr(dom, needle);
    if (!p)
        return false;
    const char *end = strchr(p, '>');
    char pat[64];
    snprintf(pat, sizeof pat, " %s=\"", attr);
    const char *a = strstr(p, pat);
    if (!a || !end || a > end)
        return false;
    a += strlen(pat);
    const char *q = strchr(a, '"');
    if (!q)
        return false;
    snprintf(out, len, "%.*s", (int)(q - a), a);
    return true;
}

/* The text of the first <td data-k="key"> after `from`. */
static void cell(const char *from, const char *key, char *out, size_t len)
{
    char pat[80];
    snprintf(pat, sizeof pat, "<td data-k=\"%s\">", key);
    const char *a = strstr(from, pat);
    const char *b = a ? strstr(a, "</td>") : NULL;
    if (!a || !b) {
        fail_msg("no cell %s", key);
        return; /* fail_msg does not return; said for the analyzer */
    }
    a += strlen(pat);
    snprintf(out, len, "%.*s", (int)(b - a), a);
}

static void cell_is(const char *from, const char *key, double want, int digits)
{
    char got[64], w[64];
    cell(from, key, got, sizeof got);
    snprintf(w, sizeof w, "%.*f", digits, want);
    if (strcmp(got, w) != 0)
        fail_msg("cell %s shows '%s', the record says %s", key, got, w);
}

static const char *chromium(void)
{
    static const char *const names[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser",
                                        "/usr/bin/google-chrome"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (access(names[i], X_OK) == 0)
            return names[i];
    return NULL;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void write_features(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("pair_id,side,label_correct,noise_flipped,reward,pc1,pc2\n", f);
    for (int i = 0; i < 10; i++)
        fprintf(f, "\"pair,%d\",%s,1,%d,%.3f,%.3f,%.3f\n", i, i % 2 ? "rejected" : "chosen", i == 4,
                0.1 * i, 1.0 - 0.2 * i, 0.05 * i * i - 1);
    fclose(f);
}

/* `oaif report --run r1` with the feature CSV into f->dir/name (its path into html): it prints
 * the path. */
static void write_report(const struct rmfx *f, const char *name, char *html, size_t len)
{
    char csv[320], args[1000];
    snprintf(csv, sizeof csv, "%s/features.csv", f->dir);
    snprintf(html, len, "%s/%s", f->dir, name);
    write_features(csv);
    snprintf(args, sizeof args, "--run r1 --out %s --features %s", html, csv);
    char *out;
    int rc = report(&out, args);
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    assert_non_null(strstr(out, html));
    free(out);
}

static void test_the_page_embeds_the_records(void **state)
{
    struct rmfx *f = *state;
    char html[320];
    write_report(f, "r1.html", html, sizeof html);
    char *page = slurp(html);
    assert_null(strstr(page, "</script><script>document.title")); /* no markup got through */
    assert_null(strstr(page, "src=\"http")); /* nothing fetched: it opens offline */
    assert_non_null(strstr(page, "Chart.js v4"));
    json_t *d = embedded(page);
    assert_string_equal(json_string_value(json_object_get(d, "run")), "r1");
    /* Evaluations: r1's versions 1..3 in order, v2's later record, each with its step. */
    json_t *ev = json_object_get(d, "evals");
    assert_int_equal(json_array_size(ev), 3);
    static const size_t want[3] = {0, 3, 2};
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(ev, i);
        const struct ev *w = &evs[want[i]];
        assert_int_equal((int)num(e, "version"), (int)w->version);
        assert_int_equal((int)num(e, "step"), 2 * (int)w->version);
        near(num(e, "win_rate"), w->win_rate, "win_rate");
        near(num(e, "win_rate_lo"), w->lo, "win_rate_lo");
        near(num(e, "win_rate_hi"), w->hi, "win_rate_hi");
        near(num(e, "lc_win_rate"), w->lc, "lc_win_rate");
        near(num(e, "accuracy"), w->acc, "accuracy");
        near(num(e, "baseline_accuracy"), w->base_acc, "baseline_accuracy");
        near(num(e, "mean_length"), w->len, "mean_length");
        near(num(e, "kl"), w->kl, "kl");
    }
    /* Steps: metrics as recorded, the judge's means over each step's labels, what was set aside
     * and the strength actions per step. */
    json_t *steps = json_object_get(d, "steps");
    assert_int_equal(json_array_size(steps), NSTEPS);
    for (int st = 1; st <= NSTEPS; st++) {
        json_t *s = json_array_get(steps, (size_t)st - 1);
        assert_int_equal((int)num(s, "step"), st);
        near(num(json_object_get(s, "metrics"), "loss"), step_loss(st), "loss");
        json_t *j = json_object_get(s, "judge");
        double lat = 0;
        for (int p = 0; p < PAIRS_PER_STEP; p++)
            lat += label_latency(st, p) / PAIRS_PER_STEP;
        assert_int_equal((int)num(j, "labels"), PAIRS_PER_STEP);
        near(num(j, "latency_ms"), lat, "judge latency");
        near(num(j, "cost"), 0.001 + 0.002 + 0.003 + 0.004, "judge cost");
        near(num(j, "disagreement"), 0.02 * st, "judge disagreement");
        json_t *sk = json_object_get(s, "skipped");
        if (st % 3)
            near(num(sk, "tie"), st % 3, "ties");
        else
            assert_null(json_object_get(sk, "tie"));
        if (st % 2 == 0)
            near(num(sk, "stale"), 1, "stale");
        json_t *sa = json_object_get(s, "strength");
        near(num(sa, "keep"), st % 2 ? 4 : 3, "keep");
        if (st % 2 == 0)
            near(num(sa, "flip"), 1, "flip");
    }
    json_t *sg = json_object_get(d, "strengths");
    assert_int_equal((int)num(sg, "n"), NSTEPS * PAIRS_PER_STEP);
    json_t *acts = json_object_get(sg, "actions");
    assert_int_equal(json_array_size(acts), 2);
    json_t *keep = json_array_get(acts, 0), *flip = json_array_get(acts, 1);
    assert_string_equal(json_string_value(json_object_get(keep, "action")), "keep");
    assert_int_equal((int)num(keep, "n"), 21);
    assert_int_equal((int)num(flip, "n"), 3);
    near(num(flip, "mean_mu"), -0.1 + 0.01 * (2 + 4 + 6) / 3.0, "flip mean mu");
    near(num(flip, "mean_sigma"), 0.2, "flip mean sigma");
    json_t *fr = json_object_get(json_object_get(d, "features"), "rows");
    assert_int_equal(json_array_size(fr), 10);
    assert_string_equal(json_string_value(json_object_get(json_array_get(fr, 3), "pair_id")),
                        "pair,3");
    near(num(json_array_get(fr, 3), "pc2"), 0.05 * 9 - 1, "pc2");
    /* Samples: v3 against v0 on the prompts both answered, in order. */
    json_t *sm = json_object_get(d, "samples");
    assert_int_equal((int)num(sm, "policy_version"), 3);
    json_t *rows = json_object_get(sm, "rows");
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "baseline")),
                        "base answer 0");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "policy")),
                        "policy answer 0");
    json_decref(d);
    free(page);
}

/* What every Chromium run here is given: no GPU, no sandbox (tests may run as root), one CSS
 * pixel a screen pixel, no scroll bars (they would take width from the layout). */
#define CHROMIUM_FLAGS                                                                             \
    "--headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars "                      \
    "--force-device-scale-factor=1"
#define PAGE_WIDTH 1300

/* A screenshot of the whole page (as tall as its data-height says), decoded, and in it, where
 * each chart's plot area stands (its canvas's data-plot), at least 50 coloured pixels: the charts
 * are on the screen, not only in the page's own count (charts ids[0..n)). Needs libpng
 * (HAVE_PNG); without it this part is skipped, said on stderr. */
static void screenshot_not_blank(const struct rmfx *f, const char *chr, const char *html,
                                 const char *dom, const char *const *ids, size_t n)
{
#ifdef HAVE_PNG
    char v[64], shot[400], cmd[2000];
    assert_true(tag_attr(dom, "<body", "data-height", v, sizeof v));
    int height = atoi(v);
    assert_true(height > 1000);
    snprintf(shot, sizeof shot, "%s/shot.png", f->dir);
    snprintf(cmd, sizeof cmd,
             "timeout 60 %s " CHROMIUM_FLAGS " --window-size=%d,%d --user-data-dir=%s/chromium "
             "--screenshot=%s file://%s >/dev/null 2>>%s/chromium.log",
             chr, PAGE_WIDTH, height, f->dir, shot, html, f->dir);
    assert_int_equal(system(cmd), 0);
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, shot))
        fail_msg("%s: %s", shot, img.message);
    img.format = PNG_FORMAT_RGB;
    unsigned char *px = malloc(PNG_IMAGE_SIZE(img));
    assert_non_null(px);
    if (!png_image_finish_read(&img, NULL, px, 0, NULL))
        fail_msg("%s: %s", shot, img.message);
    assert_int_equal((int)img.width, PAGE_WIDTH);
    for (size_t c = 0; c < n; c++) {
        const char *id = ids[c];
        char needle[64];
        int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
        snprintf(needle, sizeof needle, "id=\"chart-%s\"", id);
        if (!tag_attr(dom, needle, "data-plot", v, sizeof v) ||
            sscanf(v, "%d,%d,%d,%d", &x0, &y0, &x1, &y1) != 4)
            fail_msg("chart %s: no data-plot", id);
        if (x0 < 0 || y0 < 0 || x1 > (int)img.width || y1 > (int)img.height || x1 <= x0 || y1 <= y0)
            fail_msg("chart %s: plot area %s outside the %ux%u screenshot", id, v, img.width,
                     img.height);
        long coloured = 0;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                const unsigned char *p = px + 3 * ((size_t)y * img.width + (size_t)x);
                int hi = p[0] > p[1] ? (p[0] > p[2] ? p[0] : p[2]) : (p[1] > p[2] ? p[1] : p[2]);
                int lo = p[0] < p[1] ? (p[0] < p[2] ? p[0] : p[2]) : (p[1] < p[2] ? p[1] : p[2]);
                coloured += hi - lo > 40;
            }
        if (coloured < 50)
            fail_msg("chart %s: %ld coloured pixels in its plot area (%s) of the screenshot", id,
                     coloured, v);
    }
    /* and the page's left margin, where nothing is drawn, is blank: the count can fail */
    long margin = 0;
    for (unsigned y = 0; y < img.height; y++)
        for (unsigned x = 0; x < 8; x++) {
            const unsigned char *p = px + 3 * ((size_t)y * img.width + x);
            margin += p[0] != p[1] || p[1] != p[2];
        }
    assert_int_equal(margin, 0);
    free(px);
#else
    (void)f, (void)chr, (void)html, (void)dom, (void)ids, (void)n;
    fprintf(stderr, "SKIPPED (the screenshot part): built without libpng (libpng-dev; "
                    "deploy/setup.sh installs it)\n");
#endif
}

static void test_chromium_draws_every_chart_and_shows_the_records(void **state)
{
    struct rmfx *f = *state;
    const char *chr = chromium();
    if (!chr) {
        fprintf(stderr, "SKIPPED: no chromium at /usr/bin (Debian's chromium package; "
                        "deploy/setup.sh installs it): the page is not opened\n");
        skip();
    }
    char html[320];
    write_report(f, "r1-chromium.html", html, sizeof html);
    char cmd[2000];
    snprintf(cmd, sizeof cmd,
             "timeout 60 %s " CHROMIUM_FLAGS " --window-size=%d,1000 "
             "--user-data-dir=%s/chromium --dump-dom file://%s 2>%s/chromium.log",
             chr, PAGE_WIDTH, f->dir, html, f->dir);
    char *dom;
    int rc = run(&dom, cmd);
    if (rc != 0 || !strstr(dom, "<body")) {
        char lg[400];
        snprintf(lg, sizeof lg, "%s/chromium.log", f->dir);
        tp_log_tail(lg, 3000);
        fail_msg("chromium exit %d, no DOM", rc);
    }
    char v[256];
    assert_true(tag_attr(dom, "<body", "data-status", v, sizeof v));
    if (strcmp(v, "ready") != 0) {
        const char *e = strstr(dom, "id=\"errors\"");
        fail_msg("the page says '%s': %.600s", v, e ? e : "(no #errors)");
    }
    assert_non_null(strstr(dom, "<title>oaif report: r1 (ready)</title>"));
    /* Every chart drew: 11 canvases (evaluations, training, judge, actions, strength, features),
     * each with coloured pixels in its plot area and the points its records give. */
    static const struct {
        const char *id;
        int points;
    } charts[] = {
        {"winrate", 12},    {"accuracy", 6}, {"length", 6 + 12}, {"kl", 3 + 6},
        {"loss", 6},        {"margin", 12},  {"judge", 12},      {"disagreement", 6},
        {"actions", 4 * 6}, {"strength", 5}, {"features", 10},
    };
    assert_true(tag_attr(dom, "<body", "data-charts", v, sizeof v));
    assert_int_equal(atoi(v), sizeof charts / sizeof charts[0]);
    for (size_t i = 0; i < sizeof charts / sizeof charts[0]; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "id=\"chart-%s\"", charts[i].id);
        if (!tag_attr(dom, needle, "data-painted", v, sizeof v))
            fail_msg("chart %s is not on the page", charts[i].id);
        if (atoi(v) < 50)
            fail_msg("chart %s: %s coloured pixels in its plot area", charts[i].id, v);
        assert_true(tag_attr(dom, needle, "data-points", v, sizeof v));
        if (atoi(v) != charts[i].points)
            fail_msg("chart %s has %s points, expected %d", charts[i].id, v, charts[i].points);
    }
    /* The numbers shown: the newest evaluation (v3), v2's row from its later record, and the
     * strength table. */
    const char *latest = strstr(dom, "id=\"latest\"");
    assert_non_null(latest);
    cell_is(latest, "version", 3, 0);
    cell_is(latest, "step", 6, 0);
    cell_is(latest, "win_rate", 0.625, 4);
    cell_is(latest, "win_rate_lo", 0.5, 4);
    cell_is(latest, "win_rate_hi", 0.75, 4);
    cell_is(latest, "lc_win_rate", 0.581, 4);
    cell_is(latest, "accuracy", 0.375, 4);
    cell_is(latest, "baseline_accuracy", 0.1875, 4);
    cell_is(latest, "mean_length", 36.5, 1);
    cell_is(latest, "kl", 1.35, 4);
    cell_is(latest, "rm_accuracy", 0.8125, 4);
    const char *v2 = strstr(dom, "<tr data-version=\"2\">");
    assert_non_null(v2);
    cell_is(v2, "win_rate", 0.25, 4);
    cell_is(v2, "lc_win_rate", 0.239, 4);
    char rm2[64]; /* v2 has no reward-model accuracy: its cell shows none, not a 0 */
    cell(v2, "rm_accuracy", rm2, sizeof rm2);
    assert_null(strstr(rm2, "0.0000"));
    cell_is(strstr(dom, "<tr data-version=\"3\">"), "rm_accuracy", 0.8125, 4);
    const char *flip = strstr(dom, "<tr data-action=\"flip\">");
    assert_non_null(flip);
    cell_is(flip, "n", 3, 0);
    cell_is(flip, "mean_sigma", 0.2, 4);
    /* The answer with markup is text in its cell, not an element. */
    assert_non_null(strstr(dom, "policy &lt;/script&gt;&lt;script&gt;document.title="));
    const char *ids[sizeof charts / sizeof charts[0]];
    for (size_t i = 0; i < sizeof charts / sizeof charts[0]; i++)
        ids[i] = charts[i].id;
    screenshot_not_blank(f, chr, html, dom, ids, sizeof ids / sizeof ids[0]);
    free(dom);
}

/* `oaif status --run r1`: the run's view from the same records. */
static void test_status_shows_the_run(void **state)
{
    (void)state;
    char *out;
    int rc = oaif(&out, "timeout 20", "status --run r1 --json");
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    json_error_t je;
    json_t *v = json_loads(out, 0, &je);
    if (!v)
        fail_msg("not one JSON object (%s):\n%s", je.text, out);
    json_t *t = json_object_get(v, "train");
    assert_int_equal((int)num(t, "steps"), NSTEPS);
    assert_int_equal((int)num(t, "step"), NSTEPS);
    assert_int_equal((int)num(t, "policy_version"), (NSTEPS - 1) / 2);
    near(num(t, "loss"), step_loss(NSTEPS), "loss");
    /* steps 2..6 trained 5 x 4 pairs in the 5 s after step 1 */
    near(num(t, "pairs_per_s_recent"), 4.0, "recent pairs/s");
    json_t *e = json_object_get(v, "last_eval");
    assert_int_equal((int)num(e, "version"), 3);
    near(num(e, "win_rate"), 0.625, "win rate");
    near(num(e, "win_rate_lo"), 0.5, "win rate lo");
    near(num(e, "win_rate_hi"), 0.75, "win rate hi");
    assert_int_equal((int)num(e, "evaluations"), 4); /* v2 twice; not the other run's */
    json_t *sp = json_object_get(v, "spend");
    near(num(sp, "cost"), (0 + 1 + 2 + 3 + 4 + 5 + 6) / 8.0, "spend");
    assert_int_equal((int)num(sp, "labels"), 7);
    assert_int_equal((int)num(sp, "prompt_tokens"), 10 * 21 + 7);
    assert_int_equal((int)num(v, "pairs"), 7);
    json_decref(v);
    free(out);
    /* The table, once when not on a terminal */
    rc = oaif(&out, "timeout 20", "status --run r1");
    assert_int_equal(rc, 0);
    if (!strstr(out, "step 6   policy v2   loss 0.3931") ||
        !strstr(out, "last evaluation v3 (annotate-eval, 16 prompts): win rate 0.625 [0.500, "
                     "0.750], LC 0.581") ||
        !strstr(out, "spend 2.6250 over 7 judgements of 7 pairs"))
        fail_msg("the view:\n%s", out);
    free(out);
    /* On a terminal (script(1) gives it one) it redraws every --interval until SIGINT. */
    char cmd[1000];
    snprintf(cmd, sizeof cmd,
             "timeout -s INT 2 script -qfec '%s status --run r1 --interval 200ms' /dev/null 2>&1",
             tp_bin("services/oaif/oaif"));
    rc = run(&out, cmd);
    int draws = 0;
    for (const char *p = strstr(out, "\033[H\033[2J"); p; p = strstr(p + 1, "\033[H\033[2J"))
        draws++;
    if (draws < 3)
        fail_msg("%d redraws in 2 s at 200 ms (exit %d):\n%s", draws, rc, out);
    free(out);
}

static void test_bad_usage_is_named(void **state)
{
    struct rmfx *f = *state;
    char *out, args[600];
    assert_int_equal(report(&out, "--out /tmp/x.html"), 2);
    assert_non_null(strstr(out, "--run is required"));
    free(out);
    assert_int_equal(report(&out, "--run r1"), 2);
    assert_non_null(strstr(out, "--out is required"));
    free(out);
    snprintf(args, sizeof args, "--run nobody --out %s/n.html", f->dir);
    assert_int_equal(report(&out, args), 2);
    assert_non_null(strstr(out, "run 'nobody': no EvalResult"));
    free(out);
    snprintf(args, sizeof args, "--run r1 --out %s/n.html --features %s/endpoints", f->dir, f->dir);
    assert_int_equal(report(&out, args), 2);
    assert_non_null(strstr(out, "endpoints:1: not a CSV of oaif rm features"));
    free(out);
    snprintf(args, sizeof args, "--run r1 --out %s/no-such-dir/r.html", f->dir);
    assert_int_equal(report(&out, args), 1);
    assert_non_null(strstr(out, "cannot create it"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_page_embeds_the_records),
        cmocka_unit_test(test_chromium_draws_every_chart_and_shows_the_records),
        cmocka_unit_test(test_status_shows_the_run),
        cmocka_unit_test(test_bad_usage_is_named),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
