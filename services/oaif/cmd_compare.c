/* cmd_compare.c - `oaif compare RUN_A RUN_B [RUN_C ...]`: runs of settings that differ in one
 * thing, compared seed by seed from their EvalResult records in the ledger, so that a claim such
 * as "online beats offline" is a number with an interval.
 *
 * Each argument is a setting: a run name (EvalResult.run), or a pattern with one '*' that stands
 * for the seed part of the names ("online-s*"). A setting's runs are paired with the first
 * setting's by seed: EvalResult.seed where the records carry it, else the text the '*' matched
 * (a plain run name is one run, paired with the other plain one). Of each run one EvalResult
 * counts: the one of --version, or of the highest version evaluated, by --judge when the run has
 * several judges (the latest record when one was written twice). For every setting after the
 * first: per seed, both win rates with their intervals and accuracies, and B - A; over the seeds,
 * the mean difference in win rate, in accuracy and in mean length with a paired-t and a
 * paired-bootstrap 95% interval (evalstats.h); a "finding" only when both exclude zero. Seeds one
 * side lacks are named and left out. --json: one JSON object.
 *
 * Exit status 0 done, 1 the ledger failed, 2 bad usage or no pair to compare (the reason said). */
#include <fnmatch.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "evalstats.h"

struct compare_opts {
    struct cli_conn conn;
    int64_t version; /* -1: each run's highest */
    char *judge;
    int resamples;
    uint64_t seed;
    bool json;
};

#define O struct compare_opts
static const struct cfg_option options[] = {
    CLI_CONN_OPTIONS(O, conn),
    CFG_LONG_OPT(O, version, .key = "oaif.compare.version", .def = "-1", .min = -1,
                 .max = 4294967295LL, .flag = "--version",
                 .help = "The policy version whose evaluation counts (-1: each run's highest)."),
    CFG_STRING_OPT(O, judge, .key = "oaif.compare.judge", .flag = "--judge",
                   .help = "Only evaluations by this judge (EvalResult.judge); needed when a run "
                           "has several."),
    CFG_INT_OPT(O, resamples, .key = "oaif.compare.resamples", .def = "2000", .min = 0,
                .max = 1000000, .flag = "--resamples",
                .help = "Paired-bootstrap resamples of the seeds (0: the t interval alone)."),
    CFG_UINT64_OPT(O, seed, .key = "oaif.compare.seed", .def = "1", .flag = "--seed",
                   .help = "The bootstrap's seed: the same records and seed give the same "
                           "interval."),
    CFG_BOOL_OPT(O, json, .key = "oaif.compare.json", .flag = "--json",
                 .help = "The comparison as one JSON object."),
};
#undef O

static const struct cfg_spec spec = {
    .name = "oaif compare",
    .summary =
        "Settings compared seed by seed from their runs' evaluations: the per-seed and mean\n"
        "difference in win rate and accuracy with 95% intervals (paired t and paired\n"
        "bootstrap). Arguments: RUN_A RUN_B [...], each a run name or a pattern with one\n"
        "'*' for the seed part (\"online-s*\"); each setting against the first.",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct compare_opts),
};

/* Every EvalResult in the ledger, in commit order. */
struct evals {
    Oaif__V1__EvalResult **v;
    size_t n, cap;
    size_t bad; /* records that did not unpack */
};

static void collect(void *ctx, const Oaif__V1__Record *rec)
{
    struct evals *e = ctx;
    Oaif__V1__EvalResult *r = oaif__v1__eval_result__unpack(NULL, rec->data.len, rec->data.data);
    if (!r) {
        e->bad++;
        return;
    }
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 64;
        Oaif__V1__EvalResult **v = realloc(e->v, cap * sizeof(Oaif__V1__EvalResult *));
        if (!v) {
            oaif__v1__eval_result__free_unpacked(r, NULL);
            e->bad++;
            return;
        }
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n++] = r;
}

/* One run of a setting: the evaluation that counts, and the key it pairs by. */
struct member {
    const Oaif__V1__EvalResult *r;
    char key[64];
};

