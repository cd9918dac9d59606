/* cmd_strength.c - `oaif strength annotate`: the preference strength of every pair of a set,
 * measured offline by a reward-model ensemble (ALGORITHMS.md, "Preference strength"), and the
 * paper's analysis of it.
 *
 *   oaif strength annotate --ensemble E (--dataset NAME | --run NAME) [--split all|heldout|train]
 *       [--commit] [--flip-out FILE] [--flip-share Q] [--out FILE.json] [--groups 10] [--json]
 *
 * For each pair of the set (read as `oaif rm train` reads it: rmset.h) every member m of the
 * ensemble scores chosen and rejected; d_m = r_m(y+) - r_m(y-), mu = mean_m d_m and sigma their
 * population std. Then:
 *  - the table: the pairs sorted by mu in --groups groups of (nearly) equal count; per group the
 *    count, mean mu, mean sigma, the share with mu < 0 and, where the set carries the noise-free
 *    labels (the rules judge records which labels it flipped), the share of labels flipped by
 *    noise, and the share agreeing with a second judge where pairs have one;
 *  - where noise is known: the ROC AUC of -mu as a detector of the flipped labels (the
 *    Mann-Whitney statistic, ties as one half), and how the "flip mu < 0" rule (or the bottom
 *    --flip-share) fares: pairs it flips, how many of them noise had flipped (precision) and how
 *    many of the noise-flipped it finds (recall);
 *  - --flip-out FILE: the ids the rule flips, one a line, for `oaif rm train --flip-file`;
 *  - --commit: one Strength record a pair {pair_id, mean, std, members, ensemble, run, action
 *    FLIP or KEEP by the rule, reason}, ids "strength-<ensemble>-<versions digest>-<pair id>", so
 *    that `oaif rm train --margin-from-strength` / `--soft-target strength` read them (a newer
 *    ensemble's records come later in commit order and win);
 *  - --out FILE.json: the set in the Part II release's format (turn lists, "mean preference
 *    difference", "std preference difference", "chosen_score_list", "rejected_score_list"),
 *    which `oaif import pairs --format part2` reads back.
 *
 * The service that does this online, pair by pair inside a run, is the strength-estimator. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "cmd.h"
#include "err.h"
#include "rmset.h"
#include "sha256.h"

static const char verb[] = "oaif strength annotate";

enum split { SPLIT_ALL, SPLIT_HELDOUT, SPLIT_TRAIN };

static const struct cfg_choice splits[] = {
    {"all", SPLIT_ALL}, {"heldout", SPLIT_HELDOUT}, {"train", SPLIT_TRAIN}, {NULL, 0}};

struct strength_opts {
    struct cli_conn conn;
    char *dataset, *run, *ensemble, *checkpoint_dir, *flip_out, *out;
    double holdout, flip_share;
    int split, groups, max_len;
    bool commit, json;
};

#define S struct strength_opts
static const struct cfg_option options[] = {
    CLI_CONN_OPTIONS(S, conn),
    CFG_STRING_OPT(S, dataset, .key = "oaif.strength.dataset", .flag = "--dataset",
                   .help = "The preference set: the pairs imported under this name."),
    CFG_STRING_OPT(S, run, .key = "oaif.strength.run", .flag = "--run",
                   .help = "Or: the labeled pairs of this run."),
    CFG_DOUBLE_OPT(S, holdout, .key = "oaif.strength.holdout", .def = "0.1", .dmin = 0, .dmax = 0.9,
                   .flag = "--holdout",
                   .help = "The held-out share the members trained with (for --split)."),
    CFG_ENUM_OPT(S, split, .key = "oaif.strength.split", .def = "all", .choices = splits,
                 .flag = "--split", .help = "Which pairs: all, heldout or train."),
    CFG_STRING_OPT(S, ensemble, .key = "oaif.strength.ensemble", .def = CKPT_DEFAULT_ENSEMBLE,
                   .flag = "--ensemble", .help = "The ensemble that measures the strength."),
    CFG_STRING_OPT(S, checkpoint_dir, .key = "oaif.strength.checkpoints", .def = CKPT_DEFAULT_ROOT,
                   .flag = "--checkpoints",
                   .help = "Where the members' checkpoint directories are."),
    CFG_INT_OPT(S, max_len, .key = "oaif.strength.max_len", .def = "256", .min = 4, .max = 1 << 20,
                .flag = "--max-len", .help = "Tokens per text at most."),
    CFG_INT_OPT(S, groups, .key = "oaif.strength.groups", .def = "10", .min = 1, .max = 1000,
                .flag = "--groups", .help = "Groups of the table, by mu."),
    CFG_DOUBLE_OPT(S, flip_share, .key = "oaif.strength.flip_share", .def = "0", .dmin = 0,
                   .dmax = 1, .flag = "--flip-share",
                   .help = "The flip rule: the bottom share by mu (0: every pair with mu < 0)."),
    CFG_STRING_OPT(S, flip_out, .key = "oaif.strength.flip_out", .flag = "--flip-out",
                   .help = "Write the ids the rule flips here (oaif rm train --flip-file)."),
    CFG_BOOL_OPT(S, commit, .key = "oaif.strength.commit", .flag = "--commit",
                 .help = "Put a Strength record for every pair in the ledger."),
    CFG_STRING_OPT(S, out, .key = "oaif.strength.out", .flag = "--out",
                   .help = "Write the set with its strengths in the Part II format (JSON)."),
    CFG_BOOL_OPT(S, json, .key = "oaif.strength.json", .flag = "--json",
                 .help = "One JSON object instead of the tables."),
};
#undef S

static const struct cfg_spec spec = {
    .name = verb,
    .summary = "The preference strength (mu, sigma over an ensemble) of every pair of a set.",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct strength_opts),
};

/* One measured pair. */
struct measured {
    size_t i; /* index in the set */
    double mu, sigma;
    bool flip; /* by the rule */
};

