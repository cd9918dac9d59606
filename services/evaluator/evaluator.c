/* evaluator.c - see evaluator.h. */
#include "evaluator.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "evalstats.h"
#include "sha256.h"
#include "task.h"

/* The sampling settings as text: what the hashes cover. */
static void setting_text(const struct evaluator_config *c, char *out, size_t len)
{
    snprintf(out, len, "t=%.17g p=%.17g k=%d max=%d seed=%" PRIu64, c->temperature, c->top_p,
             c->top_k, c->max_new_tokens, c->sample_seed);
}

static void hex16(const uint8_t d[SHA256_DIGEST_LEN], char out[17])
{
    char hex[SHA256_HEX_LEN + 1];
    sha256_hex(d, hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
}

void evaluator_setting_key(const struct evaluator_config *c, char out[17])
{
    char t[256];
    setting_text(c, t, sizeof t);
    uint8_t d[SHA256_DIGEST_LEN];
    sha256(t, strlen(t), d);
    hex16(d, out);
}

static int fits(int n, size_t len)
{
    return n < 0 || (size_t)n >= len ? ERR_TOOBIG : ERR_OK;
}

int evaluator_sample_id(char *out, size_t len, const struct evaluator_config *c, const char *run,
                        bool baseline, uint32_t version, const char *ckpt_sha,
                        const Oaif__V1__Prompt *const *ps, size_t n)
{
    char t[256];
    setting_text(c, t, sizeof t);
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, t, strlen(t) + 1);
    for (size_t i = 0; i < n; i++)
        sha256_update(&h, ps[i]->id, strlen(ps[i]->id) + 1); /* the NUL separates ids */
    uint8_t d[SHA256_DIGEST_LEN];
    sha256_final(&h, d);
    char hx[17];
    hex16(d, hx);
    if (baseline)
        return fits(
            snprintf(out, len, "evl-base-v%u-%.12s-%s", version, ckpt_sha ? ckpt_sha : "", hx),
            len);
    return fits(snprintf(out, len, "evl-%s-v%u-%s", run, version, hx), len);
}

int evaluator_judge_id(char *out, size_t len, const struct evaluator_config *c, const char *run,
                       uint32_t version, const char *prompt_id)
{
    char key[17];
    evaluator_setting_key(c, key);
    return fits(
        snprintf(out, len, "evl-%s-v%u-%s-%s-%s", run, version, c->judge_service, key, prompt_id),
        len);
}

int evaluator_result_id(char *out, size_t len, const struct evaluator_config *c, const char *run,
                        uint32_t version)
{
    return fits(snprintf(out, len, "eval-%s-v%u-%s", run, version, c->judge_service), len);
}

int evaluator_rm_id(char *out, size_t len, const struct evaluator_config *c, const char *run,
                    uint32_t version, const char *pair_id)
{
    return fits(snprintf(out, len, "evl-%s-v%u-rm-%s-%s", run, version, c->rm_ensemble, pair_id),
                len);
}

/* Whether `text` answers `reference` (a checkable answer of the built-in task's kinds). *checked
 * is false when the reference is not one. */
static bool correct(const char *reference, const char *text, bool *checked)
{
    enum task_kind kind;
    struct task_check chk;
    *checked = reference && *reference && task_kind_of_answer(reference, &kind) == ERR_OK &&
               task_check_answer(kind, reference, text, strlen(text), &chk) == ERR_OK;
    return *checked && chk.correct;
}

