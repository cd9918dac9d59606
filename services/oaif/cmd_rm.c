/* cmd_rm.c - `oaif rm train [options]`: trains one member of a reward-model ensemble on a
 * preference set in the ledger (trainer_rm_train), resuming a killed one, and publishes the
 * finished member as a reward checkpoint (trainer_rm_publish); `oaif rm train --help` lists the
 * options. Several members train at once as separate processes, one `oaif rm train --member M`
 * each.
 *
 * The options are the trainer's reward-model table (trainer_rm_opts_spec, trainer_opts.h), where
 * each default is written, and the CLI's common connection options (cli.h), loaded together.
 * SIGTERM and SIGINT stop the member after its current step, with a checkpoint to resume from
 * (exit status 1: not finished).
 *
 * `oaif rm eval [options]`: an ensemble's (or one member's) accuracy on a preference set's
 * held-out (or all) pairs, as a table or one JSON object (--json); its options are
 * trainer_rm_eval_opts_spec, what it computes is described above eval_verb below. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "ckptfiles.h"
#include "cli.h"
#include "cmd.h"
#include "err.h"
#include "nn_threads.h"
#include "reward_scorer.h"
#include "rm.h"
#include "rmset.h"
#include "trainer_opts.h"

static const char verb[] = "oaif rm train";

/* What `oaif rm train` loads: the member's options and the ledger's address. */
struct rm_cli {
    struct trainer_rm_opts rm;
    struct cli_conn conn;
};

static const struct cfg_option conn_rows[] = {CLI_CONN_OPTIONS(struct rm_cli, conn)};
#define N_CONN (sizeof conn_rows / sizeof conn_rows[0])

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* The table: the reward-model rows moved into struct rm_cli, then the connection rows. */
static struct cfg_option *make_spec(struct cfg_spec *spec)
{
    size_t nr = trainer_rm_opts_spec.n_options;
    struct cfg_option *rows = calloc(nr + N_CONN, sizeof *rows);
    if (!rows)
        return NULL;
    for (size_t i = 0; i < nr; i++) {
        rows[i] = trainer_rm_opts_spec.options[i];
        rows[i].offset += offsetof(struct rm_cli, rm);
    }
    memcpy(rows + nr, conn_rows, sizeof conn_rows);
    *spec = (struct cfg_spec){
        .name = verb,
        .summary = trainer_rm_opts_spec.summary,
        .options = rows,
        .n_options = nr + N_CONN,
        .conf_size = sizeof(struct rm_cli),
    };
    return rows;
}

static void print_result(const struct trainer_rm_opts *o, const struct trainer_rm_data *d,
                         const struct trainer_rm_result *r)
{
    const struct trainer_rm_counts *c = &d->counts;
    printf("rm: %s '%s': %zu pairs (%zu held out); left out: %zu ties, %zu unlabeled, %zu "
           "malformed, %zu with a prompt too long; %zu flipped, %zu with a response cut\n",
           o->dataset ? "dataset" : "run", o->dataset ? o->dataset : o->run, d->n, c->heldout,
           c->ties, c->unlabeled, c->malformed, r->too_long, c->flipped, r->truncated);
    if (r->already_done)
        printf("rm: member %d of '%s' was already trained with these settings and data (v%u)\n",
               o->member, o->ensemble, r->version);
    else
        printf("rm: member %d of '%s', seed %llu: %ld steps%s in %.1f s\n", o->member, o->ensemble,
               (unsigned long long)r->seed, r->steps_done, r->resumed_at ? " (resumed)" : "",
               r->seconds);
    for (int k = 0; k < r->epochs_done; k++) {
        const struct trainer_rm_epoch *e = &r->epoch[k];
        if (e->heldout_pairs)
            printf("rm: epoch %d: train loss %.4f; held-out accuracy %.3f, loss %.4f (%zu "
                   "pairs)\n",
                   k + 1, e->train_loss, e->heldout_accuracy, e->heldout_loss, e->heldout_pairs);
        else
            printf("rm: epoch %d: train loss %.4f (no pair held out)\n", k + 1, e->train_loss);
    }
    printf("rm: checkpoint %s (sha256 %s)\n", r->dir, r->sha256);
    fflush(stdout);
}