static int by_mu(const void *a, const void *b)
{
    const struct measured *x = a, *y = b;
    return (x->mu > y->mu) - (x->mu < y->mu);
}

/* ROC AUC of score -mu for the positives (noise-flipped labels): P(mu_pos < mu_neg) with ties as
 * one half, from ranks over the pairs sorted by mu. -1 when a class is empty. */
static double flipped_auc(const struct measured *m, size_t n, const struct rmset *s)
{
    double npos = 0, nneg = 0, rank_sum = 0; /* sum of the positives' ranks, ascending mu */
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b < n && m[b].mu == m[a].mu)
            b++;
        double rank = (double)(a + b + 1) / 2.0; /* mean of ranks a+1 .. b */
        for (size_t k = a; k < b; k++) {
            if (!rmset_chosen_truly_better(s, m[k].i)) {
                npos++;
                rank_sum += rank;
            } else {
                nneg++;
            }
        }
        a = b;
    }
    if (!npos || !nneg)
        return -1;
    /* U of the positives counts the negatives below them; we want those above. */
    double u_pos = rank_sum - npos * (npos + 1) / 2.0;
    return 1.0 - u_pos / (npos * nneg);
}

/* The digest of the loaded members (names with versions), for record ids. */
static void members_digest(const struct reward_scorer_result *r, char out[17])
{
    struct sha256 c;
    sha256_init(&c);
    for (size_t m = 0; m < r->n_members; m++)
        sha256_update(&c, r->members[m], strlen(r->members[m]) + 1);
    uint8_t d[SHA256_DIGEST_LEN];
    sha256_final(&c, d);
    for (int k = 0; k < 8; k++)
        snprintf(out + 2 * k, 3, "%02x", d[k]);
}

static int write_flips(const char *path, const struct rmset *s, const struct measured *m, size_t n,
                       char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return ERR_IO;
    }
    fprintf(f, "# pairs flipped by the ensemble's strength (oaif strength annotate)\n");
    for (size_t k = 0; k < n; k++)
        if (m[k].flip)
            fprintf(f, "%s\n", s->data.pairs[m[k].i].id);
    if (fclose(f)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return ERR_IO;
    }
    return ERR_OK;
}

