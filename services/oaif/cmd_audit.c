/* cmd_audit.c - `oaif audit`: proves from the ledger's records that every trained pair was
 * sampled, labeled, and used in one training step only; lists the reasons pairs were set aside.
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
    hmap_t *pairs;   /* pair id -> 1 */
    hmap_t *labeled; /* pair id -> 1 */
    hmap_t *trained; /* pair id -> step (as pointer-sized integer) */
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
    }
    oaif__v1__train_step__free_unpacked(t, NULL);
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
    if (a->twice || unlabeled || unknown) {
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
    buf_init(&a.problems, 1 << 20);
    int status = !a.pairs || !a.labeled || !a.trained ? 1 : 0;
    if (!status)
        status = cli_ledger_open(&l, verb, &o.conn);
    if (!status)
        status = cli_ledger_scan(&l, OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, audit_pair, &a);
    if (!status)
        status = cli_ledger_scan(&l, OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, audit_label, &a);
    if (!status)
        status = cli_ledger_scan(&l, OAIF__V1__RECORD_KIND__RECORD_KIND_STEP, audit_step, &a);
    if (!status)
        status = audit_report(&a);
    buf_free(&a.problems);
    hmap_destroy(&a.pairs);
    hmap_destroy(&a.labeled);
    hmap_destroy(&a.trained);
    cli_ledger_close(&l);
    cfg_release(&spec, &o);
    return status;
}