struct setting {
    const char *arg;
    struct member *m;
    size_t n;
};

/* The text the '*' of pattern `pat` matched in `run` (pat has one '*' and matches run). */
static void star_text(char *out, size_t len, const char *pat, const char *run)
{
    const char *star = strchr(pat, '*');
    size_t pre = (size_t)(star - pat), post = strlen(star + 1), rl = strlen(run);
    snprintf(out, len, "%.*s", (int)(rl - pre - post), run + pre);
}

static bool matches(const char *pat, const char *run)
{
    return strchr(pat, '*') ? fnmatch(pat, run, 0) == 0 : strcmp(pat, run) == 0;
}

/* Picks the setting's runs and each one's evaluation. Returns 0, or 2 after saying why. */
static int pick(const char *verb, const struct compare_opts *o, const struct evals *e,
                struct setting *s)
{
    const char *star = strchr(s->arg, '*');
    if (star && strchr(star + 1, '*')) {
        cli_error(verb, "'%s': a setting has at most one '*' (the seed part of the run names)",
                  s->arg);
        return 2;
    }
    s->m = calloc(e->n ? e->n : 1, sizeof *s->m);
    if (!s->m)
        return 2;
    for (size_t i = 0; i < e->n; i++) {
        const Oaif__V1__EvalResult *r = e->v[i];
        if (!r->run || !matches(s->arg, r->run) || (o->judge && strcmp(o->judge, r->judge) != 0) ||
            (o->version >= 0 && r->version != (uint64_t)o->version))
            continue;
        size_t k = 0;
        while (k < s->n && strcmp(s->m[k].r->run, r->run) != 0)
            k++;
        if (k == s->n) {
            s->m[s->n++].r = r;
            continue;
        }
        const Oaif__V1__EvalResult *had = s->m[k].r;
        if (r->version == had->version && strcmp(r->judge, had->judge) != 0) {
            cli_error(verb,
                      "run '%s' has version %u evaluated by judge '%s' and by '%s': say which "
                      "with --judge",
                      r->run, r->version, had->judge, r->judge);
            return 2;
        }
        if (r->version >= had->version)
            s->m[k].r = r; /* a newer version, or the same written again: the latest counts */
    }
    if (s->n == 0) {
        cli_error(verb, "'%s': no evaluation of a run %s%s%s%s in the ledger", s->arg,
                  star ? "matching it" : "of that name", o->judge ? " by judge " : "",
                  o->judge ? o->judge : "", o->version >= 0 ? " at --version" : "");
        return 2;
    }
    for (size_t k = 0; k < s->n; k++) {
        struct member *m = &s->m[k];
        if (m->r->seed)
            snprintf(m->key, sizeof m->key, "%" PRIu64, m->r->seed);
        else if (star)
            star_text(m->key, sizeof m->key, s->arg, m->r->run);
        else
            m->key[0] = '\0';
        for (size_t j = 0; j < k; j++)
            if (!strcmp(s->m[j].key, m->key)) {
                cli_error(verb, "'%s': runs '%s' and '%s' both have seed '%s'", s->arg,
                          s->m[j].r->run, m->r->run, m->key);
                return 2;
            }
    }
    return 0;
}

static json_t *side_json(const Oaif__V1__EvalResult *r)
{
    return json_pack("{s:s, s:I, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:I}", "run", r->run, "version",
                     (json_int_t)r->version, "judge", r->judge, "win_rate", r->win_rate,
                     "win_rate_lo", r->win_rate_lo, "win_rate_hi", r->win_rate_hi, "lc_win_rate",
                     r->lc_win_rate, "accuracy", r->accuracy, "mean_length", r->mean_length,
                     "prompts", (json_int_t)r->prompts);
}

static json_t *paired_json(const struct evalstats_paired *p)
{
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:b}", "mean", p->mean,
                     "sd", p->sd, "se", p->se, "t",
                     isfinite(p->t) ? p->t : (p->t > 0 ? 1e308 : -1e308), "df", p->df, "p", p->p,
                     "t_lo", p->t_lo, "t_hi", p->t_hi, "boot_lo", p->boot_lo, "boot_hi", p->boot_hi,
                     "finding", p->finding);
}