/* The set in the Part II release's format; scores [n][2][members]. */
static int write_part2(const char *path, const struct rmset *s, const struct measured *m, size_t n,
                       const double *scores, size_t nm, char *err, size_t errlen)
{
    json_t *arr = json_array();
    for (size_t k = 0; arr && k < n; k++) {
        const struct trainer_rm_pair *p = &s->data.pairs[m[k].i];
        json_t *cl = json_array(), *rl = json_array();
        for (size_t j = 0; j < nm; j++) {
            json_array_append_new(cl, json_real(scores[(m[k].i * 2) * nm + j]));
            json_array_append_new(rl, json_real(scores[(m[k].i * 2 + 1) * nm + j]));
        }
        json_t *row = json_pack("{s:s, s:[s,s], s:[s,s], s:f, s:f, s:o, s:o}", "id", p->id,
                                "chosen", p->prompt, p->chosen, "rejected", p->prompt, p->rejected,
                                "mean preference difference", m[k].mu, "std preference difference",
                                m[k].sigma, "chosen_score_list", cl, "rejected_score_list", rl);
        if (!row || json_array_append_new(arr, row)) {
            json_decref(arr);
            arr = NULL;
        }
    }
    if (!arr || json_dump_file(arr, path, JSON_INDENT(1))) {
        snprintf(err, errlen, "%s: %s", path, arr ? strerror(errno) : "out of memory");
        json_decref(arr);
        return arr ? ERR_IO : ERR_NOMEM;
    }
    json_decref(arr);
    return ERR_OK;
}

/* Puts one Strength record a pair, in chunks of 512, each chunk atomic. The exit status. */
static int commit_strengths(struct cli_ledger *l, const struct strength_opts *o,
                            const struct rmset *s, const struct measured *m, size_t n, size_t nm,
                            const char *digest)
{
    const size_t chunk = 512;
    int status = 0;
    for (size_t a = 0; a < n && !status; a += chunk) {
        size_t cnt = n - a < chunk ? n - a : chunk;
        struct cli_packed_list pk = {0};
        int rc = ERR_OK;
        for (size_t k = a; !rc && k < a + cnt; k++) {
            const char *pid = s->data.pairs[m[k].i].id;
            char id[512];
            snprintf(id, sizeof id, "strength-%s-%s-%s", o->ensemble, digest, pid);
            Oaif__V1__Strength st = OAIF__V1__STRENGTH__INIT;
            st.id = id;
            st.pair_id = (char *)pid;
            st.mean = m[k].mu;
            st.std = m[k].sigma;
            st.members = (uint32_t)nm;
            st.ensemble = o->ensemble;
            st.run = o->run ? o->run : "";
            st.action = m[k].flip ? OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP
                                  : OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_KEEP;
            st.reason =
                m[k].flip ? (o->flip_share > 0 ? "offline: bottom share by mu" : "offline: mu < 0")
                          : "offline";
            rc = cli_packed_add(&pk, id, &st.base);
        }
        Oaif__V1__Record *rv = calloc(cnt, sizeof *rv);
        Oaif__V1__Record **rp = calloc(cnt, sizeof *rp);
        if (rc || !rv || !rp) {
            cli_error(verb, "out of memory");
            status = 1;
        }
        for (size_t k = 0; !status && k < cnt; k++) {
            oaif__v1__record__init(&rv[k]);
            rv[k].kind = OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH;
            rv[k].id = pk.items[k].id;
            rv[k].data.data = pk.items[k].data;
            rv[k].data.len = pk.items[k].len;
            rp[k] = &rv[k];
        }
        if (!status) {
            char put_id[256];
            snprintf(put_id, sizeof put_id, "strength-%s-%s-%s-%zu", o->ensemble, digest,
                     o->dataset ? o->dataset : o->run, a / chunk);
            rc = bus_client_put(l->client, put_id, rp, cnt, false, l->timeout_ms);
            if (rc)
                status = cli_ledger_failed(l, rc);
        }
        free(rv);
        free(rp);
        cli_packed_free(&pk);
    }
    return status;
}

