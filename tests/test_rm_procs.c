/* test_rm_procs - `oaif rm train` as real processes against a real ledger process: three members
 * train at once on a preference set put into the ledger (Pair and Label records as `oaif import
 * pairs` writes them, some with the second response chosen, some ties, some unlabeled); one is
 * SIGKILLed after its first checkpoint and started again, and resumes to the same weights
 * (sha256) as an undisturbed member with the same seed; a member with another seed ends
 * elsewhere; the published records name their ensemble and member; a finished member started
 * again trains nothing; bad flags and numbers are errors that name them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "busclient.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "model.h"
#include "testproc.h"

#ifndef TEST_WATCHDOG_S
#define TEST_WATCHDOG_S 240
#endif

#define NPAIRS 120 /* labeled pairs of dataset "toy" */

struct fx {
    char dir[256], log[300], ep[300], ckpt[300], init[300];
    char cep[256];
    pid_t ledger;
    void *zctx;
};

static void start_ledger(struct fx *f)
{
    char db[320];
    snprintf(db, sizeof db, "%s/db", f->dir);
    char *argv[] = {(char *)tp_bin("services/ledger/ledger"),
                    "--db",
                    db,
                    "--clients",
                    "tcp://127.0.0.1:*",
                    "--workers",
                    "tcp://127.0.0.1:*",
                    "--events",
                    "tcp://127.0.0.1:*",
                    "--endpoints-file",
                    f->ep,
                    NULL};
    f->ledger = tp_spawn(argv, f->log);
    assert_true(tp_read_kv(f->ep, "clients", f->cep, sizeof f->cep, 10000));
}

/* A tiny random model as the "SFT" checkpoint: what matters here is the machinery. */
static void make_init(struct fx *f)
{
    struct nn_config c;
    nn_config_default(&c);
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.max_position_embeddings = 48;
    nn_model_t *m = NULL;
    char err[256];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, 11, 0.05f);
    assert_int_equal(nn_checkpoint_save(m, f->init, err, sizeof err), ERR_OK);
    nn_model_destroy(&m);
}

/* Packs m into rec (kind, id), the bytes malloc'd into *buf. */
static void pack(Oaif__V1__Record *rec, uint8_t **buf, Oaif__V1__RecordKind kind, const char *id,
                 const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    *buf = malloc(n ? n : 1);
    assert_non_null(*buf);
    protobuf_c_message_pack(m, *buf);
    oaif__v1__record__init(rec);
    rec->kind = kind;
    rec->id = (char *)id;
    rec->data.data = *buf;
    rec->data.len = n;
}

/* The preference set "toy": NPAIRS labeled pairs whose chosen response is a word of one set and
 * the rejected one of another; every fifth stored second-first with winner SECOND; 3 ties, 2
 * unlabeled pairs, and one pair of another dataset. */
