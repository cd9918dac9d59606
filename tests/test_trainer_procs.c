/* test_trainer_procs - the online loop with real processes: a ledger, a sampler, the trainer,
 * and (in a thread of this test) an annotate worker that labels by a fixed rule and never ties.
 * The loop runs to the end with `oaif audit` clean; the trainer, the sampler and the ledger are
 * each SIGKILLed in the middle of a run and started again, and the run still ends with every
 * pair used in at most one step; stale pairs are set aside; a checkpoint that cannot be written
 * stops the trainer and publishes nothing; offline from another model (trainer.offline_from)
 * publishes that model as version 0, which the sampler serves, and is refused without --offline
 * and on a deployment whose version 0 is another model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "busclient.h"
#include "busworker.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "model.h"
#include "testproc.h"

/* A test still running after this long is stuck: the watchdog ends it with the services' log
 * (the longest test runs about 30 s on 2 busy cores, more under the sanitizers). */
#ifndef TEST_WATCHDOG_S
#define TEST_WATCHDOG_S 300
#endif

struct fx {
    char dir[256], log[300], ep[300], ckpt[300], sft[320];
    char cep[256], wep[256], eep[256];
    pid_t ledger, sampler, trainer;
    void *zctx;
    pthread_t judge;
    atomic_int stop;
    atomic_int judged;
};

/* The judge: prefers the response whose text sorts first (never a tie: equal texts go to the
 * first). Deterministic, so a resumed run's labels are the same as the first time. */
static void *judge_main(void *arg)
{
    struct fx *f = arg;
    struct bus_worker_opts o = {.endpoint = f->wep, .service = "annotate", .credit = 8,
                                .heartbeat_ms = 200};
    bus_worker_t *w = NULL;
    /* The ledger may be restarting: keep trying. */
    while (!atomic_load(&f->stop) && bus_worker_new(&w, f->zctx, &o))
        usleep(100000);
    while (w && !atomic_load(&f->stop)) {
        struct bus_req *r = NULL;
        if (bus_worker_recv(w, 100, &r))
            continue;
        Oaif__V1__AnnotateRequest *ar = oaif__v1__annotate_request__unpack(NULL, r->len, r->payload);
        if (!ar || !ar->pair || ar->pair->n_responses != 2) {
            bus_worker_fail(w, r->id, "not an AnnotateRequest with two responses", true);
        } else {
            Oaif__V1__Label l = OAIF__V1__LABEL__INIT;
            l.id = r->id;
            l.pair_id = ar->pair->id;
            l.judge = "test-judge";
            l.winner = strcmp(ar->pair->responses[0]->text, ar->pair->responses[1]->text) <= 0
                           ? OAIF__V1__WINNER__WINNER_FIRST
                           : OAIF__V1__WINNER__WINNER_SECOND;
            l.prob_first = l.winner == OAIF__V1__WINNER__WINNER_FIRST ? 1.0 : 0.0;
            Oaif__V1__AnnotateReply rep = OAIF__V1__ANNOTATE_REPLY__INIT;
            rep.label = &l;
            uint8_t buf[4096], lbuf[4096];
            size_t n = oaif__v1__annotate_reply__pack(&rep, buf);
            size_t ln = oaif__v1__label__pack(&l, lbuf);
            Oaif__V1__Record rec = OAIF__V1__RECORD__INIT;
            rec.kind = OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL;
            rec.id = r->id;
            rec.data.data = lbuf;
            rec.data.len = ln;
            Oaif__V1__Record *recs[1] = {&rec};
            bus_worker_reply(w, r->id, buf, n, recs, 1);
            atomic_fetch_add(&f->judged, 1);
        }
        if (ar)
            oaif__v1__annotate_request__free_unpacked(ar, NULL);
        bus_req_free(&r);
    }
    bus_worker_destroy(&w);
    return NULL;
}

static void start_ledger(struct fx *f, const char *c, const char *w, const char *e)
{
    char db[320];
    snprintf(db, sizeof db, "%s/db", f->dir);
    unlink(f->ep);
    char *argv[] = {(char *)tp_bin("services/ledger/ledger"), "--db", db, "--clients", (char *)c,
                    "--workers", (char *)w, "--events", (char *)e, "--heartbeat", "200ms",
                    "--lease", "20s", "--endpoints-file", f->ep, NULL};
    f->ledger = tp_spawn(argv, f->log);
    assert_true(tp_read_kv(f->ep, "clients", f->cep, sizeof f->cep, 10000));
    assert_true(tp_read_kv(f->ep, "workers", f->wep, sizeof f->wep, 1000));
    assert_true(tp_read_kv(f->ep, "events", f->eep, sizeof f->eep, 1000));
}

