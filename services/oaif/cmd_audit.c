/* cmd_audit.c - `oaif audit`: proves from the ledger's records that every trained pair was
 * sampled, labeled, and used in one training step only; lists the reasons pairs were set aside.
 * With preference strength (trainer.strength), lists the trained pairs by the action of their
 * Strength record, and checks the trainer's own count of what it applied (the steps'
 * strength_<action> metrics) against those records: no step applied an action that no Strength
 * record of its pairs backs, and every pair set aside as "strength drop" has a DROP Strength.
 * Exit status 1 with each offending pair named when the proof fails. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "cmd.h"
#include "hmap.h"
#include "strength_estimator.h"

struct audit_opts {
    struct cli_conn conn;
};

static const struct cfg_option options[] = {
    CLI_CONN_OPTIONS(struct audit_opts, conn),
};

static const struct cfg_spec spec = {
    .name = "oaif audit",
    .summary =
        "Proves from the ledger that no pair was used in two training steps, and that every\n"
        "trained pair was sampled and labeled.",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct audit_opts),
};

struct audit {
    hmap_t *pairs;    /* pair id -> 1 */
    hmap_t *labeled;  /* pair id -> 1 */
    hmap_t *trained;  /* pair id -> step (as pointer-sized integer) */
    hmap_t *strength; /* pair id -> its Strength's action (as pointer-sized integer) */
    hmap_t *dropped;  /* pair id -> 1: set aside as "strength drop" */
    size_t nstrengths;
    double applied[8];   /* by Oaif__V1__StrengthAction, and [7]: trained without an estimate,
                          * from the steps' metrics */
    bool strength_steps; /* a step carries strength metrics */
    size_t npairs, nlabels, ntrained, twice, steps;
    size_t reasons_n[16];
    char reasons[16][32];
    size_t nreasons;
    buf_t problems;
};

static void audit_pair(void *ctx, const Oaif__V1__Record *rec)
{
    struct audit *a = ctx;
    a->npairs++;
    hmap_put(a->pairs, rec->id, strlen(rec->id), (void *)1);
}

static void audit_label(void *ctx, const Oaif__V1__Record *rec)
{
    struct audit *a = ctx;
    Oaif__V1__Label *l = oaif__v1__label__unpack(NULL, rec->data.len, rec->data.data);
    if (!l)
        return;
    a->nlabels++;
    if (l->pair_id && *l->pair_id)
        hmap_put(a->labeled, l->pair_id, strlen(l->pair_id), (void *)1);
    oaif__v1__label__free_unpacked(l, NULL);
}

static void audit_strength(void *ctx, const Oaif__V1__Record *rec)
{
    struct audit *a = ctx;
    Oaif__V1__Strength *s = oaif__v1__strength__unpack(NULL, rec->data.len, rec->data.data);
    if (!s)
        return;
    a->nstrengths++;
    const char *id = s->pair_id && *s->pair_id ? s->pair_id : rec->id;
    if (s->action > 0 && s->action < 7)
        hmap_put(a->strength, id, strlen(id), (void *)(uintptr_t)s->action);
    oaif__v1__strength__free_unpacked(s, NULL);
}

/* The step metric `name` as an action the trainer applied (strength_<action>), or 7 for
 * strength_unestimated; -1 for any other metric. */
static int applied_index(const char *name)
{
    if (!strcmp(name, "strength_unestimated"))
        return 7;
    if (strncmp(name, "strength_", 9) != 0)
        return -1;
    for (int k = 1; k < 7; k++)
        if (!strcmp(name + 9, strength_action_name(k)))
            return k;
    return -1;
}

static void audit_step(void *ctx, const Oaif__V1__Record *rec)
{
    struct audit *a = ctx;
    Oaif__V1__TrainStep *t = oaif__v1__train_step__unpack(NULL, rec->data.len, rec->data.data);
    if (!t)
        return;
    a->steps++;
    for (size_t i = 0; i < t->n_pair_ids; i++) {
        const char *id = t->pair_ids[i];
        uintptr_t before = (uintptr_t)hmap_get(a->trained, id, strlen(id));
        if (before) {
            a->twice++;
            buf_printf(&a->problems,
                       "  pair %s trained in step %" PRIuPTR " and step %" PRIu64 "\n", id, before,
                       t->step);
        } else {
            a->ntrained++;
            hmap_put(a->trained, id, strlen(id), (void *)(uintptr_t)(t->step ? t->step : 1));
        }
    }
    for (size_t i = 0; i < t->n_skip_reasons; i++) {
        size_t k = 0;
        while (k < a->nreasons && strcmp(a->reasons[k], t->skip_reasons[i]) != 0)
            k++;
        if (k == a->nreasons && a->nreasons < 16)
            snprintf(a->reasons[a->nreasons++], 32, "%s", t->skip_reasons[i]);
        if (k < 16)
            a->reasons_n[k]++;
        if (!strcmp(t->skip_reasons[i], "strength drop") && i < t->n_skipped_pair_ids)
            hmap_put(a->dropped, t->skipped_pair_ids[i], strlen(t->skipped_pair_ids[i]), (void *)1);
    }
    for (size_t i = 0; i < t->n_metrics; i++) {
        int k = applied_index(t->metrics[i]->name);
        if (k >= 0) {
            a->applied[k] += t->metrics[i]->value;
            a->strength_steps = true;
        }
    }
    oaif__v1__train_step__free_unpacked(t, NULL);
}