static void put_pairs(struct fx *f)
{
    static const char *good[] = {"yes", "sure", "right", "true", "correct", "indeed"};
    static const char *bad[] = {"no", "wrong", "false", "never", "nope", "bad"};
    enum { N = NPAIRS + 6 };
    Oaif__V1__Record rec[2 * N], *rp[2 * N];
    uint8_t *bufs[2 * N];
    char ids[N][32], prompts[N][64];
    size_t n = 0;
    uint64_t s = 31;
    for (int i = 0; i < N; i++) {
        char c[16], r[16];
        snprintf(ids[i], sizeof ids[i], "imp-toy-%04d", i);
        snprintf(prompts[i], sizeof prompts[i], "q%d: is %c%c?", i,
                 'a' + (int)(nn_rng_next(&s) % 26), 'a' + (int)(nn_rng_next(&s) % 26));
        snprintf(c, sizeof c, "%s", good[nn_rng_next(&s) % 6]);
        snprintf(r, sizeof r, "%s", bad[nn_rng_next(&s) % 6]);
        bool second = i % 5 == 4;
        Oaif__V1__Response r0 = OAIF__V1__RESPONSE__INIT, r1 = OAIF__V1__RESPONSE__INIT;
        r0.text = second ? r : c;
        r1.text = second ? c : r;
        Oaif__V1__Response *rs[2] = {&r0, &r1};
        Oaif__V1__Pair p = OAIF__V1__PAIR__INIT;
        p.id = ids[i];
        p.prompt = prompts[i];
        p.n_responses = 2;
        p.responses = rs;
        p.run = i == N - 1 ? "other" : "toy";
        pack(&rec[n], &bufs[n], OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, ids[i], &p.base);
        n++;
        if (i >= NPAIRS + 3 && i < NPAIRS + 5)
            continue; /* unlabeled */
        Oaif__V1__Label l = OAIF__V1__LABEL__INIT;
        l.id = ids[i];
        l.pair_id = ids[i];
        l.winner = i >= NPAIRS && i < NPAIRS + 3 ? OAIF__V1__WINNER__WINNER_TIE
                   : second                      ? OAIF__V1__WINNER__WINNER_SECOND
                                                 : OAIF__V1__WINNER__WINNER_FIRST;
        l.prob_first = second ? 0.0 : 1.0;
        l.judge = "import:test";
        pack(&rec[n], &bufs[n], OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, ids[i], &l.base);
        n++;
    }
    for (size_t i = 0; i < n; i++)
        rp[i] = &rec[i];
    struct bus_client_opts o = {.endpoint = f->cep};
    bus_client_t *c = NULL;
    assert_int_equal(bus_client_new(&c, f->zctx, &o), ERR_OK);
    assert_int_equal(bus_client_put(c, "test-toy-pairs", rp, n, true, 10000), ERR_OK);
    bus_client_destroy(&c);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-rm-procs-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->log, sizeof f->log, "%s/log", f->dir);
    snprintf(f->ep, sizeof f->ep, "%s/endpoints", f->dir);
    snprintf(f->ckpt, sizeof f->ckpt, "%s/ckpt", f->dir);
    snprintf(f->init, sizeof f->init, "%s/sft", f->dir);
    /* One engine thread per member: three members share the machine's cores, and the weights
     * are reproducible for a given thread count. */
    setenv("OMP_NUM_THREADS", "1", 1);
    f->zctx = zmq_ctx_new();
    make_init(f);
    start_ledger(f);
    setenv("BUS_CLIENTS_ENDPOINT", f->cep, 1);
    put_pairs(f);
    tp_watchdog(TEST_WATCHDOG_S, "this rm_procs test", f->log);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
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
    tp_watchdog(0, NULL, NULL);
    return 0;
}

/* The arguments every member here takes, then `extra`. */
static void member_args(struct fx *f, char *out, size_t len, const char *extra)
{
    int n = snprintf(out, len,
                     "rm train --dataset toy --init %s --checkpoints %s --batch 8 --epochs 2 "
                     "--lr 3e-3 --warmup 5 --holdout 0.2 --checkpoint-every 3 %s",
                     f->init, f->ckpt, extra);
    assert_true(n > 0 && (size_t)n < len);
}

/* `oaif rm train ...` in the background, stdout and stderr appended to the log. */
static pid_t spawn_member(struct fx *f, const char *extra)
{
    char args[1500], cmd[3000];
    member_args(f, args, sizeof args, extra);
    snprintf(cmd, sizeof cmd, "exec %s %s >>%s 2>&1", tp_bin("services/oaif/oaif"), args, f->log);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return tp_spawn(argv, NULL);
}

/* `oaif ARGS` with stdout and stderr into out; the exit code. */
static int oaif_out(char *out, size_t len, const char *args)
{
    char cmd[3000];
    int n = snprintf(cmd, sizeof cmd, "%s %s 2>&1", tp_bin("services/oaif/oaif"), args);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, len - 1, p);
    out[got] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int member_out(struct fx *f, char *out, size_t len, const char *extra)
{
    char args[1500];
    member_args(f, args, sizeof args, extra);
    return oaif_out(out, len, args);
}

static int wait_exit(struct fx *f, pid_t p, int timeout_s)
{
    for (int i = 0; i < timeout_s * 50; i++) {
        int st;
        if (waitpid(p, &st, WNOHANG) == p)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        usleep(20000);
    }
    tp_stop(p, SIGKILL);
    tp_log_tail(f->log, 8000);
    fail_msg("pid %d still running after %d s", (int)p, timeout_s);
    return -1;
}

/* The Checkpoint record `id`, or NULL. Free with oaif__v1__checkpoint__free_unpacked. */
static Oaif__V1__Checkpoint *get_checkpoint(struct fx *f, const char *id)
{
    struct bus_client_opts o = {.endpoint = f->cep};
    bus_client_t *c = NULL;
    assert_int_equal(bus_client_new(&c, f->zctx, &o), ERR_OK);
    Oaif__V1__Envelope *env = NULL;
    const char *ids[1] = {id};
    assert_int_equal(
        bus_client_get(c, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT, ids, 1, 5000, &env),
        ERR_OK);
    Oaif__V1__Checkpoint *ck = NULL;
    if (env->records && env->records->n_records == 1)
        ck = oaif__v1__checkpoint__unpack(NULL, env->records->records[0]->data.len,
                                          env->records->records[0]->data.data);
    oaif__v1__envelope__free_unpacked(env, NULL);
    bus_client_destroy(&c);
    return ck;
}

