/* test_sft - SFT of the built-in policy (services/trainer/sft.h) and `oaif sft`: a short run
 * learns the task (loss falls, eval accuracy clearly above an untrained model's), the same seed
 * gives the same weights bit for bit, a second run with the same settings is cached, the
 * checkpoint is published to a real ledger process with --clients (or the old --ledger), the
 * defaults are the option table's (--quick a preset over them), and bad input files and options
 * get errors naming the file, line, field or flag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "busclient.h"
#include "ckpt.h"
#include "err.h"
#include "sft.h"
#include "testproc.h"
#include "trainer_opts.h"

struct fx {
    char dir[256];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-sft-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Run `oaif sft ARGS` with stdout and stderr captured into out; returns the exit code. */
static int oaif_sft(char *out, size_t outlen, const char *args)
{
    char cmd[2600];
    snprintf(cmd, sizeof cmd, "%s sft --no-progress %s 2>&1", tp_bin("services/oaif/oaif"), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char sft_args[2048];
/* SFT(out, "printf format", ...): oaif_sft with formatted arguments. */
#define SFT(out, ...)                                                                              \
    (snprintf(sft_args, sizeof sft_args, __VA_ARGS__), oaif_sft(out, sizeof out, sft_args))

static void weights_sha(const char *root, char hex[65])
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/sft-v000000/model.safetensors", root);
    assert_int_equal(ckpt_file_sha256(path, hex, err, sizeof err), ERR_OK);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A short run through the trainer: the loss falls and the model answers the eval split far
 * better than the same model untrained. */
static void test_quick_sft_beats_untrained(void **state)
{
    (void)state;
    struct trainer_sft_opts o;
    assert_int_equal(trainer_sft_quick_defaults(&o), ERR_OK);
    o.no_progress = true;
    char err[512] = "";
    nn_model_t *m = NULL;
    struct trainer_sft_result r;
    int rc = trainer_sft_train(&o, &m, &r, err, sizeof err);
    if (rc)
        fail_msg("trainer_sft_train: %s", err);
    assert_non_null(m);
    assert_int_equal(r.steps, o.steps);
    assert_int_equal(r.pairs, (size_t)o.steps * (size_t)o.batch);
    assert_true(r.final_loss < 0.5 * r.first_loss);
    assert_true(r.evaluated);
    assert_int_equal(r.eval.n, o.eval_n);
    int fam_total = 0;
    for (int k = 0; k < TASK_FAMILY_COUNT; k++) {
        assert_int_equal(r.eval.fam_n[k], o.eval_n / TASK_FAMILY_COUNT);
        fam_total += r.eval.fam_correct[k];
    }
    assert_int_equal(fam_total, r.eval.correct);
    assert_true(r.eval.mean_length > 0.0);

    /* the same model untrained */
    struct nn_config c;
    trainer_builtin_config(&c);
    nn_model_t *u = NULL;
    tok_t *tk = NULL;
    assert_int_equal(nn_model_new(&u, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(u, o.seed, TRAINER_BUILTIN_INIT_STD);
    assert_int_equal(trainer_tokenizer(&tk, &c, NULL, err, sizeof err), ERR_OK);
    struct trainer_eval ue;
    assert_int_equal(
        trainer_eval_task(u, tk, o.task_seed, o.eval_n, o.eval_max_new, NULL, &ue, err, sizeof err),
        ERR_OK);
    print_message("quick SFT: loss %.3f -> %.3f, eval accuracy %.1f%% (untrained %.1f%%), "
                  "answered %d/%d (untrained %d), mean length %.1f\n",
                  r.first_loss, r.final_loss, 100 * r.eval.accuracy, 100 * ue.accuracy,
                  r.eval.found, r.eval.n, ue.found, r.eval.mean_length);
    /* A run of seconds learns the answer format and the answers' distribution (most counts are
     * 1), not yet the skills: an answer of the right kind nearly always, and right answers
     * where the untrained model has next to none. */
    assert_true(r.eval.found >= r.eval.n * 8 / 10);
    assert_true(r.eval.found >= ue.found + r.eval.n / 3);
    assert_true(r.eval.correct >= ue.correct + 3);
    tok_destroy(&tk);
    nn_model_destroy(&u);
    nn_model_destroy(&m);
    trainer_sft_release(&o);
}

/* The table's defaults are the built-in recipe, each written once: the demonstrations' shares are
 * the task's own defaults, the evaluation is oaif eval's, and --quick changes only what it lists
 * (each a real option) and leaves the rest. */
static void test_defaults_are_the_tables(void **state)
{
    (void)state;
    struct trainer_sft_opts d, q;
    struct trainer_eval_opts e;
    assert_int_equal(trainer_sft_defaults(&d), ERR_OK);
    assert_int_equal(trainer_sft_quick_defaults(&q), ERR_OK);
    assert_int_equal(trainer_eval_defaults(&e), ERR_OK);
    struct task_demo_config dc = TASK_DEMO_CONFIG_DEFAULT;
    assert_true(d.demo.wrong_share == dc.wrong_share);
    assert_true(d.demo.verbose_share == dc.verbose_share);
    assert_true(d.demo.habit_share == dc.habit_share);
    assert_int_equal(d.task_seed, TRAINER_TASK_SEED);
    assert_int_equal(d.eval_n, e.n);
    assert_int_equal(d.eval_max_new, e.max_new);
    assert_string_equal(d.root, "data/checkpoints");
    assert_null(d.data_path);
    assert_int_equal(d.loss_norm, TRAINER_SFT_NORM_DATA);
    assert_false(d.progress || d.no_progress || d.force);
    char err[256];
    assert_int_equal(trainer_sft_validate(&d, err, sizeof err), ERR_OK);
    assert_int_equal(trainer_sft_validate(&q, err, sizeof err), ERR_OK);
    /* every key of the preset is an option, and it changes that option */
    size_t n = 0;
    for (const struct trainer_opts_preset *p = trainer_sft_quick; p->key; p++, n++) {
        bool found = false;
        for (size_t i = 0; i < trainer_sft_opts_spec.n_options; i++)
            found = found || !strcmp(trainer_sft_opts_spec.options[i].key, p->key);
        if (!found)
            fail_msg("trainer_sft_quick: %s is no option", p->key);
    }
    assert_true(q.steps < d.steps && q.warmup < d.warmup && q.eval_n < d.eval_n &&
                q.eval_max_new < d.eval_max_new);
    assert_int_equal(n, 4);
    /* and nothing else */
    assert_int_equal(q.batch, d.batch);
    assert_true(q.lr == d.lr && q.seed == d.seed && q.max_len == d.max_len);
    assert_string_equal(q.root, d.root);
    trainer_sft_release(&d);
    trainer_sft_release(&q);
    trainer_eval_release(&e);
}

/* Same settings and seed: the same bytes; another seed: other weights. A second run with the
 * same settings is not trained again; other settings are. */
static void test_cli_deterministic_and_cached(void **state)
{
    struct fx *f = *state;
    char out[8192], a[65], b[65], c[65];
    const char *quick = "--quick --steps 12 --eval 0";
    assert_int_equal(SFT(out, "%s --out %s/a", quick, f->dir), 0);
    assert_non_null(strstr(out, "SFT of the built-in policy: 12 steps"));
    assert_int_equal(SFT(out, "%s --out %s/b", quick, f->dir), 0);
    char rb[300];
    snprintf(rb, sizeof rb, "%s/b", f->dir);
    weights_sha(rb, b);
    char ra[300];
    snprintf(ra, sizeof ra, "%s/a", f->dir);
    weights_sha(ra, a);
    assert_string_equal(a, b);
    assert_int_equal(SFT(out, "%s --seed 2 --out %s/c", quick, f->dir), 0);
    char rc_[300];
    snprintf(rc_, sizeof rc_, "%s/c", f->dir);
    weights_sha(rc_, c);
    assert_string_not_equal(a, c);

    /* cached: same settings, nothing written */
    char wpath[400];
    snprintf(wpath, sizeof wpath, "%s/sft-v000000/model.safetensors", ra);
    struct stat st0, st1;
    assert_int_equal(stat(wpath, &st0), 0);
    assert_int_equal(SFT(out, "%s --out %s", quick, ra), 0);
    assert_non_null(strstr(out, "SFT of the built-in policy (cached)"));
    assert_non_null(strstr(out, a));
    assert_int_equal(stat(wpath, &st1), 0);
    assert_int_equal(st0.st_ino, st1.st_ino);
    assert_int_equal(st0.st_mtim.tv_sec, st1.st_mtim.tv_sec);
    assert_int_equal(st0.st_mtim.tv_nsec, st1.st_mtim.tv_nsec);
    /* other settings, or --force: trained again */
    assert_int_equal(SFT(out, "%s --lr 0.002 --out %s", quick, ra), 0);
    assert_null(strstr(out, "cached"));
    assert_int_equal(SFT(out, "%s --lr 0.002 --out %s --force", quick, ra), 0);
    assert_null(strstr(out, "cached"));
    /* weights edited behind its back: not trusted */
    assert_int_equal(SFT(out, "%s --out %s", quick, rb), 0);
    assert_non_null(strstr(out, "cached"));
    snprintf(wpath, sizeof wpath, "%s/sft-v000000/model.safetensors", rb);
    FILE *w = fopen(wpath, "r+b");
    assert_non_null(w);
    fseek(w, -1, SEEK_END);
    fputc(0x55, w);
    fclose(w);
    assert_int_equal(SFT(out, "%s --out %s", quick, rb), 0);
    assert_null(strstr(out, "cached"));
    weights_sha(rb, b);
    assert_string_equal(a, b);
}

/* --clients (and its old name --ledger, with a warning): the Checkpoint record version 0, kind
 * sft, with the sha256 of the weights, the path and the metrics, in a real ledger process; no
 * endpoint given: nothing published. */
static void test_cli_publishes_checkpoint(void **state)
{
    struct fx *f = *state;
    char db[300], ep[300], log[300], cep[256];
    snprintf(db, sizeof db, "%s/db", f->dir);
    snprintf(ep, sizeof ep, "%s/endpoints", f->dir);
    snprintf(log, sizeof log, "%s/ledger.log", f->dir);
    char *argv[] = {(char *)tp_bin("services/ledger/ledger"),
                    "--db",
                    db,
                    "--clients",
                    "tcp://127.0.0.1:*",
                    "--workers",
                    "tcp://127.0.0.1:*",
                    "--events",
                    "",
                    "--endpoints-file",
                    ep,
                    NULL};
    pid_t ledger = tp_spawn(argv, log);
    assert_true(ledger > 0);
    assert_true(tp_read_kv(ep, "clients", cep, sizeof cep, 10000));

    char out[8192], root[300], sha[65];
    snprintf(root, sizeof root, "%s/pub", f->dir);
    int st = SFT(out, "--quick --steps 12 --eval 14 --out %s --clients %s", root, cep);
    if (st != 0)
        fail_msg("oaif sft: %s", out);
    assert_non_null(strstr(out, "published checkpoint sft-v0"));
    assert_null(strstr(out, "warning"));
    weights_sha(root, sha);
    /* a cached run publishes the same record again (idempotent); the old flag still works */
    assert_int_equal(SFT(out, "--quick --steps 12 --eval 14 --out %s --ledger %s", root, cep), 0);
    assert_non_null(strstr(out, "(cached)"));
    assert_non_null(strstr(out, "published checkpoint sft-v0"));
    assert_non_null(strstr(out, "oaif sft: warning: flag --ledger is an old name"));
    /* without an endpoint nothing is published (there may be no ledger yet) */
    assert_int_equal(SFT(out, "--quick --steps 12 --eval 14 --out %s", root), 0);
    assert_null(strstr(out, "published"));

    void *zctx = zmq_ctx_new();
    bus_client_t *cl = NULL;
    struct bus_client_opts co = {.endpoint = cep};
    assert_int_equal(bus_client_new(&cl, zctx, &co), ERR_OK);
    Oaif__V1__Checkpoint *c = NULL;
    assert_int_equal(ckpt_find_policy(cl, 0, 5000, &c), ERR_OK);
    assert_int_equal(c->version, 0);
    assert_int_equal(c->kind, OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT);
    assert_string_equal(c->id, "sft-v0");
    assert_string_equal(c->sha256, sha);
    char dir[400];
    snprintf(dir, sizeof dir, "%s/sft-v000000", root);
    assert_string_equal(c->path, dir);
    assert_int_equal(c->step, 12);
    bool acc = false, len = false, loss = false;
    for (size_t i = 0; i < c->n_metrics; i++) {
        const Oaif__V1__Metric *m = c->metrics[i];
        if (!strcmp(m->name, "eval_accuracy"))
            acc = m->value >= 0.0 && m->value <= 1.0;
        if (!strcmp(m->name, "mean_length"))
            len = m->value >= 0.0;
        if (!strcmp(m->name, "final_loss"))
            loss = m->value > 0.0;
    }
    assert_true(acc && len && loss);
    oaif__v1__checkpoint__free_unpacked(c, NULL);
    /* only one record: the second publish was the same put */
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(
        bus_client_scan(cl, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT, 0, 100, 5000, &env),
        ERR_OK);
    assert_int_equal(env->records->n_records, 1);
    oaif__v1__envelope__free_unpacked(env, NULL);
    bus_client_destroy(&cl);
    zmq_ctx_term(zctx);

    /* no ledger there: a clear failure, the checkpoint is still written (the old --timeout-ms
     * takes milliseconds) */
    st = SFT(out,
             "--quick --steps 12 --eval 14 --out %s --ledger tcp://127.0.0.1:1 "
             "--timeout-ms 300",
             root);
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "no answer from the ledger at tcp://127.0.0.1:1 within 300 ms"));
    st = SFT(out, "--quick --steps 12 --eval 14 --out %s --clients tcp://127.0.0.1:1 --timeout %s",
             root, "0.3s");
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "no answer from the ledger at tcp://127.0.0.1:1 within 300 ms"));
    tp_stop(ledger, SIGTERM);
}