static void start_sampler(struct fx *f)
{
    char *argv[] = {(char *)tp_bin("services/sampler/sampler"), "--clients", f->cep,
                    "--workers", f->wep, "--events", f->eep, "--checkpoint-dir", f->ckpt,
                    "--heartbeat", "200ms", NULL};
    f->sampler = tp_spawn(argv, f->log);
}

/* A tiny random model at dir, its weights drawn from `seed`. */
static void make_model(const char *dir, uint64_t seed)
{
    struct nn_config c;
    nn_config_default(&c);
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.max_position_embeddings = 96;
    nn_model_t *m = NULL;
    char err[256];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, seed, 0.02f);
    assert_int_equal(nn_checkpoint_save(m, dir, err, sizeof err), ERR_OK);
    nn_model_destroy(&m);
}

/* A tiny random "SFT" model: the loop's machinery does not need a good one. */
static void make_sft(struct fx *f)
{
    make_model(f->sft, 5);
}

static int setup_with(void **state, bool import)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-trainer-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->log, sizeof f->log, "%s/log", f->dir);
    snprintf(f->ep, sizeof f->ep, "%s/endpoints", f->dir);
    snprintf(f->ckpt, sizeof f->ckpt, "%s/ckpt", f->dir);
    snprintf(f->sft, sizeof f->sft, "%s/sft-v000000", f->ckpt);
    f->zctx = zmq_ctx_new();
    if (mkdir(f->ckpt, 0755) != 0)
        return -1;
    make_sft(f);
    start_ledger(f, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    setenv("OAIF_LEDGER", f->cep, 1);
    /* 40 prompts of the built-in task */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s task prompts --n 40 | %s import prompts - >/dev/null",
             tp_bin("services/oaif/oaif"), tp_bin("services/oaif/oaif"));
    if (import && system(cmd) != 0)
        return -1;
    start_sampler(f);
    assert_int_equal(pthread_create(&f->judge, NULL, judge_main, f), 0);
    tp_watchdog(TEST_WATCHDOG_S, "this trainer_procs test", f->log);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, true);
}

static int setup_no_prompts(void **state)
{
    return setup_with(state, false);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->trainer > 0 && tp_alive(f->trainer)) /* a failed test's trainer */
        tp_stop(f->trainer, SIGKILL);
    atomic_store(&f->stop, 1);
    pthread_join(f->judge, NULL);
    if (f->sampler > 0)
        tp_stop(f->sampler, SIGTERM);
    if (f->ledger > 0)
        tp_stop(f->ledger, SIGTERM);
    zmq_ctx_term(f->zctx);
    if (!getenv("KEEP_LOGS")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
        if (system(cmd) != 0)
            return -1;
    } else {
        fprintf(stderr, "logs kept in %s\n", f->dir);
    }
    free(f);
    tp_watchdog(0, NULL, NULL); /* after the teardown, which must not hang either */
    return 0;
}

/* The trainer of run "t" with these settings and, after them, the NULL-terminated extra
 * arguments (NULL: none). */