/* The newest reward checkpoint of (ensemble, member) in the ledger, or NULL. */
static Oaif__V1__Checkpoint *find_member(struct fx *f, const char *ensemble, uint32_t member)
{
    struct bus_client_opts o = {.endpoint = f->cep};
    bus_client_t *c = NULL;
    assert_int_equal(bus_client_new(&c, f->zctx, &o), ERR_OK);
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(
        bus_client_scan(c, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT, 0, 1000, 5000, &env),
        ERR_OK);
    Oaif__V1__Checkpoint *best = NULL;
    for (size_t i = 0; env->records && i < env->records->n_records; i++) {
        Oaif__V1__Checkpoint *ck = oaif__v1__checkpoint__unpack(
            NULL, env->records->records[i]->data.len, env->records->records[i]->data.data);
        assert_non_null(ck);
        if (ck->kind == OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD &&
            !strcmp(ck->ensemble, ensemble) && ck->member == member &&
            (!best || ck->version > best->version)) {
            if (best)
                oaif__v1__checkpoint__free_unpacked(best, NULL);
            best = ck;
        } else {
            oaif__v1__checkpoint__free_unpacked(ck, NULL);
        }
    }
    oaif__v1__envelope__free_unpacked(env, NULL);
    bus_client_destroy(&c);
    return best;
}

static double metric(const Oaif__V1__Checkpoint *c, const char *name)
{
    for (size_t i = 0; i < c->n_metrics; i++)
        if (!strcmp(c->metrics[i]->name, name))
            return c->metrics[i]->value;
    fail_msg("checkpoint %s has no metric %s", c->id, name);
    return 0;
}