/* Trains on `data` and publishes the member. The exit status. */
static int train(const struct rm_cli *o, const struct trainer_rm_data *data,
                 const struct trainer_rm_meta_set *meta, uint32_t known,
                 struct trainer_rm_result *res, char *err, size_t errlen, struct cli_ledger *l)
{
    int rc = trainer_rm_train_meta(&o->rm, data, meta, known, &stop_requested, res, err, errlen);
    if (rc) {
        cli_error(verb, "%s", err);
        return 1;
    }
    if (res->stopped) {
        cli_error(verb, "stopped at step %ld of %ld; run it again to resume from v%u",
                  res->resumed_at + res->steps_done, res->steps, res->version);
        return 1;
    }
    print_result(&o->rm, data, res);
    rc = trainer_rm_publish(l->client, &o->rm, res, l->timeout_ms);
    if (rc)
        return cli_ledger_failed(l, rc);
    printf("rm: published reward-%s-m%d-v%u\n", o->rm.ensemble, o->rm.member, res->version);
    return 0;
}

/* One process trains a member at a time: two would write the same versions of the same
 * directories. An exclusive flock on <checkpoint dir>/reward-<ensemble>-m<member>.lock, held
 * until the process exits (the kernel drops it when the process dies, so a killed member's
 * restart is not refused). Returns the descriptor, or -1 after saying why. */
