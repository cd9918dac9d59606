/* cmd_rm_features.c - `oaif rm features [options]`: the last-hidden features of the chosen and
 * rejected responses of a preference set, as one member of a reward-model ensemble computes them,
 * projected on their two principal components, as CSV; for the report's figure of vanilla
 * against contrastive reward models (how the two classes and the noisy pairs lie).
 *
 * The set and the member as `oaif rm eval` reads them (rmset.h: the pairs the member was trained
 * and held out on, the labels' noise flags; the member's newest version, sha256 checked). Each
 * selected pair's chosen and rejected texts go through the member in one forward (B = 2, no
 * dropout); the feature of a text is the final hidden state (after the last norm) of its last
 * token, the EOS the reward is read on, so it is exactly what the reward head sees
 * (reward_scorer_keep_features). The 2N x C features are centred and projected on their top two
 * principal components (nn_pca_fit: LAPACK's dsyevr on the covariance or Gram matrix, each
 * component's largest loading positive, so two runs write the same file).
 *
 * Output, one row per text, chosen then rejected, pairs by id:
 *   pair_id,side,label_correct,noise_flipped,reward,pc1,pc2
 * side chosen|rejected (as the stored label orients the pair); label_correct 1 when the stored
 * label agrees with the noise-free one, 0 when the noise flipped it; noise_flipped its opposite:
 * both empty when the set's labels say nothing of noise (rmset.h). Each component's share of the
 * variance, and what was read, on stderr.
 *
 * Options: those of `oaif rm eval` that say which set and which checkpoints
 * (trainer_rm_eval_opts_spec but --member and --json: one run-file section configures both),
 * then trainer_rm_features_opts_spec (--member, --limit, --out), then the connection. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "err.h"
#include "pca.h"
#include "rmset.h"
#include "trainer_opts.h"

static const char verb[] = "oaif rm features";

struct rm_features_cli {
    struct trainer_rm_eval_opts ev; /* the rows shared with oaif rm eval */
    struct trainer_rm_features_opts f;
    struct cli_conn conn;
};

static const struct cfg_option conn_rows[] = {CLI_CONN_OPTIONS(struct rm_features_cli, conn)};
#define N_CONN (sizeof conn_rows / sizeof conn_rows[0])

/* rm eval's rows that mean something else here: its --member (-1, every member) and --json. */
static bool eval_row_shared(const struct cfg_option *o)
{
    return !o->flag || (strcmp(o->flag, "--member") != 0 && strcmp(o->flag, "--json") != 0);
}

/* The table: rm eval's shared rows, ours, the connection's; each moved into the struct. */
static struct cfg_option *make_spec(struct cfg_spec *spec)
{
    const struct cfg_spec *ev = &trainer_rm_eval_opts_spec, *fs = &trainer_rm_features_opts_spec;
    struct cfg_option *rows = calloc(ev->n_options + fs->n_options + N_CONN, sizeof *rows);
    if (!rows)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < ev->n_options; i++)
        if (eval_row_shared(&ev->options[i])) {
            rows[n] = ev->options[i];
            rows[n++].offset += offsetof(struct rm_features_cli, ev);
        }
    for (size_t i = 0; i < fs->n_options; i++) {
        rows[n] = fs->options[i];
        rows[n++].offset += offsetof(struct rm_features_cli, f);
    }
    memcpy(rows + n, conn_rows, sizeof conn_rows);
    *spec = (struct cfg_spec){
        .name = verb,
        .summary = fs->summary,
        .options = rows,
        .n_options = n + N_CONN,
        .conf_size = sizeof(struct rm_features_cli),
    };
    return rows;
}

/* What the member made of the selected pairs. */
struct features {
    size_t *pair;  /* [n / 2] index in the set of each selected pair */
    float *x;      /* [n, dim] chosen, rejected of each pair in turn */
    double *r;     /* [n] rewards */
    size_t n, dim; /* texts (2 per pair), features per text */
    char member[300];
    unsigned truncated;
};

static void features_free(struct features *f)
{
    free(f->pair);
    free(f->x);
    free(f->r);
    memset(f, 0, sizeof *f);
}