/* The version in "published reward-<stem>-v<N>" of out, or -1. */
static long published_version(const char *out, const char *stem)
{
    char key[128];
    snprintf(key, sizeof key, "published %s-v", stem);
    const char *p = strstr(out, key);
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static void test_killed_member_resumes_to_the_same_weights(void **state)
{
    struct fx *f = *state;
    /* three members at once: a/m0 and a/m1 undisturbed (seeds 7 and 8), k/m0 (seed 7) slowed
     * down by a pause after each step so that it can be killed in the middle */
    pid_t a0 = spawn_member(f, "--ensemble a --member 0 --seed 7");
    pid_t a1 = spawn_member(f, "--ensemble a --member 1 --seed 8");
    pid_t k0 = spawn_member(f, "--ensemble k --member 0 --seed 7 --step-sleep 100ms");
    char state_file[600];
    snprintf(state_file, sizeof state_file, "%s/reward-k-m0-v000001/rm.json", f->ckpt);
    for (int i = 0; i < 6000 && access(state_file, R_OK) != 0; i++) {
        char st[200];
        if (tp_state(k0, st, sizeof st)) {
            tp_log_tail(f->log, 8000);
            fail_msg("member k/m0 %s before its first checkpoint", st);
        }
        usleep(10000);
    }
    assert_int_equal(access(state_file, R_OK), 0);
    assert_true(tp_alive(k0)); /* mid-training: the final checkpoint is steps away */
    /* a second process for the same member is refused while the first trains */
    static char second[1 << 14];
    assert_int_equal(member_out(f, second, sizeof second, "--ensemble k --member 0 --seed 7"), 1);
    if (!strstr(second, "being trained by another process"))
        fail_msg("a second k/m0 was not refused by name:\n%s", second);
    assert_true(tp_alive(k0));
    tp_stop(k0, SIGKILL);
    assert_null(get_checkpoint(f, "reward-k-m0-v1")); /* nothing published */
    char done[700];
    snprintf(done, sizeof done, "grep -q '\"done\": false' %s", state_file);
    assert_int_equal(system(done), 0);

    assert_int_equal(wait_exit(f, a0, 120), 0);
    assert_int_equal(wait_exit(f, a1, 120), 0);
    static char out[1 << 15];
    int rc = member_out(f, out, sizeof out, "--ensemble k --member 0 --seed 7");
    if (rc != 0)
        fail_msg("the restarted member failed (%d):\n%s", rc, out);
    fprintf(stderr, "%s", strstr(out, "rm: dataset") ? strstr(out, "rm: dataset") : out);
    assert_non_null(strstr(out, "(resumed)"));
    assert_non_null(strstr(out, "resuming at step "));
    /* the data as read: 120 labeled pairs of "toy", the ties and the unlabeled ones left out */
    assert_non_null(strstr(out, "dataset 'toy': 120 pairs ("));
    assert_non_null(strstr(out, "left out: 3 ties, 2 unlabeled, 0 malformed"));

    long kv = published_version(out, "reward-k-m0");
    assert_true(kv >= 2);
    char kid[64];
    snprintf(kid, sizeof kid, "reward-k-m0-v%ld", kv);
    Oaif__V1__Checkpoint *k = get_checkpoint(f, kid);
    Oaif__V1__Checkpoint *m0 = find_member(f, "a", 0);
    Oaif__V1__Checkpoint *m1 = find_member(f, "a", 1);
    assert_non_null(k);
    assert_non_null(m0);
    assert_non_null(m1);
    fprintf(stderr, "a/m0 %s, k/m0 (killed, resumed) %s, a/m1 %s\n", m0->sha256, k->sha256,
            m1->sha256);
    assert_string_equal(k->sha256, m0->sha256);
    assert_string_not_equal(m1->sha256, m0->sha256);
    /* the records: kind, ensemble, member, the files they name, the held-out metrics */
    assert_int_equal(m1->kind, OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD);
    assert_string_equal(m1->ensemble, "a");
    assert_int_equal(m1->member, 1);
    char id[64];
    snprintf(id, sizeof id, "reward-a-m1-v%u", m1->version);
    assert_string_equal(m1->id, id);
    assert_string_equal(m1->run, "toy");
    char sha[65], why[256], path[700];
    snprintf(path, sizeof path, "%s/model.safetensors", k->path);
    assert_int_equal(ckpt_file_sha256(path, sha, why, sizeof why), ERR_OK);
    assert_string_equal(sha, k->sha256);
    for (int i = 0; i < 2; i++) {
        const Oaif__V1__Checkpoint *c = i ? m1 : m0;
        fprintf(stderr, "%s: held-out accuracy %.3f (epoch 1 %.3f), loss %.3f on %.0f pairs\n",
                c->id, metric(c, "heldout_accuracy"), metric(c, "heldout_accuracy_e1"),
                metric(c, "heldout_loss"), metric(c, "heldout_pairs"));
        assert_true(metric(c, "heldout_accuracy") >= 0.8);
        assert_true(metric(c, "heldout_pairs") >= 10);
        assert_true(metric(c, "epochs") == 2);
    }
    assert_true(metric(k, "heldout_accuracy") == metric(m0, "heldout_accuracy"));
    /* on disk: the killed member's intermediate checkpoints are gone, its final one stays */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "test $(ls -d %s/reward-k-m0-v* | wc -l) -eq 1", f->ckpt);
    assert_int_equal(system(cmd), 0);

    /* a finished member started again trains nothing and publishes the same record */
    rc = member_out(f, out, sizeof out, "--ensemble a --member 0 --seed 7");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "already trained"));
    assert_int_equal(published_version(out, "reward-a-m0"), (long)m0->version);
    oaif__v1__checkpoint__free_unpacked(k, NULL);
    oaif__v1__checkpoint__free_unpacked(m0, NULL);
    oaif__v1__checkpoint__free_unpacked(m1, NULL);
}

/* A Part II set through `oaif import pairs` (Pair, Label and Strength records): the pairs whose
 * strength is negative (found with `oaif export strengths`) go in a flip file, and a member
 * trains with those flips and margins from the strengths. */