/* A JSONL of pairs trains; bad files and options get errors naming what is wrong. */
static void test_cli_data_and_errors(void **state)
{
    struct fx *f = *state;
    char out[8192], path[300], root[300];
    snprintf(root, sizeof root, "%s/data", f->dir);
    snprintf(path, sizeof path, "%s/good.jsonl", f->dir);
    write_file(path, "{\"prompt\": \"What is 2 + 2?\", \"response\": \"4\"}\n"
                     "\n"
                     "{\"id\": \"x\", \"prompt\": \"Reverse the word cat.\", \"response\": "
                     "\"tac\", \"extra\": 1}\n");
    int st = SFT(out, "--data %s --steps 4 --eval 0 --out %s", path, root);
    if (st != 0)
        fail_msg("oaif sft: %s", out);
    assert_non_null(strstr(out, "SFT: 4 steps on 2 pairs"));
    assert_int_equal(SFT(out, "--data %s --steps 4 --eval 0 --out %s", path, root), 0);
    assert_non_null(strstr(out, "SFT (cached)"));
    /* the data is part of the settings: another file retrains */
    write_file(path, "{\"prompt\": \"What is 2 + 3?\", \"response\": \"5\"}\n");
    assert_int_equal(SFT(out, "--data %s --steps 4 --eval 0 --out %s", path, root), 0);
    assert_null(strstr(out, "cached"));

    snprintf(path, sizeof path, "%s/bad.jsonl", f->dir);
    write_file(path, "{\"prompt\": \"a\", \"response\": \"b\"}\n"
                     "{\"prompt\": \"a\"}\n");
    assert_int_equal(SFT(out, "--data %s --out %s", path, root), 1);
    assert_non_null(strstr(out, "bad.jsonl:2"));
    assert_non_null(strstr(out, "\"response\""));
    write_file(path, "{\"prompt\": \"a\", \"response\": \"b\"}\n"
                     "{\"prompt\": \"a\", \"response\": 7}\n");
    assert_int_equal(SFT(out, "--data %s --out %s", path, root), 1);
    assert_non_null(strstr(out, "bad.jsonl:2"));
    assert_non_null(strstr(out, "\"response\""));
    write_file(path, "\n\n{\"prompt\": \"a\", \"response\": \"b\"\n");
    assert_int_equal(SFT(out, "--data %s --out %s", path, root), 1);
    assert_non_null(strstr(out, "bad.jsonl:3"));
    write_file(path, "");
    assert_int_equal(SFT(out, "--data %s --out %s", path, root), 1);
    assert_non_null(strstr(out, "bad.jsonl"));
    assert_int_equal(SFT(out, "--data %s/missing.jsonl --out %s", f->dir, root), 1);
    assert_non_null(strstr(out, "missing.jsonl"));
    /* a prompt that leaves no room for its response, named by pair and id */
    write_file(path, "{\"prompt\": \"a\", \"response\": \"b\"}\n"
                     "{\"id\": \"long\", \"prompt\": \"a rather long prompt for eight tokens\", "
                     "\"response\": \"b\"}\n");
    assert_int_equal(SFT(out, "--data %s --max-len 32 --out %s", path, root), 1);
    assert_non_null(strstr(out, "pair 2 (id \"long\")"));
    assert_non_null(strstr(out, "leaves no room"));
    /* --init that is not a checkpoint */
    assert_int_equal(SFT(out, "--init %s/nowhere --out %s", f->dir, root), 1);
    assert_non_null(strstr(out, "nowhere"));
    /* bad options: usage errors */
    assert_int_equal(SFT(out, "--lr abc --out %s", root), 2);
    assert_non_null(strstr(out, "--lr: expected a number"));
    assert_int_equal(SFT(out, "--steps 0 --out %s", root), 2);
    assert_non_null(strstr(out, "--steps"));
    assert_int_equal(SFT(out, "--wrong-share 1.5 --out %s", root), 2);
    assert_non_null(strstr(out, "--wrong-share"));
    assert_int_equal(SFT(out, "--batch 16x --out %s", root), 2);
    assert_non_null(strstr(out, "oaif sft: flag --batch: expected an integer in [1, 4096], got "
                                "'16x'"));
    assert_int_equal(SFT(out, "--loss-norm tokens --out %s", root), 2);
    assert_non_null(strstr(out, "--loss-norm: expected one of data, batch"));
    assert_int_equal(SFT(out, "--frobnicate 1 --out %s", root), 2);
    assert_non_null(strstr(out, "flag --frobnicate: unknown"));
    assert_int_equal(SFT(out, "--out"), 2);
    assert_non_null(strstr(out, "flag --out: needs a value"));
    assert_int_equal(SFT(out, "stray --out %s", root), 2);
    assert_non_null(strstr(out, "unexpected argument 'stray'"));
    /* --help lists the options with their defaults, --quick's with --quick */
    assert_int_equal(SFT(out, "--help"), 0);
    assert_non_null(strstr(out, "--steps N  oaif.sft.steps"));
    assert_non_null(strstr(out, "default 8000"));
    assert_non_null(strstr(out, "--clients"));
    assert_int_equal(SFT(out, "--quick --help"), 0);
    assert_non_null(strstr(out, "default 150"));
    assert_null(strstr(out, "default 8000"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_quick_sft_beats_untrained, setup, teardown),
        cmocka_unit_test(test_defaults_are_the_tables),
        cmocka_unit_test_setup_teardown(test_cli_deterministic_and_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_publishes_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_data_and_errors, setup, teardown),
    };
    return cmocka_run_group_tests_name("sft", tests, NULL, NULL);
}