/* Scores the selected pairs (the split's, the first `limit` by id) with the member. */
static int collect(struct rmset *set, const struct rm_features_cli *o, struct features *f,
                   char *err, size_t errlen)
{
    size_t np = 0;
    for (size_t i = 0; i < set->data.n; i++)
        np += o->ev.split == TRAINER_RM_EVAL_ALL || set->data.pairs[i].heldout;
    if (o->f.limit > 0 && np > (size_t)o->f.limit)
        np = (size_t)o->f.limit;
    if (np < 2) {
        snprintf(err, errlen,
                 "%zu pair%s selected (split %s, %zu pairs in the set): the projection needs at "
                 "least 2",
                 np, np == 1 ? "" : "s", o->ev.split == TRAINER_RM_EVAL_ALL ? "all" : "heldout",
                 set->data.n);
        return ERR_NOTFOUND;
    }
    f->pair = malloc(np * sizeof *f->pair);
    f->r = malloc(2 * np * sizeof *f->r);
    if (!f->pair || !f->r)
        return ERR_NOMEM;
    reward_scorer_keep_features(set->scorer, true);
    int rc = ERR_OK;
    for (size_t i = 0; !rc && i < set->data.n && f->n < 2 * np; i++) {
        if (o->ev.split == TRAINER_RM_EVAL_HELDOUT && !set->data.pairs[i].heldout)
            continue;
        struct reward_scorer_result *res = NULL;
        rc = rmset_score(set, i, &res, err, errlen);
        if (rc)
            break;
        if (!f->x) {
            f->dim = res->feature_dims[0];
            snprintf(f->member, sizeof f->member, "%s", res->members[0]);
            f->x = malloc(2 * np * f->dim * sizeof *f->x);
            if (!f->x)
                rc = ERR_NOMEM;
        }
        if (!rc) { /* one member: --member picked it */
            memcpy(f->x + f->n * f->dim, res->features[0], 2 * f->dim * sizeof *f->x);
            f->r[f->n] = res->scores[0];
            f->r[f->n + 1] = res->scores[1];
            f->pair[f->n / 2] = i;
            f->n += 2;
            f->truncated += res->truncated;
        }
        reward_scorer_result_free(&res);
    }
    if (rc == ERR_NOMEM)
        snprintf(err, errlen, "out of memory (%zu texts of %zu features)", 2 * np, f->dim);
    return rc;
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void put_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void write_csv(FILE *out, const struct rmset *set, const struct features *f,
                      const struct nn_pca *p)
{
    fputs("pair_id,side,label_correct,noise_flipped,reward,pc1,pc2\n", out);
    for (size_t t = 0; t < f->n; t++) {
        size_t i = f->pair[t / 2];
        put_field(out, set->data.pairs[i].id);
        fputs(t % 2 ? ",rejected," : ",chosen,", out);
        if (set->noise_known)
            fprintf(out, "%d,%d", rmset_chosen_truly_better(set, i) ? 1 : 0,
                    set->p[i].noise_flipped ? 1 : 0);
        else
            fputs(",", out);
        fprintf(out, ",%.6g,%.6g,%.6g\n", f->r[t], p->scores[t * 2], p->scores[t * 2 + 1]);
    }
}

/* Writes the CSV to o->f.out (through a temporary file renamed into place, so a failed run
 * leaves no half file) or to stdout. */
static int write_out(const struct rm_features_cli *o, const struct rmset *set,
                     const struct features *f, const struct nn_pca *p, char *err, size_t errlen)
{
    const char *path = o->f.out;
    if (!path || !*path || !strcmp(path, "-")) {
        write_csv(stdout, set, f, p);
        if (fflush(stdout) != 0) {
            snprintf(err, errlen, "writing standard output: %s", strerror(errno));
            return ERR_IO;
        }
        return ERR_OK;
    }
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        snprintf(err, errlen, "--out: the path is too long");
        return ERR_INVAL;
    }
    FILE *out = fopen(tmp, "w");
    if (!out) {
        snprintf(err, errlen, "--out %.900s: cannot create it: %s", path, strerror(errno));
        return ERR_IO;
    }
    write_csv(out, set, f, p);
    bool ok = !ferror(out);
    ok = (fclose(out) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "--out %s: %s", path, strerror(errno));
        unlink(tmp);
        return ERR_IO;
    }
    return ERR_OK;
}

static int run(const struct rm_features_cli *o)
{
    struct cli_ledger l;
    int status = cli_ledger_open(&l, verb, &o->conn);
    if (status) {
        cli_ledger_close(&l);
        return status;
    }
    char err[1024] = "";
    struct rmset set;
    struct features f = {0};
    struct nn_pca p = {0};
    const struct rmset_spec rs = {
        .dataset = o->ev.dataset,
        .run = o->ev.run,
        .holdout = o->ev.holdout,
        .ensemble = o->ev.ensemble,
        .member = o->f.member,
        .checkpoint_dir = o->ev.checkpoint_dir,
        .max_len = o->ev.max_len,
    };
    int rc = rmset_open(&set, l.client, l.timeout_ms, &rs, err, sizeof err);
    if (!rc)
        rc = collect(&set, o, &f, err, sizeof err);
    if (!rc)
        rc = nn_pca_fit(&p, f.x, f.n, f.dim, 2, err, sizeof err);
    if (!rc)
        rc = write_out(o, &set, &f, &p, err, sizeof err);
    if (!rc) {
        double tv = p.total_variance > 0 ? p.total_variance : 1;
        fprintf(stderr,
                "%s: %s: %zu texts of %zu pairs (split %s; %u cut to fit --max-len), %zu "
                "features each; pc1 explains %.1f%% of the variance (%.6g), pc2 %.1f%% (%.6g), "
                "of %.6g in all\n",
                verb, f.member, f.n, f.n / 2,
                o->ev.split == TRAINER_RM_EVAL_ALL ? "all" : "heldout", f.truncated, f.dim,
                100 * p.variance[0] / tv, p.variance[0], 100 * p.variance[1] / tv, p.variance[1],
                p.total_variance);
    } else {
        cli_error(verb, "%s", *err ? err : err_str(rc));
        status = 1;
    }
    nn_pca_free(&p);
    features_free(&f);
    rmset_close(&set);
    cli_ledger_close(&l);
    return status;
}

int cmd_rm_features(int argc, char **argv)
{
    struct cfg_spec spec;
    struct cfg_option *rows = make_spec(&spec);
    if (!rows) {
        cli_error(verb, "out of memory");
        return 1;
    }
    struct rm_features_cli o = {0};
    int npos, status;
    int rc = cli_load(verb, &spec, &o, argc, argv, 0, &npos);
    if (rc) {
        status = cli_exit_status(rc);
    } else {
        if (!o.ev.dataset == !o.ev.run) {
            cli_error(verb, "exactly one of --dataset and --run");
            status = 2;
        } else {
            status = run(&o);
        }
        cfg_release(&spec, &o);
    }
    free(rows);
    return status;
}
