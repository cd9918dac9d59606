/* cmd_rm.c - `oaif rm train [options]`: trains one member of a reward-model ensemble on a
 * preference set in the ledger (trainer_rm_train), resuming a killed one, and publishes the
 * finished member as a reward checkpoint (trainer_rm_publish); `oaif rm train --help` lists the
 * options. Several members train at once as separate processes, one `oaif rm train --member M`
 * each.
 *
 * The options are the trainer's reward-model table (trainer_rm_opts_spec, trainer_opts.h), where
 * each default is written, and the CLI's common connection options (cli.h), loaded together.
 * SIGTERM and SIGINT stop the member after its current step, with a checkpoint to resume from
 * (exit status 1: not finished). */
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "err.h"
#include "rm.h"
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
static int train(const struct rm_cli *o, const struct trainer_rm_data *data, uint32_t known,
                 struct trainer_rm_result *res, char *err, size_t errlen, struct cli_ledger *l)
{
    int rc = trainer_rm_train(&o->rm, data, known, &stop_requested, res, err, errlen);
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

/* Reads the data, trains, publishes. The exit status. */
static int run(const struct rm_cli *o)
{
    struct cli_ledger l;
    int status = cli_ledger_open(&l, verb, &o->conn);
    if (status) {
        cli_ledger_close(&l);
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
            status = train(o, &data, known, res, err, sizeof err, &l);
        }
        trainer_rm_data_free(&data);
    }
    free(res);
    cli_ledger_close(&l);
    return status;
}

static void usage(FILE *f)
{
    fputs("usage: oaif rm train --dataset NAME|--run NAME [--ensemble E] [--member M] [options]\n"
          "       (oaif rm train --help: the options)\n",
          f);
}

int cmd_rm(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
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
            status = run(&o);
        }
        cfg_release(&spec, &o);
    }
    free(rows);
    return status;
}