static pid_t start_trainer_with(struct fx *f, const char *steps, const char *every,
                                const char *staleness, const char *inflight,
                                const char *const *extra)
{
    char *argv[40] = {(char *)tp_bin("services/trainer/trainer"), "--ledger", f->cep,
                      "--reference", f->sft, "--checkpoints", f->ckpt, "--run", "t",
                      "--steps", (char *)steps, "--batch", "4", "--prompts-per-request", "4",
                      "--inflight", (char *)inflight, "--checkpoint-every", (char *)every,
                      "--max-staleness", (char *)staleness, "--max-new-tokens", "12",
                      "--lr", "1e-3", "--warmup", "0", NULL};
    size_t n = 0;
    while (argv[n])
        n++;
    for (size_t i = 0; extra && extra[i] && n + 1 < sizeof argv / sizeof argv[0]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    f->trainer = tp_spawn(argv, f->log);
    return f->trainer;
}

static pid_t start_trainer(struct fx *f, const char *steps, const char *every,
                           const char *staleness, const char *inflight)
{
    return start_trainer_with(f, steps, every, staleness, inflight, NULL);
}

/* Why the run cannot go on: the ledger or the sampler stopped (NULL: both run). */
static const char *service_down(struct fx *f, char *buf, size_t len)
{
    char st[200];
    const char *s;
    if ((s = tp_state(f->ledger, st, sizeof st)))
        snprintf(buf, len, "the ledger %s", s);
    else if ((s = tp_state(f->sampler, st, sizeof st)))
        snprintf(buf, len, "the sampler %s", s);
    return s ? buf : NULL;
}

/* Wait for process p to exit and return its exit code. After timeout_s, or as soon as a service
 * of `f` (NULL: none) stops, kill it, write the end of `log` and why to stderr, return -1. */
static int wait_exit(pid_t p, int timeout_s, const char *log, struct fx *f)
{
    char buf[300];
    const char *why = NULL;
    for (int i = 0; i < timeout_s * 10 && !why; i++) {
        int st;
        if (waitpid(p, &st, WNOHANG) == p)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        if (f)
            why = service_down(f, buf, sizeof buf);
        if (!why)
            usleep(100000);
    }
    tp_stop(p, SIGKILL);
    fprintf(stderr, "pid %d killed: %s; the end of %s:\n", (int)p,
            why ? why : "still running at the time limit", log);
    tp_log_tail(log, 8000);
    return -1;
}

static int oaif_out(char *out, size_t len, const char *args)
{
    char cmd[2400]; /* tp_bin's path (under 1024 bytes) and the callers' args (under 1200) */
    int clen = snprintf(cmd, sizeof cmd, "%s %s 2>&1", tp_bin("services/oaif/oaif"), args);
    if (clen < 0 || (size_t)clen >= sizeof cmd)
        fail_msg("oaif %.40s...: command line longer than %zu bytes", args, sizeof cmd);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long count_of(const char *out, const char *label)
{
    const char *p = strstr(out, label);
    return p ? strtol(p + strlen(label), NULL, 10) : -1;
}

/* The newest policy version the ledger has, or -1. */
static long newest_version(struct fx *f)
{
    struct bus_client_opts o = {.endpoint = f->cep};
    bus_client_t *c = NULL;
    long v = -1;
    if (bus_client_new(&c, f->zctx, &o) == ERR_OK) {
        Oaif__V1__Checkpoint *ck = NULL;
        if (ckpt_find_policy(c, -1, 2000, &ck) == ERR_OK) {
            v = ck->version;
            oaif__v1__checkpoint__free_unpacked(ck, NULL);
        }
        bus_client_destroy(&c);
    }
    return v;
}

/* Wait until the ledger holds policy version `v` or newer, with the trainer, the ledger and the
 * sampler running; fail with the end of the services' log if one stops or `timeout_s` passes. */
static void wait_version(struct fx *f, long v, int timeout_s)
{
    uint64_t deadline = bus_mono_ms() + (uint64_t)timeout_s * 1000;
    long have = -1;
    while ((have = newest_version(f)) < v) {
        char buf[300], st[200];
        const char *why = service_down(f, buf, sizeof buf);
        if (!why && tp_state(f->trainer, st, sizeof st))
            why = (snprintf(buf, sizeof buf, "the trainer %s", st), buf);
        if (!why && bus_mono_ms() > deadline)
            why = "timed out";
        if (why) {
            tp_log_tail(f->log, 8000);
            fail_msg("waiting for policy version %ld (the ledger has %ld): %s", v, have, why);
        }
        usleep(20000);
    }
}

static void expect_clean_audit(long steps)
{
    char out[8192];
    int rc = oaif_out(out, sizeof out, "audit");
    if (rc != 0)
        fail_msg("audit failed:\n%s", out);
    assert_int_equal(count_of(out, "steps           "), steps);
    assert_int_equal(count_of(out, "pairs trained   "), steps * 4);
    assert_int_equal(count_of(out, "trained twice   "), 0);
}

static void test_loop_runs_to_the_end_with_a_clean_audit(void **state)
{
    struct fx *f = *state;
    pid_t t = start_trainer(f, "4", "2", "1", "2");
    assert_int_equal(wait_exit(t, 90, f->log, f), 0);
    assert_int_equal(newest_version(f), 2); /* checkpoints after steps 2 and 4 */
    expect_clean_audit(4);
    char path[600];
    snprintf(path, sizeof path, "%s/policy-v000002/model.safetensors", f->ckpt);
    assert_int_equal(access(path, R_OK), 0);
}

/* Did a trainer log that it resumed before the end of the run? */
static bool resumed_mid_run(struct fx *f, long steps)
{
    FILE *lf = fopen(f->log, "r");
    char line[2048];
    bool yes = false;
    while (lf && fgets(line, sizeof line, lf)) {
        const char *p = strstr(line, "resuming run 't' at step ");
        if (p && strtol(p + strlen("resuming run 't' at step "), NULL, 10) < steps)
            yes = true;
    }
    if (lf)
        fclose(lf);
    return yes;
}

static void test_trainer_killed_resumes_from_its_checkpoint(void **state)
{
    struct fx *f = *state;
    pid_t t = start_trainer(f, "100", "5", "1", "2");
    wait_version(f, 2, 60);
    tp_stop(t, SIGKILL);
    assert_true(newest_version(f) < 20); /* killed before the end */
    t = start_trainer(f, "100", "5", "1", "2");
    assert_int_equal(wait_exit(t, 240, f->log, f), 0);
    assert_true(resumed_mid_run(f, 100));
    assert_int_equal(newest_version(f), 20);
    expect_clean_audit(100);
}

static void test_sampler_and_ledger_killed_mid_run(void **state)
{
    struct fx *f = *state;
    pid_t t = start_trainer(f, "100", "5", "1", "2");
    wait_version(f, 2, 60);
    tp_stop(f->sampler, SIGKILL);
    start_sampler(f);
    wait_version(f, 4, 60);
    assert_true(newest_version(f) < 20); /* the run is not over yet */
    char c[256], w[256], e[256];
    snprintf(c, sizeof c, "%s", f->cep);
    snprintf(w, sizeof w, "%s", f->wep);
    snprintf(e, sizeof e, "%s", f->eep);
    tp_stop(f->ledger, SIGKILL);
    start_ledger(f, c, w, e);
    assert_int_equal(wait_exit(t, 240, f->log, f), 0);
    assert_int_equal(newest_version(f), 20);
    expect_clean_audit(100);
}

static void test_stale_pairs_are_set_aside(void **state)
{
    struct fx *f = *state;
    /* A checkpoint every step, three requests ahead, no staleness allowed. */
    pid_t t = start_trainer(f, "4", "1", "0", "3");
    assert_int_equal(wait_exit(t, 120, f->log, f), 0);
    char out[8192];
    assert_int_equal(oaif_out(out, sizeof out, "audit"), 0);
    long stale = count_of(out, "set aside       ");
    const char *s = strstr(out, " stale");
    assert_non_null(s);
    assert_true(stale >= 1);
}

static bool policy_on_disk(struct fx *f, long v)
{
    char path[600];
    snprintf(path, sizeof path, "%s/policy-v%06ld/model.safetensors", f->ckpt, v);
    return access(path, R_OK) == 0;
}

/* Every checkpoint evaluated against SFT, the EvalResults in the ledger, and on disk only the
 * newest and the best (the one with the highest win rate, then accuracy, then the newer). */
static void test_evaluated_checkpoints_keep_the_best(void **state)
{
    struct fx *f = *state;
    static const char *const extra[] = {"--eval-n", "14", "--keep-last", "1", NULL};
    pid_t t = start_trainer_with(f, "6", "1", "1", "2", extra);
    assert_int_equal(wait_exit(t, 120, f->log, f), 0);
    assert_int_equal(newest_version(f), 6);
    static char out[1 << 16];
    assert_int_equal(oaif_out(out, sizeof out, "export evals"), 0);
    long best = 0;
    double best_wr = -1, best_acc = -1;
    int evals = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        const char *vp = strstr(line, "\"version\":"), *wp = strstr(line, "\"win_rate\":"),
                   *ap = strstr(line, "\"accuracy\":");
        if (line[0] != '{')
            continue; /* the count on stderr */
        if (!vp)
            fail_msg("an EvalResult without a version: %s", line);
        long v = strtol(vp + strlen("\"version\":"), NULL, 10);
        double wr = wp ? strtod(wp + strlen("\"win_rate\":"), NULL) : 0; /* 0 is left out */
        double acc = ap ? strtod(ap + strlen("\"accuracy\":"), NULL) : 0;
        evals++;
        if (wr > best_wr || (wr == best_wr && acc >= best_acc)) {
            best = v;
            best_wr = wr;
            best_acc = acc;
        }
    }
    assert_int_equal(evals, 6);
    assert_true(best >= 1 && best <= 6);
    for (long v = 1; v <= 6; v++)
        if (policy_on_disk(f, v) != (v == 6 || v == best))
            fail_msg("policy v%ld: on disk %d, the newest is v6 and the best v%ld", v,
                     policy_on_disk(f, v), best);
}

/* A ledger without prompts: the trainer puts the built-in task's there (the same ones `oaif task
 * prompts` writes), once, and runs on them; with --builtin-prompts 0 it stops and says what to
 * do. */
static void test_builtin_prompts_when_the_ledger_has_none(void **state)
{
    struct fx *f = *state;
    const char *none[] = {"--builtin-prompts", "0", NULL};
    pid_t t = start_trainer_with(f, "2", "2", "1", "2", none);
    assert_int_not_equal(wait_exit(t, 60, f->log, f), 0);
    char *log = NULL;
    size_t n = 0;
    FILE *lf = fopen(f->log, "r");
    assert_non_null(lf);
    assert_true(getdelim(&log, &n, '\0', lf) > 0);
    fclose(lf);
    assert_non_null(strstr(log, "holds no train prompts: import some first"));
    free(log);

    const char *some[] = {"--builtin-prompts", "30", NULL};
    for (int k = 0; k < 2; k++) { /* the second run resumes at its end: nothing put twice */
        t = start_trainer_with(f, "3", "3", "1", "2", some);
        assert_int_equal(wait_exit(t, 120, f->log, f), 0);
    }
    expect_clean_audit(3);
    char out[65536], want[65536];
    assert_int_equal(oaif_out(out, sizeof out, "export prompts"), 0);
    assert_int_equal(oaif_out(want, sizeof want, "task prompts --n 30"), 0);
    int lines = 0;
    for (const char *p = want; (p = strstr(p, "\"id\":\"")); p += 6) {
        char id[64];
        assert_int_equal(sscanf(p + 6, "%63[^\"]", id), 1);
        assert_non_null(strstr(out, id));
        lines++;
    }
    assert_int_equal(lines, 30);
    assert_non_null(strstr(out, "exported 30 prompts"));
}

/* How many times needle occurs in the file (0 when it cannot be read). */
static int file_count(const char *path, const char *needle)
{
    FILE *lf = fopen(path, "r");
    if (!lf)
        return 0;
    char *text = NULL;
    size_t n = 0;
    int count = 0;
    if (getdelim(&text, &n, '\0', lf) > 0)
        for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
            count++;
    free(text);
    fclose(lf);
    return count;
}

static bool file_has(const char *path, const char *needle)
{
    return file_count(path, needle) > 0;
}

/* Offline from another model: without --offline the trainer refuses and publishes nothing; with
 * it, the other model is version 0 (its path and sha256), the sampler loads it from there, the run
 * ends with a clean audit; a second run asking for the SFT model as its offline source is refused
 * on this deployment, whose version 0 is the other model. */
static void test_offline_from_another_model(void **state)
{
    struct fx *f = *state;
    char other[600], file[700], sha[65], err[256];
    snprintf(other, sizeof other, "%s/other", f->dir);
    make_model(other, 6);
    snprintf(file, sizeof file, "%s/model.safetensors", other);
    assert_int_equal(ckpt_file_sha256(file, sha, err, sizeof err), ERR_OK);
    const char *const alone[] = {"--offline-from", other, NULL};
    assert_int_not_equal(wait_exit(start_trainer_with(f, "2", "2", "1", "2", alone), 60, f->log, f),
                         0);
    assert_true(file_has(f->log, "is for offline runs: add --offline"));
    assert_int_equal(newest_version(f), -1); /* nothing published */

    const char *const offline[] = {"--offline", "--offline-from", other, NULL};
    assert_int_equal(wait_exit(start_trainer_with(f, "2", "2", "1", "2", offline), 90, f->log, f),
                     0);
    expect_clean_audit(2);
    struct bus_client_opts o = {.endpoint = f->cep};
    bus_client_t *c = NULL;
    assert_int_equal(bus_client_new(&c, f->zctx, &o), ERR_OK);
    Oaif__V1__Checkpoint *v0 = NULL;
    assert_int_equal(ckpt_find_policy(c, 0, 2000, &v0), ERR_OK);
    assert_string_equal(v0->path, other);
    assert_string_equal(v0->sha256, sha);
    oaif__v1__checkpoint__free_unpacked(v0, NULL);
    bus_client_destroy(&c);
    char loaded[800];
    snprintf(loaded, sizeof loaded, "policy version 0 loaded from %s", other);
    assert_true(file_has(f->log, loaded));

    const char *const sft[] = {"--offline", "--offline-from", f->sft, "--run", "t2", NULL};
    assert_int_not_equal(wait_exit(start_trainer_with(f, "4", "2", "1", "2", sft), 60, f->log, f),
                         0);
    assert_true(file_has(f->log, "offline from another model needs a deployment of its own"));
}

/* A checkpoint that cannot be written (a file stands where policy-v000001 is to be made) stops
 * the trainer with an error naming that path and the reason, and publishes nothing: the ledger
 * still holds only the SFT model, and no step is recorded. */
static void test_a_checkpoint_that_cannot_be_written_publishes_nothing(void **state)
{
    struct fx *f = *state;
    char blocked[400], want[600];
    snprintf(blocked, sizeof blocked, "%s/policy-v000001", f->ckpt);
    FILE *b = fopen(blocked, "w");
    assert_non_null(b);
    assert_true(fputs("in the way\n", b) >= 0);
    assert_int_equal(fclose(b), 0);
    pid_t t = start_trainer(f, "2", "1", "1", "2");
    assert_true(wait_exit(t, 120, f->log, f) > 0);
    snprintf(want, sizeof want, "checkpoint v1: %s: Not a directory", blocked);
    if (!file_has(f->log, want)) {
        tp_log_tail(f->log, 4000);
        fail_msg("the log does not say \"%s\"", want);
    }
    assert_int_equal(newest_version(f), 0);
    char out[8192];
    oaif_out(out, sizeof out, "audit");
    assert_int_equal(count_of(out, "steps           "), 0);
}

/* The pid of a child of `parent` whose command name is `comm`, or -1. */
static pid_t child_named(pid_t parent, const char *comm)
{
    DIR *d = opendir("/proc");
    pid_t found = -1;
    for (struct dirent *e; d && found < 0 && (e = readdir(d));) {
        char path[300], stat[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *sf = fopen(path, "r");
        if (!sf)
            continue;
        size_t n = fread(stat, 1, sizeof stat - 1, sf);
        fclose(sf);
        stat[n] = '\0';
        /* pid (comm) state ppid ... */
        char *open = strchr(stat, '('), *close = strrchr(stat, ')');
        if (!open || !close || close[1] != ' ')
            continue;
        *close = '\0';
        int ppid = 0;
        if (sscanf(close + 2, "%*c %d", &ppid) == 1 && ppid == parent &&
            !strcmp(open + 1, comm))
            found = (pid_t)atoi(stat);
    }
    if (d)
        closedir(d);
    return found;
}

/* `oaif up --train`: the whole deployment, the trainer included, from one command and one run
 * file, with the rules judge; the trainer finishes its run and is not started again, the rest
 * stays up until Ctrl-C. */
static void test_up_with_the_trainer(void **state)
{
    (void)state;
    struct fx f = {0};
    snprintf(f.dir, sizeof f.dir, "/tmp/oaif-test-up-XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    snprintf(f.ckpt, sizeof f.ckpt, "%s/ckpt", f.dir);
    snprintf(f.sft, sizeof f.sft, "%s/sft-v000000", f.ckpt);
    assert_int_equal(mkdir(f.ckpt, 0755), 0);
    make_sft(&f);
    char run[300], data[300], log[340], out[8192];
    snprintf(run, sizeof run, "%s/run.yaml", f.dir);
    snprintf(data, sizeof data, "%s/data", f.dir);
    snprintf(log, sizeof log, "%s/data/logs/trainer.log", f.dir);
    FILE *rf = fopen(run, "w");
    assert_non_null(rf);
    fprintf(rf,
            "annotator:\n  backend: rules\n"
            "sampler:\n  checkpoint_dir: %s\n"
            "trainer:\n  run: u\n  reference: %s\n  checkpoint_dir: %s\n  steps: 2\n"
            "  batch: 4\n  prompts_per_request: 4\n  checkpoint_every: 2\n"
            "  max_new_tokens: 12\n  builtin_prompts: 40\n"
            "  instruction: \"Prefer shorter responses.\"\n", /* random answers: by length */
            f.ckpt, f.sft, f.ckpt);
    fclose(rf);
    char *argv[] = {(char *)tp_bin("services/oaif/oaif"),
                    "up",
                    "--data",
                    data,
                    "--config",
                    run,
                    "--train",
                    "--clients",
                    "tcp://127.0.0.1:*",
                    "--workers",
                    "tcp://127.0.0.1:*",
                    "--events",
                    "tcp://127.0.0.1:*",
                    "--annotators=1",
                    "--scorers=1",
                    NULL};
    char uplog[400];
    snprintf(uplog, sizeof uplog, "%s/up.log", f.dir);
    pid_t up = tp_spawn(argv, uplog);
    tp_watchdog(TEST_WATCHDOG_S, "test_up_with_the_trainer", log);
    bool done = false;
    for (int i = 0; i < 1200 && !done; i++) { /* 120 s */
        done = file_has(uplog, "trainer finished");
        if (!done)
            usleep(100000);
    }
    if (!done) {
        tp_stop(up, SIGKILL);
        fail_msg("the trainer did not finish; see %s and %s", uplog, log);
    }
    assert_true(file_has(log, "run 'u': step 2"));
    char ep[420], cep[256];
    snprintf(ep, sizeof ep, "%s/endpoints", data);
    assert_true(tp_read_kv(ep, "clients", cep, sizeof cep, 1000));
    setenv("OAIF_LEDGER", cep, 1);
    if (oaif_out(out, sizeof out, "audit") != 0)
        fail_msg("audit failed:\n%s", out);
    assert_int_equal(count_of(out, "steps           "), 2);
    assert_int_equal(count_of(out, "trained twice   "), 0);
    /* the reward-scorer --scorers started serves `score` */
    assert_int_equal(oaif_out(out, sizeof out, "status"), 0);
    const char *score = strstr(out, "\nscore ");
    int scorers = -1;
    assert_non_null(score);
    assert_int_equal(sscanf(score, " score %d", &scorers), 1);
    assert_int_equal(scorers, 1);
    sleep(2); /* not started again */
    assert_false(file_has(uplog, "trainer exited"));
    /* The ledger killed: `oaif up` starts it again on the ports it had (they were "*"), so the
     * others, and the endpoints file, still reach it; the run below goes through it. */
    pid_t lp = child_named(up, "ledger");
    assert_true(lp > 0);
    kill(lp, SIGKILL);
    char llog[420], listening[300];
    snprintf(llog, sizeof llog, "%s/logs/ledger.log", data);
    snprintf(listening, sizeof listening, "listening: clients %s,", cep);
    bool back = false;
    for (int i = 0; i < 100 && !back; i++) { /* 10 s; it comes back after 1 s */
        usleep(100000);
        back = file_has(uplog, "ledger exited (signal 9)") && file_count(llog, listening) == 2;
    }
    if (!back) {
        tp_stop(up, SIGKILL);
        fail_msg("the killed ledger was not started again on %s; see %s and %s", cep, uplog,
                 llog);
    }
    /* `oaif run` on the same deployment. A second run is refused, named: the deployment's
     * policy versions are one chain. Run 'u' goes on from its step 2 to 4, with the progress
     * bar and the summary on the terminal, and every line, the configuration and each step
     * included, in the deployment's trainer.log. */
    char args[1200], why[9000] = "";
    snprintf(args, sizeof args, "run %s --data %s --run u2 --steps 2", run, data);
    int rc = oaif_out(out, sizeof out, args);
    if (rc != 1 || !strstr(out, "holds run 'u' (policy v1); it serves one run"))
        snprintf(why, sizeof why, "a second run: exit %d (want 1), named?\n%s", rc, out);
    snprintf(args, sizeof args, "run %s --data %s --run u --steps 4 --progress", run, data);
    if (!why[0] && ((rc = oaif_out(out, sizeof out, args)) != 0 ||
                    !strstr(out, "the trainer's log (with its configuration)") ||
                    !strstr(out, "resuming run 'u' at step 2") || !strstr(out, "] step 4/4") ||
                    !strstr(out, "run 'u': step 4") || strstr(out, "config trainer.") ||
                    strstr(out, "checkpoint v")))
        snprintf(why, sizeof why,
                 "oaif run: exit %d; want the bar and the summary, and neither the "
                 "configuration nor checkpoint lines, on the terminal:\n%s", rc, out);
    if (!why[0] && (file_count(log, "config trainer.steps = 4") != 1 ||
                    file_count(log, "step 4/4 loss") != 1 ||
                    file_count(log, "trainer: step 4: checkpoint v") != 1 ||
                    !file_has(log, "run 'u': step 4")))
        snprintf(why, sizeof why, "%s lacks the resumed run's configuration or steps", log);
    if (!why[0] && oaif_out(out, sizeof out, "audit") != 0)
        snprintf(why, sizeof why, "audit failed:\n%s", out);
    if (!why[0] && (count_of(out, "steps           ") != 4 ||
                    count_of(out, "trained twice   ") != 0))
        snprintf(why, sizeof why, "audit after the resumed run:\n%s", out);
    if (why[0]) {
        tp_stop(up, SIGKILL); /* not left running past the test */
        fail_msg("%s", why);
    }
    kill(up, SIGINT);
    assert_int_equal(wait_exit(up, 30, uplog, NULL), 0);
    assert_true(file_has(uplog, "stopped ledger"));
    tp_watchdog(0, NULL, NULL);
    if (!getenv("KEEP_LOGS")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", f.dir);
        assert_int_equal(system(cmd), 0);
    }
}

/* The run files we ship are ones the trainer takes: a key it does not know fails at once with
 * exit code 2 and the file, line and key named; these get as far as the missing SFT model. */
static void test_shipped_run_files_are_accepted(void **state)
{
    (void)state;
    static const char *const files[] = {"deploy/oaif.example.yaml", "deploy/runs/demo.yaml"};
    for (size_t i = 0; i < 2; i++) {
        char cmd[1024], out[16384];
        snprintf(cmd, sizeof cmd,
                 "cd /tmp && %s --config %s/../../%s --reference /nonexistent/sft-v000000 "
                 "--ledger tcp://127.0.0.1:1 2>&1",
                 tp_bin("services/trainer/trainer"), OAIF_FIXTURES, files[i]);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = '\0';
        int st = pclose(p);
        if (strstr(out, "unknown option") || !WIFEXITED(st) || WEXITSTATUS(st) != 1 ||
            !strstr(out, "/nonexistent/sft-v000000"))
            fail_msg("%s: exit %d\n%s", files[i], WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
    }
    /* and a bad key is named */
    char path[] = "/tmp/oaif-test-runfile-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char bad[] = "trainer:\n  steps: 5\n  batch_size: 32\n";
    assert_int_equal(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
    close(fd);
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd, "%s --config %s 2>&1", tp_bin("services/trainer/trainer"), path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    unlink(path);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    assert_non_null(strstr(out, ":3:3: trainer.batch_size: unknown option"));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("TEST_FILTER")) /* e.g. TEST_FILTER='*ledger_killed*' to run one test */
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loop_runs_to_the_end_with_a_clean_audit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_trainer_killed_resumes_from_its_checkpoint, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sampler_and_ledger_killed_mid_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_pairs_are_set_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_checkpoint_that_cannot_be_written_publishes_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_evaluated_checkpoints_keep_the_best, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_from_another_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_builtin_prompts_when_the_ledger_has_none,
                                        setup_no_prompts, teardown),
        cmocka_unit_test(test_up_with_the_trainer),
        cmocka_unit_test(test_shipped_run_files_are_accepted),
    };
    return cmocka_run_group_tests_name("trainer_procs", tests, NULL, NULL);
}