static void print_paired(const char *what, const struct evalstats_paired *p)
{
    printf("%-9s B - A over %zu seed%s: mean %+.4f", what, p->n, p->n == 1 ? "" : "s", p->mean);
    if (p->n < 2) {
        printf(" (one seed: no interval)\n");
        return;
    }
    printf(", 95%% t [%+.4f, %+.4f] (t %.2f, df %.0f, p %.3g), paired bootstrap [%+.4f, %+.4f]: "
           "%s\n",
           p->t_lo, p->t_hi, p->t, p->df, p->p, p->boot_lo, p->boot_hi,
           p->finding ? "a finding (both intervals exclude 0)" : "not a finding (0 is inside)");
}

/* Setting b against setting a: pairs, table or JSON, statistics. Returns 0, 1 (out of memory) or
 * 2 (no seed in common). */
static int compare_two(const char *verb, const struct compare_opts *o, const struct setting *a,
                       const struct setting *b, json_t *arr)
{
    size_t cap = a->n < b->n ? a->n : b->n, np = 0;
    double *wa = calloc(cap + 1, sizeof *wa), *wb = calloc(cap + 1, sizeof *wb);
    double *aa = calloc(cap + 1, sizeof *aa), *ab = calloc(cap + 1, sizeof *ab);
    double *la = calloc(cap + 1, sizeof *la), *lb = calloc(cap + 1, sizeof *lb);
    const struct member **pa = calloc(cap + 1, sizeof(struct member *));
    const struct member **pb = calloc(cap + 1, sizeof(struct member *));
    json_t *unpaired = json_array();
    int status = wa && wb && aa && ab && la && lb && pa && pb && unpaired ? 0 : 1;
    for (size_t i = 0; !status && i < a->n; i++) {
        size_t j = 0;
        while (j < b->n && strcmp(a->m[i].key, b->m[j].key) != 0)
            j++;
        if (j == b->n) {
            json_array_append_new(unpaired, json_string(a->m[i].r->run));
            continue;
        }
        pa[np] = &a->m[i];
        pb[np] = &b->m[j];
        wa[np] = a->m[i].r->win_rate;
        wb[np] = b->m[j].r->win_rate;
        aa[np] = a->m[i].r->accuracy;
        ab[np] = b->m[j].r->accuracy;
        la[np] = a->m[i].r->mean_length;
        lb[np] = b->m[j].r->mean_length;
        np++;
    }
    for (size_t j = 0; !status && j < b->n; j++) {
        size_t i = 0;
        while (i < np && pb[i] != &b->m[j])
            i++;
        if (i == np)
            json_array_append_new(unpaired, json_string(b->m[j].r->run));
    }
    if (!status && np == 0) {
        cli_error(verb, "'%s' and '%s' share no seed: nothing to pair", a->arg, b->arg);
        status = 2;
    }
    struct evalstats_paired pw, pacc, plen;
    if (!status && (evalstats_paired(wa, wb, np, (unsigned)o->resamples, o->seed, &pw) ||
                    evalstats_paired(aa, ab, np, (unsigned)o->resamples, o->seed + 1, &pacc) ||
                    evalstats_paired(la, lb, np, (unsigned)o->resamples, o->seed + 2, &plen))) {
        cli_error(verb, "'%s' against '%s': a win rate, accuracy or length is not a number", b->arg,
                  a->arg);
        status = 2;
    }
    if (!status && o->json) {
        json_t *rows = json_array();
        for (size_t i = 0; i < np; i++)
            json_array_append_new(rows,
                                  json_pack("{s:s, s:o, s:o, s:f, s:f, s:f}", "seed", pa[i]->key,
                                            "a", side_json(pa[i]->r), "b", side_json(pb[i]->r),
                                            "d_win_rate", wb[i] - wa[i], "d_accuracy",
                                            ab[i] - aa[i], "d_mean_length", lb[i] - la[i]));
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:o, s:O, s:o, s:o, s:o}", "a", a->arg, "b", b->arg, "seeds",
                           rows, "unpaired", unpaired, "win_rate", paired_json(&pw), "accuracy",
                           paired_json(&pacc), "mean_length", paired_json(&plen)));
    } else if (!status) {
        printf("B = %s against A = %s: %zu seed%s paired\n", b->arg, a->arg, np,
               np == 1 ? "" : "s");
        printf("%-8s %-16s %5s %-24s %7s   %-16s %5s %-24s %7s   %8s %8s\n", "seed", "A run", "v",
               "A win rate [95%]", "A acc", "B run", "v", "B win rate [95%]", "B acc", "d win",
               "d acc");
        for (size_t i = 0; i < np; i++) {
            const Oaif__V1__EvalResult *x = pa[i]->r, *y = pb[i]->r;
            printf("%-8s %-16s %5u %.3f [%.3f, %.3f]   %6.1f%%   %-16s %5u %.3f [%.3f, %.3f]   "
                   "%6.1f%%   %+8.4f %+8.4f\n",
                   pa[i]->key[0] ? pa[i]->key : "-", x->run, x->version, x->win_rate,
                   x->win_rate_lo, x->win_rate_hi, 100 * x->accuracy, y->run, y->version,
                   y->win_rate, y->win_rate_lo, y->win_rate_hi, 100 * y->accuracy, wb[i] - wa[i],
                   ab[i] - aa[i]);
        }
        print_paired("win rate", &pw);
        print_paired("accuracy", &pacc);
        print_paired("length", &plen);
        for (size_t i = 0; i < json_array_size(unpaired); i++)
            printf("left out (its seed has no partner): %s\n",
                   json_string_value(json_array_get(unpaired, i)));
        printf("\n");
    }
    json_decref(unpaired);
    free(wa);
    free(wb);
    free(aa);
    free(ab);
    free(la);
    free(lb);
    free(pa);
    free(pb);
    return status;
}