/* The analysis, as tables or one JSON object. */
static void report(const struct strength_opts *o, const struct rmset *s, const struct measured *m,
                   size_t n, size_t nm)
{
    size_t nneg = 0, nflip = 0, nnoise = 0, hit = 0, agree_n = 0;
    for (size_t k = 0; k < n; k++) {
        const struct rmset_pair *p = &s->p[m[k].i];
        bool noisy = s->noise_known && !rmset_chosen_truly_better(s, m[k].i);
        nneg += m[k].mu < 0;
        nflip += m[k].flip;
        nnoise += noisy;
        hit += noisy && m[k].flip;
        agree_n += p->nj >= 2;
    }
    double auc = s->noise_known ? flipped_auc(m, n, s) : -1;
    char aucs[16];
    snprintf(aucs, sizeof aucs, auc >= 0 ? "%.4f" : (o->json ? "null" : "n/a"), auc);
    if (o->json)
        printf("{\"pairs\":%zu,\"members\":%zu,\"mu_negative\":%zu,\"flipped_by_rule\":%zu,"
               "\"noise_known\":%s,\"noise_flipped\":%zu,\"rule_hits\":%zu,\"auc\":%s",
               n, nm, nneg, nflip, s->noise_known ? "true" : "false", nnoise, hit, aucs);
    else
        printf("%zu pairs, %zu members; mu < 0: %zu (%.1f%%)\n", n, nm, nneg,
               n ? 100.0 * (double)nneg / (double)n : 0.0);
    if (!o->json && s->noise_known)
        printf("labels flipped by noise: %zu (%.1f%%); ROC AUC of -mu for them: %s\n"
               "the rule flips %zu: %zu of them were flipped by noise (precision %.1f%%), %.1f%% "
               "of the flipped found (recall)\n",
               nnoise, n ? 100.0 * (double)nnoise / (double)n : 0.0, aucs, nflip, hit,
               nflip ? 100.0 * (double)hit / (double)nflip : 0.0,
               nnoise ? 100.0 * (double)hit / (double)nnoise : 0.0);
    if (o->json)
        printf(",\"groups\":[");
    else
        printf("%5s %6s %9s %9s %8s %9s %8s\n", "group", "pairs", "mean_mu", "mean_sig", "mu<0",
               "flipped", "agree");
    size_t g = (size_t)o->groups < n ? (size_t)o->groups : n;
    for (size_t k = 0; k < g; k++) {
        size_t a = k * n / g, b = (k + 1) * n / g;
        double smu = 0, ssig = 0;
        size_t neg = 0, noisy = 0, an = 0, aok = 0;
        for (size_t j = a; j < b; j++) {
            const struct rmset_pair *p = &s->p[m[j].i];
            smu += m[j].mu;
            ssig += m[j].sigma;
            neg += m[j].mu < 0;
            noisy += s->noise_known && !rmset_chosen_truly_better(s, m[j].i);
            if (p->nj >= 2) {
                an++;
                bool same = true;
                for (int q = 1; q < p->nj; q++)
                    same &= p->winner[q] == p->winner[0];
                aok += same;
            }
        }
        double c = (double)(b - a);
        char fl[16] = "n/a", ag[16] = "n/a";
        if (s->noise_known)
            snprintf(fl, sizeof fl, o->json ? "%.4f" : "%.1f%%",
                     (o->json ? 1.0 : 100.0) * (double)noisy / c);
        else if (o->json)
            snprintf(fl, sizeof fl, "null");
        if (an)
            snprintf(ag, sizeof ag, o->json ? "%.4f" : "%.1f%%",
                     (o->json ? 1.0 : 100.0) * (double)aok / (double)an);
        else if (o->json)
            snprintf(ag, sizeof ag, "null");
        if (o->json)
            printf("%s{\"group\":%zu,\"pairs\":%zu,\"mean_mu\":%.6f,\"mean_sigma\":%.6f,"
                   "\"mu_negative\":%.4f,\"noise_flipped\":%s,\"judges_agree\":%s}",
                   k ? "," : "", k + 1, b - a, smu / c, ssig / c, (double)neg / c, fl, ag);
        else
            printf("%5zu %6zu %9.4f %9.4f %7.1f%% %9s %8s\n", k + 1, b - a, smu / c, ssig / c,
                   100.0 * (double)neg / c, fl, ag);
    }
    if (o->json)
        printf("]}\n");
    fflush(stdout);
}