int evaluator_summarize(const struct evaluator_item *items, size_t n, unsigned resamples,
                        uint64_t seed, struct evaluator_summary *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    double *y = calloc(n + 1, sizeof *y), *lp = calloc(n + 1, sizeof *lp);
    double *lb = calloc(n + 1, sizeof *lb), *acc = calloc(n + 1, sizeof *acc);
    int rc = y && lp && lb && acc ? ERR_OK : ERR_NOMEM;
    double *lpp = calloc(n + 1, sizeof *lpp), *lpr = calloc(n + 1, sizeof *lpr);
    rc = !rc && lpp && lpr ? ERR_OK : ERR_NOMEM;
    size_t with_lp = 0, base_correct = 0;
    double len_p = 0, len_b = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        const struct evaluator_item *it = &items[i];
        double a = (double)strlen(it->policy), b = (double)strlen(it->baseline);
        len_p += a;
        len_b += b;
        bool checked, base_checked;
        bool ok = correct(it->reference, it->policy, &checked);
        bool base_ok = correct(it->reference, it->baseline, &base_checked);
        if (it->has_logprobs) {
            lpp[with_lp] = it->lp_policy;
            lpr[with_lp++] = it->lp_ref;
        }
        if (checked) {
            acc[out->checked++] = ok;
            base_correct += base_checked && base_ok;
        }
        if (!it->judged)
            continue;
        size_t k = out->judged++;
        y[k] = it->winner == OAIF__V1__WINNER__WINNER_FIRST    ? 1
               : it->winner == OAIF__V1__WINNER__WINNER_SECOND ? 0
                                                               : 0.5;
        lp[k] = a;
        lb[k] = b;
    }
    if (!rc && out->judged == 0) {
        snprintf(why, whylen, "none of the %zu judgements succeeded", n);
        rc = ERR_INVAL;
    }
    struct evalstats_winrate w = {0};
    struct evalstats_lc lc = {0};
    if (!rc)
        rc = evalstats_win_rate(y, out->judged, resamples, seed, &w);
    if (!rc)
        rc = evalstats_lc_win_rate(y, lp, lb, out->judged, &lc);
    if (!rc && out->checked) {
        struct evalstats_mean m;
        rc = evalstats_mean_ci(acc, out->checked, 0, seed, &m);
        out->accuracy = m.mean;
        out->accuracy_se = m.se;
        out->baseline_accuracy = (double)base_correct / (double)out->checked;
    }
    if (!rc && n && with_lp == n) {
        struct evalstats_mean kl;
        int krc = evalstats_kl(lpp, lpr, n, 0, seed, &kl);
        if (krc == ERR_NOMEM)
            rc = krc;
        out->has_kl = krc == ERR_OK; /* a log-prob that is not one leaves KL out */
        out->kl = kl.mean;
        out->kl_se = kl.se;
    }
    if (!rc) {
        out->wins = w.wins;
        out->ties = w.ties;
        out->losses = w.losses;
        out->win_rate = w.rate.mean;
        out->win_rate_se = w.rate.se;
        out->win_rate_lo = w.rate.lo;
        out->win_rate_hi = w.rate.hi;
        out->lc_win_rate = lc.lc;
        out->mean_length = n ? len_p / (double)n : 0;
        out->baseline_mean_length = n ? len_b / (double)n : 0;
    } else if (rc == ERR_NOMEM) {
        snprintf(why, whylen, "out of memory");
    }
    free(y);
    free(lp);
    free(lb);
    free(acc);
    free(lpp);
    free(lpr);
    return rc;
}

static void metric(Oaif__V1__Metric *ms, Oaif__V1__Metric **mp, size_t *n, size_t max,
                   const char *name, double v)
{
    if (*n >= max)
        return;
    oaif__v1__metric__init(&ms[*n]);
    ms[*n].name = (char *)name;
    ms[*n].value = v;
    mp[*n] = &ms[*n];
    (*n)++;
}

void evaluator_result(Oaif__V1__EvalResult *out, Oaif__V1__Metric *ms, Oaif__V1__Metric **mp,
                      size_t nm_max, const struct evaluator_config *c, const char *run,
                      const char *id, const char *judge, uint32_t version,
                      const struct evaluator_summary *s, uint64_t created_ms)
{
    oaif__v1__eval_result__init(out);
    size_t nm = 0;
    metric(ms, mp, &nm, nm_max, "judge_failures", (double)(s->n - s->judged));
    metric(ms, mp, &nm, nm_max, "checked", (double)s->checked);
    metric(ms, mp, &nm, nm_max, "baseline_accuracy", s->baseline_accuracy);
    metric(ms, mp, &nm, nm_max, "has_kl", s->has_kl ? 1 : 0);
    metric(ms, mp, &nm, nm_max, "has_rm_accuracy", s->has_rm ? 1 : 0);
    if (s->has_rm)
        metric(ms, mp, &nm, nm_max, "rm_pairs", (double)s->rm_pairs);
    out->id = (char *)id;
    out->version = version;
    out->baseline_version = (uint32_t)c->baseline;
    out->judge = (char *)judge;
    out->win_rate = s->win_rate;
    out->lc_win_rate = s->lc_win_rate;
    out->wins = s->wins;
    out->ties = s->ties;
    out->losses = s->losses;
    out->accuracy = s->accuracy;
    out->mean_length = s->mean_length;
    out->metrics = mp;
    out->n_metrics = nm;
    out->created_ms = created_ms;
    out->run = (char *)run;
    out->win_rate_se = s->win_rate_se;
    out->win_rate_lo = s->win_rate_lo;
    out->win_rate_hi = s->win_rate_hi;
    out->prompts = (uint32_t)s->judged;
    out->accuracy_se = s->accuracy_se;
    out->seed = c->seed;
    out->baseline_mean_length = s->baseline_mean_length;
    if (s->has_kl) {
        out->kl = s->kl;
        out->kl_se = s->kl_se;
    }
    if (s->has_rm)
        out->rm_accuracy = s->rm_accuracy;
}