int cmd_compare(int argc, char **argv)
{
    static const char verb[] = "oaif compare";
    struct compare_opts o = {0};
    int npos, rc = cli_load(verb, &spec, &o, argc, argv, -1, &npos);
    if (rc)
        return cli_exit_status(rc);
    int status = 0;
    if (npos < 2) {
        cli_error(verb, "two settings at least: oaif compare RUN_A RUN_B [...] (see --help)");
        status = 2;
    }
    struct cli_ledger l = {0};
    struct evals e = {0};
    struct setting *s = calloc((size_t)(npos > 0 ? npos : 1), sizeof *s);
    if (!status && !s)
        status = 1;
    if (!status)
        status = cli_ledger_open(&l, verb, &o.conn);
    if (!status)
        status = cli_ledger_scan(&l, OAIF__V1__RECORD_KIND__RECORD_KIND_EVAL, collect, &e);
    if (!status && e.bad)
        cli_error(verb, "warning: %zu EvalResult records could not be read and are left out",
                  e.bad);
    for (int i = 0; !status && i < npos; i++) {
        s[i].arg = argv[i];
        status = pick(verb, &o, &e, &s[i]);
    }
    json_t *arr = o.json ? json_array() : NULL;
    for (int i = 1; !status && i < npos; i++)
        status = compare_two(verb, &o, &s[0], &s[i], arr);
    if (!status && arr) {
        json_t *top = json_pack("{s:s, s:o}", "a", s[0].arg, "comparisons", arr);
        arr = NULL;
        char *line = top ? json_dumps(top, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (line)
            printf("%s\n", line);
        else
            status = 1;
        free(line);
        json_decref(top);
    }
    json_decref(arr);
    for (int i = 0; s && i < npos; i++)
        free(s[i].m);
    free(s);
    for (size_t i = 0; i < e.n; i++)
        oaif__v1__eval_result__free_unpacked(e.v[i], NULL);
    free(e.v);
    cli_ledger_close(&l);
    cfg_release(&spec, &o);
    return status;
}