static int annotate(const struct strength_opts *o)
{
    struct cli_ledger l;
    int status = cli_ledger_open(&l, verb, &o->conn);
    if (status) {
        cli_ledger_close(&l);
        return status;
    }
    char err[1024] = "";
    struct rmset s;
    const struct rmset_spec rs = {
        .dataset = o->dataset,
        .run = o->run,
        .holdout = o->holdout,
        .ensemble = o->ensemble,
        .member = -1,
        .checkpoint_dir = o->checkpoint_dir,
        .max_len = o->max_len,
    };
    struct measured *m = NULL;
    double *scores = NULL; /* [set size][2][members] */
    size_t n = 0, nm = 0;
    char digest[17] = "";
    int rc = rmset_open(&s, l.client, l.timeout_ms, &rs, err, sizeof err);
    if (!rc) {
        m = calloc(s.data.n ? s.data.n : 1, sizeof *m);
        rc = m ? ERR_OK : ERR_NOMEM;
    }
    for (size_t i = 0; !rc && i < s.data.n; i++) {
        bool held = s.data.pairs[i].heldout;
        if ((o->split == SPLIT_HELDOUT && !held) || (o->split == SPLIT_TRAIN && held))
            continue;
        struct reward_scorer_result *res = NULL;
        rc = rmset_score(&s, i, &res, err, sizeof err);
        if (rc)
            break;
        if (!scores) {
            nm = res->n_members;
            members_digest(res, digest);
            scores = calloc(s.data.n * 2 * nm, sizeof *scores);
            if (!scores) {
                reward_scorer_result_free(&res);
                rc = ERR_NOMEM;
                break;
            }
        }
        double sum = 0, sq = 0;
        for (size_t j = 0; j < nm; j++) {
            double c = res->scores[j * 2], r = res->scores[j * 2 + 1];
            scores[(i * 2) * nm + j] = c;
            scores[(i * 2 + 1) * nm + j] = r;
            sum += c - r;
        }
        double mu = sum / (double)nm;
        for (size_t j = 0; j < nm; j++) {
            double d = res->scores[j * 2] - res->scores[j * 2 + 1] - mu;
            sq += d * d;
        }
        m[n++] = (struct measured){.i = i, .mu = mu, .sigma = sqrt(sq / (double)nm)};
        reward_scorer_result_free(&res);
    }
    if (!rc && !n) {
        snprintf(err, sizeof err, "no pair selected (split %s)", splits[o->split].name);
        rc = ERR_NOTFOUND;
    }
    if (!rc) {
        qsort(m, n, sizeof *m, by_mu);
        size_t bottom = (size_t)floor(o->flip_share * (double)n + 0.5);
        for (size_t k = 0; k < n; k++)
            m[k].flip = o->flip_share > 0 ? k < bottom : m[k].mu < 0;
        report(o, &s, m, n, nm);
        if (o->flip_out)
            rc = write_flips(o->flip_out, &s, m, n, err, sizeof err);
    }
    if (!rc && o->out)
        rc = write_part2(o->out, &s, m, n, scores, nm, err, sizeof err);
    if (rc) {
        cli_error(verb, "%s", *err ? err : err_str(rc));
        status = 1;
    } else if (o->commit) {
        status = commit_strengths(&l, o, &s, m, n, nm, digest);
        if (!status && !o->json)
            printf("committed %zu Strength records (ensemble %s, %s)\n", n, o->ensemble, digest);
    }
    free(m);
    free(scores);
    rmset_close(&s);
    cli_ledger_close(&l);
    return status;
}

int cmd_strength(int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "annotate") != 0) {
        if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
            puts("usage: oaif strength annotate --ensemble E (--dataset NAME | --run NAME) "
                 "[options]\n       (oaif strength annotate --help: the options)");
            return 0;
        }
        cli_error("oaif strength", "usage: oaif strength annotate (--dataset NAME | --run NAME) "
                                   "[options] (see oaif strength annotate --help)");
        return 2;
    }
    struct strength_opts o = {0};
    int npos, rc = cli_load(verb, &spec, &o, argc - 1, argv + 1, 0, &npos);
    if (rc)
        return cli_exit_status(rc);
    int status;
    if (!o.dataset == !o.run) {
        cli_error(verb, "exactly one of --dataset and --run");
        status = 2;
    } else {
        status = annotate(&o);
    }
    cfg_release(&spec, &o);
    return status;
}