static void test_an_imported_set_with_flips_and_strength_margins(void **state)
{
    struct fx *f = *state;
    static const char *good[] = {"yes", "sure", "right", "true"};
    static const char *bad[] = {"no", "wrong", "false", "never"};
    char file[400];
    snprintf(file, sizeof file, "%s/part2.json", f->dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fputs("[", fp);
    int negative = 0;
    for (int i = 0; i < 60; i++) {
        bool neg = i % 6 == 5; /* stored the wrong way round, with a negative strength */
        negative += neg;
        const char *c = good[i % 4], *r = bad[(i / 4) % 4];
        fprintf(fp,
                "%s{\"chosen\": [\"q%d: is it?\", \"%s\"], \"rejected\": [\"q%d: is it?\", "
                "\"%s\"], \"mean preference difference\": %s, \"std preference difference\": "
                "0.5}\n",
                i ? "," : "", i, neg ? r : c, i, neg ? c : r, neg ? "-2.0" : "1.5");
    }
    fputs("]\n", fp);
    fclose(fp);
    static char out[1 << 16];
    char args[1500];
    snprintf(args, sizeof args, "import pairs %s --dataset p2", file);
    int rc = oaif_out(out, sizeof out, args);
    if (rc != 0)
        fail_msg("oaif import pairs failed (%d):\n%s", rc, out);
    /* the pairs with a negative strength, from the Strength records */
    assert_int_equal(oaif_out(out, sizeof out, "export strengths"), 0);
    char flips[400];
    snprintf(flips, sizeof flips, "%s/flips.txt", f->dir);
    fp = fopen(flips, "w");
    assert_non_null(fp);
    fputs("# pairs whose strength says the label is wrong\n", fp);
    int found = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        const char *id = strstr(line, "\"id\":\""), *mean = strstr(line, "\"mean\":");
        if (!id || !mean || strtod(mean + strlen("\"mean\":"), NULL) >= 0)
            continue;
        id += strlen("\"id\":\"");
        fprintf(fp, "%.*s\n", (int)strcspn(id, "\""), id);
        found++;
    }
    fclose(fp);
    assert_int_equal(found, negative);
    char extra[900];
    snprintf(extra, sizeof extra,
             "--ensemble p --member 2 --flip-file %s --margin-from-strength --margin-scale 0.5",
             flips);
    char margs[1500];
    member_args(f, margs, sizeof margs, extra);
    /* the dataset is "toy" in member_args: name p2 after it (the later flag wins) */
    strncat(margs, " --dataset p2", sizeof margs - strlen(margs) - 1);
    rc = oaif_out(out, sizeof out, margs);
    if (rc != 0)
        fail_msg("oaif rm train on p2 failed (%d):\n%s", rc, out);
    char want[64];
    snprintf(want, sizeof want, "; %d flipped,", negative);
    assert_non_null(strstr(out, "dataset 'p2': 60 pairs ("));
    assert_non_null(strstr(out, want));
    Oaif__V1__Checkpoint *c = find_member(f, "p", 2);
    assert_non_null(c);
    assert_string_equal(c->run, "p2");
    fprintf(stderr, "p2, %d flipped: held-out accuracy %.3f on %.0f pairs\n", negative,
            metric(c, "heldout_accuracy"), metric(c, "heldout_pairs"));
    oaif__v1__checkpoint__free_unpacked(c, NULL);
}

static void expect_usage_error(struct fx *f, const char *extra, const char *want)
{
    static char out[1 << 14];
    char args[1500];
    member_args(f, args, sizeof args, extra);
    int rc = oaif_out(out, sizeof out, args);
    if (rc != 2 || !strstr(out, want))
        fail_msg("oaif %s: exit %d, expected 2 and '%s' in:\n%s", extra, rc, want, out);
}

static void test_bad_flags_and_numbers_are_named(void **state)
{
    struct fx *f = *state;
    expect_usage_error(f, "--holdout 2", "--holdout");
    expect_usage_error(f, "--batch x", "--batch");
    expect_usage_error(f, "--lr -1", "--lr");
    expect_usage_error(f, "--member 5000", "--member");
    expect_usage_error(f, "--contrastive simclr", "--contrastive");
    expect_usage_error(f, "--ensemble a/b", "--ensemble");
    expect_usage_error(f, "--run r", "--dataset NAME"); /* both named */
    expect_usage_error(f, "--no-such-flag 1", "--no-such-flag");
    static char out[1 << 14];
    assert_int_equal(oaif_out(out, sizeof out, "rm frobnicate"), 2);
    assert_non_null(strstr(out, "frobnicate"));
    assert_int_equal(oaif_out(out, sizeof out, "rm train --help"), 0);
    assert_non_null(strstr(out, "--flip-file"));
    assert_non_null(strstr(out, "--contrastive-weight"));
    /* a preference set the ledger does not have: a failure that says so */
    char args[1500];
    snprintf(args, sizeof args, "rm train --dataset nosuch --init %s --checkpoints %s", f->init,
             f->ckpt);
    assert_int_equal(oaif_out(out, sizeof out, args), 1);
    assert_non_null(strstr(out, "no labeled pair of dataset 'nosuch'"));
    /* a flip file that is not there */
    snprintf(args, sizeof args, "rm train --dataset toy --flip-file %s/none --init %s", f->dir,
             f->init);
    assert_int_equal(oaif_out(out, sizeof out, args), 1);
    assert_non_null(strstr(out, "--flip-file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_killed_member_resumes_to_the_same_weights, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_imported_set_with_flips_and_strength_margins, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_flags_and_numbers_are_named, setup, teardown),
    };
    return cmocka_run_group_tests_name("rm_procs", tests, NULL, NULL);
}