static int lock_member(const struct trainer_rm_opts *o)
{
    char err[1024], path[4200];
    if (trainer_make_dirs(o->checkpoint_dir, err, sizeof err)) {
        cli_error(verb, "%s", err);
        return -1;
    }
    snprintf(path, sizeof path, "%s/reward-%s-m%d.lock", o->checkpoint_dir, o->ensemble, o->member);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        cli_error(verb, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            cli_error(verb,
                      "member %d of ensemble '%s' is being trained by another process (%s is "
                      "locked); wait for it, or stop it and run this again to resume",
                      o->member, o->ensemble, path);
        else
            cli_error(verb, "%s: flock: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads the data, trains, publishes. The exit status. */
static int run(const struct rm_cli *o)
{
    int lock = lock_member(&o->rm);
    if (lock < 0)
        return 1;
    struct cli_ledger l;
    int status = cli_ledger_open(&l, verb, &o->conn);
    if (status) {
        cli_ledger_close(&l);
        close(lock);
        return status;
    }
    char err[1024];
    struct trainer_rm_data data;
    struct trainer_rm_result *res = calloc(1, sizeof *res);
    uint32_t known = 0;
    if (!res) {
        cli_error(verb, "out of memory");
        status = 1;
    } else if (trainer_rm_data_load(l.client, &o->rm, l.timeout_ms, &data, err, sizeof err)) {
        cli_error(verb, "%s", err);
        status = 1;
    } else {
        int rc =
            trainer_rm_ledger_version(l.client, o->rm.ensemble, o->rm.member, l.timeout_ms, &known);
        if (rc) {
            status = cli_ledger_failed(&l, rc);
        } else {
            struct sigaction sa = {.sa_handler = on_stop_signal};
            sigemptyset(&sa.sa_mask);
            sigaction(SIGTERM, &sa, NULL);
            sigaction(SIGINT, &sa, NULL);
            /* MetaRM's meta set: asked again on a resume, answered from the ledger's replies */
            struct trainer_rm_meta_set meta = {0};
            if (o->rm.meta.on && trainer_rm_meta_collect(l.client, &o->rm.meta, &data, l.timeout_ms,
                                                         &meta, err, sizeof err)) {
                cli_error(verb, "%s", err);
                status = 1;
            } else {
                if (o->rm.meta.on)
                    printf("rm: meta set: %zu prompts x %d responses of policy v%u (sha256 %s)\n",
                           meta.nprompts, meta.k, meta.policy_version, meta.digest);
                status =
                    train(o, &data, o->rm.meta.on ? &meta : NULL, known, res, err, sizeof err, &l);
            }
            trainer_rm_meta_set_free(&meta);
        }
        trainer_rm_data_free(&data);
    }
    free(res);
    cli_ledger_close(&l);
    close(lock);
    return status;
}

/* ---- oaif rm eval ------------------------------------------------------------------------- */

/* `oaif rm eval`: the newest version of each member (the reward scorer's plan and load, sha256
 * checked) scores chosen and rejected of each selected pair in one forward per pair; accuracy is
 * the share of pairs with r(chosen) > r(rejected):
 *  - stored: against the pair's latest Label (the one `oaif rm train` reads);
 *  - noise-free: against that label with its winner flipped back where Label.noise_flipped is set
 *    (n/a when the set does not carry it: rmset.h);
 *  - judges agree: on the pairs labeled by two or more different judges (Label.judge; the latest
 *    label of each) whose winners all agree; n/a when no pair has a second judge.
 * Per member and for the ensemble mean (the members' mean reward per text), with the mean and std
 * of r(chosen) - r(rejected). */

static const char eval_verb[] = "oaif rm eval";

struct rm_eval_cli {
    struct trainer_rm_eval_opts ev;
    struct cli_conn conn;
};

static const struct cfg_option eval_conn_rows[] = {CLI_CONN_OPTIONS(struct rm_eval_cli, conn)};
#define N_EVAL_CONN (sizeof eval_conn_rows / sizeof eval_conn_rows[0])

/* One row of the table: a member or the mean. */
struct eval_row {
    char name[160];
    size_t n, correct, nf_n, nf_correct, ag_n, ag_correct;
    double sum, sumsq;
};

static void eval_add(struct eval_row *w, const struct rmset *s, size_t i, double d)
{
    const struct rmset_pair *p = &s->p[i];
    bool ok = d > 0;
    w->n++;
    w->correct += ok;
    w->sum += d;
    w->sumsq += d * d;
    if (s->noise_known) {
        w->nf_n++;
        w->nf_correct += rmset_chosen_truly_better(s, i) ? ok : d < 0;
    }
    bool agree = p->nj >= 2;
    for (int k = 1; agree && k < p->nj; k++)
        agree = p->winner[k] == p->winner[0];
    if (agree) {
        w->ag_n++;
        w->ag_correct += ok;
    }
}

static void eval_print(const struct eval_row *rows, size_t nrows, bool json)
{
    if (json)
        printf("{\"rows\":[");
    else
        printf("%-32s %6s %8s %10s %8s %6s %9s %9s\n", "model", "pairs", "stored", "noise-free",
               "agree", "agreeN", "mean_diff", "std_diff");
    for (size_t i = 0; i < nrows; i++) {
        const struct eval_row *w = &rows[i];
        double mean = w->n ? w->sum / (double)w->n : 0;
        double var = w->n ? w->sumsq / (double)w->n - mean * mean : 0;
        double sd = sqrt(var > 0 ? var : 0);
        double acc = w->n ? (double)w->correct / (double)w->n : 0;
        char nf[32], ag[32];
        if (w->nf_n)
            snprintf(nf, sizeof nf, "%.4f", (double)w->nf_correct / (double)w->nf_n);
        else
            snprintf(nf, sizeof nf, json ? "null" : "n/a");
        if (w->ag_n)
            snprintf(ag, sizeof ag, "%.4f", (double)w->ag_correct / (double)w->ag_n);
        else
            snprintf(ag, sizeof ag, json ? "null" : "n/a");
        if (json)
            printf("%s{\"model\":\"%s\",\"pairs\":%zu,\"accuracy\":%.4f,\"noise_free_accuracy\":"
                   "%s,\"agree_accuracy\":%s,\"agree_pairs\":%zu,\"mean_diff\":%.6f,"
                   "\"std_diff\":%.6f}",
                   i ? "," : "", w->name, w->n, acc, nf, ag, w->ag_n, mean, sd);
        else
            printf("%-32s %6zu %8.4f %10s %8s %6zu %9.4f %9.4f\n", w->name, w->n, acc, nf, ag,
                   w->ag_n, mean, sd);
    }
    if (json)
        printf("]}\n");
    fflush(stdout);
}

static int eval_score(const struct rm_eval_cli *o, struct rmset *s, char *err, size_t errlen)
{
    struct eval_row *rows = NULL;
    size_t nm = 0;
    int rc = ERR_OK;
    for (size_t i = 0; !rc && i < s->data.n; i++) {
        if (o->ev.split == TRAINER_RM_EVAL_HELDOUT && !s->data.pairs[i].heldout)
            continue;
        struct reward_scorer_result *res = NULL;
        rc = rmset_score(s, i, &res, err, errlen);
        if (rc)
            break;
        if (!rows) {
            nm = res->n_members;
            rows = calloc(nm + 1, sizeof *rows);
            if (!rows) {
                reward_scorer_result_free(&res);
                return ERR_NOMEM;
            }
            for (size_t m = 0; m < nm; m++)
                snprintf(rows[m].name, sizeof rows[m].name, "%s", res->members[m]);
            snprintf(rows[nm].name, sizeof rows[nm].name, "%s/mean", o->ev.ensemble);
        }
        double mc = 0, mr = 0;
        for (size_t m = 0; m < nm; m++) {
            double c = res->scores[m * 2], r = res->scores[m * 2 + 1];
            eval_add(&rows[m], s, i, c - r);
            mc += c;
            mr += r;
        }
        eval_add(&rows[nm], s, i, (mc - mr) / (double)nm);
        reward_scorer_result_free(&res);
    }
    if (!rc && !rows) {
        snprintf(err, errlen, "no pair selected (split %s)",
                 o->ev.split == TRAINER_RM_EVAL_HELDOUT ? "heldout" : "all");
        rc = ERR_NOTFOUND;
    }
    if (!rc)
        eval_print(rows, nm > 1 || o->ev.member < 0 ? nm + 1 : nm, o->ev.json);
    free(rows);
    return rc;
}

static int eval_run(const struct rm_eval_cli *o)
{
    struct cli_ledger l;
    int status = cli_ledger_open(&l, eval_verb, &o->conn);
    if (status) {
        cli_ledger_close(&l);
        return status;
    }
    char err[1024] = "";
    struct rmset s;
    const struct rmset_spec spec = {
        .dataset = o->ev.dataset,
        .run = o->ev.run,
        .holdout = o->ev.holdout,
        .ensemble = o->ev.ensemble,
        .member = o->ev.member,
        .checkpoint_dir = o->ev.checkpoint_dir,
        .max_len = o->ev.max_len,
    };
    int rc = rmset_open(&s, l.client, l.timeout_ms, &spec, err, sizeof err);
    if (!rc)
        rc = eval_score(o, &s, err, sizeof err);
    if (rc) {
        cli_error(eval_verb, "%s", *err ? err : err_str(rc));
        status = 1;
    }
    rmset_close(&s);
    cli_ledger_close(&l);
    return status;
}

static int cmd_rm_eval(int argc, char **argv)
{
    size_t nr = trainer_rm_eval_opts_spec.n_options;
    struct cfg_option *rows = calloc(nr + N_EVAL_CONN, sizeof *rows);
    if (!rows) {
        cli_error(eval_verb, "out of memory");
        return 1;
    }
    for (size_t i = 0; i < nr; i++) {
        rows[i] = trainer_rm_eval_opts_spec.options[i];
        rows[i].offset += offsetof(struct rm_eval_cli, ev);
    }
    memcpy(rows + nr, eval_conn_rows, sizeof eval_conn_rows);
    struct cfg_spec spec = {
        .name = eval_verb,
        .summary = trainer_rm_eval_opts_spec.summary,
        .options = rows,
        .n_options = nr + N_EVAL_CONN,
        .conf_size = sizeof(struct rm_eval_cli),
    };
    struct rm_eval_cli o = {0};
    int npos, status;
    int rc = cli_load(eval_verb, &spec, &o, argc, argv, 0, &npos);
    if (rc) {
        status = cli_exit_status(rc);
    } else {
        if (!o.ev.dataset == !o.ev.run) {
            cli_error(eval_verb, "exactly one of --dataset and --run");
            status = 2;
        } else {
            status = eval_run(&o);
        }
        cfg_release(&spec, &o);
    }
    free(rows);
    return status;
}

static void usage(FILE *f)
{
    fputs("usage: oaif rm train --dataset NAME|--run NAME [--ensemble E] [--member M] [options]\n"
          "       oaif rm eval --ensemble E [--member M] --dataset NAME|--run NAME "
          "[--split heldout|all] [--json]\n"
          "       oaif rm features --ensemble E [--member M] --dataset NAME|--run NAME "
          "[--split heldout|all] [--limit N] [--out FILE.csv]\n"
          "       (oaif rm train --help, oaif rm eval --help, oaif rm features --help: the "
          "options)\n",
          f);
}

int cmd_rm(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    if (!strcmp(argv[0], "eval"))
        return cmd_rm_eval(argc - 1, argv + 1);
    if (!strcmp(argv[0], "features"))
        return cmd_rm_features(argc - 1, argv + 1);
    if (strcmp(argv[0], "train") != 0) {
        fprintf(stderr, "oaif rm: unknown subcommand '%s'\n", argv[0]);
        usage(stderr);
        return 2;
    }
    struct cfg_spec spec;
    struct cfg_option *rows = make_spec(&spec);
    if (!rows) {
        cli_error(verb, "out of memory");
        return 1;
    }
    struct rm_cli o = {0};
    int npos, status;
    int rc = cli_load(verb, &spec, &o, argc - 1, argv + 1, 0, &npos);
    if (rc) {
        status = cli_exit_status(rc);
    } else {
        char err[1024];
        if (trainer_rm_validate(&o.rm, err, sizeof err)) {
            cli_error(verb, "%s", err);
            status = 2;
        } else {
            nn_threads_setup(verb, o.rm.threads); /* may execute the program again */
            status = run(&o);
        }
        cfg_release(&spec, &o);
    }
    free(rows);
    return status;
}