/* The trained pairs by their Strength's action, the steps' count of what was applied beside it,
 * and the two checks (cmd_audit.c's header). Prints nothing when the run used no strength.
 * Returns the number of problems (appended to a->problems). */
static size_t audit_strength_report(struct audit *a)
{
    if (!a->strength_steps && !hmap_count(a->dropped))
        return 0;
    size_t by[7] = {0}, none = 0, bad = 0, pos = 0, kl;
    const void *k;
    while (hmap_next(a->trained, &pos, &k, &kl, NULL)) {
        uintptr_t act = (uintptr_t)hmap_get(a->strength, k, kl);
        if (act)
            by[act]++;
        else
            none++;
    }
    pos = 0;
    while (hmap_next(a->dropped, &pos, &k, &kl, NULL)) {
        uintptr_t act = (uintptr_t)hmap_get(a->strength, k, kl);
        if (act == OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_DROP) {
            by[act]++;
        } else {
            bad++;
            buf_printf(&a->problems, "  pair %.*s set aside as 'strength drop', its Strength %s\n",
                       (int)kl, (const char *)k, act ? strength_action_name((int)act) : "missing");
        }
    }
    printf("strengths       %zu\n", a->nstrengths);
    for (int i = 1; i < 7; i++) {
        if (!by[i] && !a->applied[i])
            continue;
        if (i == OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_DROP)
            printf("strength        %zu %s (set aside)\n", by[i], strength_action_name(i));
        else
            printf("strength        %zu %s (applied in steps: %.0f)\n", by[i],
                   strength_action_name(i), a->applied[i]);
        /* advisory strength may train a pair as labeled and see its Strength come later: a
         * record without the step's action is possible, a step's action without a record not */
        if (i != OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_DROP && a->applied[i] > (double)by[i]) {
            bad++;
            buf_printf(&a->problems,
                       "  the steps applied %s to %.0f pairs, the trained pairs' Strength records "
                       "say %s for %zu\n",
                       strength_action_name(i), a->applied[i], strength_action_name(i), by[i]);
        }
    }
    printf("trained, no strength %zu (unestimated in steps: %.0f)\n", none, a->applied[7]);
    return bad;
}

/* Checks every trained pair against the pairs and labels, prints the counts and the verdict.
 * Returns the exit status: 1 when a pair was trained twice, without a label or without a pair. */
static int audit_report(struct audit *a)
{
    size_t unlabeled = 0, unknown = 0, pos = 0, kl;
    const void *k;
    while (hmap_next(a->trained, &pos, &k, &kl, NULL)) {
        if (!hmap_get(a->pairs, k, kl)) {
            unknown++;
            buf_printf(&a->problems, "  pair %.*s trained but not in the ledger's pairs\n", (int)kl,
                       (const char *)k);
        } else if (!hmap_get(a->labeled, k, kl)) {
            unlabeled++;
            buf_printf(&a->problems, "  pair %.*s trained without a label\n", (int)kl,
                       (const char *)k);
        }
    }
    printf("pairs sampled   %zu\nlabels          %zu\nsteps           %zu\n"
           "pairs trained   %zu\n",
           a->npairs, a->nlabels, a->steps, a->ntrained);
    for (size_t i = 0; i < a->nreasons; i++)
        printf("set aside       %zu %s\n", a->reasons_n[i], a->reasons[i]);
    printf("trained twice   %zu\ntrained, no label %zu\ntrained, no pair  %zu\n", a->twice,
           unlabeled, unknown);
    size_t bad_strength = audit_strength_report(a);
    if (a->twice || unlabeled || unknown || bad_strength) {
        printf("AUDIT FAILED:\n%s", a->problems.data ? a->problems.data : "");
        return 1;
    }
    printf("audit: clean (every trained pair was sampled, labeled, and used in one step)\n");
    return 0;
}

int cmd_audit(int argc, char **argv)
{
    static const char verb[] = "oaif audit";
    struct audit_opts o = {0};
    int npos, rc = cli_load(verb, &spec, &o, argc, argv, 0, &npos);
    if (rc)
        return cli_exit_status(rc);
    struct cli_ledger l = {0};
    struct audit a = {0};
    a.pairs = hmap_new();
    a.labeled = hmap_new();
    a.trained = hmap_new();
    a.strength = hmap_new();
    a.dropped = hmap_new();
    buf_init(&a.problems, 1 << 20);
    int status = !a.pairs || !a.labeled || !a.trained || !a.strength || !a.dropped ? 1 : 0;
    if (!status)
        status = cli_ledger_open(&l, verb, &o.conn);
    if (!status)
        status = cli_ledger_scan(&l, OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, audit_pair, &a);
    if (!status)
        status = cli_ledger_scan(&l, OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, audit_label, &a);
    if (!status)
        status =
            cli_ledger_scan(&l, OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH, audit_strength, &a);
    if (!status)
        status = cli_ledger_scan(&l, OAIF__V1__RECORD_KIND__RECORD_KIND_STEP, audit_step, &a);
    if (!status)
        status = audit_report(&a);
    buf_free(&a.problems);
    hmap_destroy(&a.pairs);
    hmap_destroy(&a.labeled);
    hmap_destroy(&a.trained);
    hmap_destroy(&a.strength);
    hmap_destroy(&a.dropped);
    cli_ledger_close(&l);
    cfg_release(&spec, &o);
    return status;
}
