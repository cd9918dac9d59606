/* test_rm_meta_procs - `oaif rm train --meta` as real processes: a real ledger, a real sampler
 * serving the tiny "SFT" model (published as policy version 0), a preference set put into the
 * ledger. A member trains with MetaRM to the end; a second one with the same settings is
 * SIGKILLed after its first checkpoint, the sampler is stopped, and the member started again
 * resumes (its meta set answered from the ledger's stored replies, the same digest) to the same
 * weights (sha256) as the first; without --meta the same seed ends elsewhere; a meta set that
 * nobody samples times out with an error that names the sampler. */
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
#include <sys/wait.h>
#include <unistd.h>

#include "busclient.h"
#include "ckpt.h"
#include "err.h"
#include "rmfixture.h"
#include "testproc.h"

#ifndef TEST_WATCHDOG_S
#define TEST_WATCHDOG_S 240
#endif

#define NPAIRS 40

struct mfx {
    struct rmfx *f;
    char wep[256], eep[256], store[300], slog[300];
    pid_t sampler;
};

/* NPAIRS labeled pairs of dataset "toy", each its own prompt: a word of one set chosen over a
 * word of another. */
static void put_pairs(struct rmfx *f)
{
    static const char *good[] = {"yes", "sure", "right", "true", "correct", "indeed"};
    static const char *bad[] = {"no", "wrong", "false", "never", "nope", "bad"};
    Oaif__V1__Record rec[2 * NPAIRS];
    uint8_t *bufs[2 * NPAIRS];
    static char ids[NPAIRS][32], prompts[NPAIRS][64];
    size_t n = 0;
    for (int i = 0; i < NPAIRS; i++) {
        snprintf(ids[i], sizeof ids[i], "imp-toy-%04d", i);
        snprintf(prompts[i], sizeof prompts[i], "q%d: is %c%c?", i, 'a' + i % 26, 'a' + i * 7 % 26);
        Oaif__V1__Response r0 = OAIF__V1__RESPONSE__INIT, r1 = OAIF__V1__RESPONSE__INIT;
        r0.text = (char *)good[i % 6];
        r1.text = (char *)bad[i * 5 % 6];
        Oaif__V1__Response *rs[2] = {&r0, &r1};
        Oaif__V1__Pair p = OAIF__V1__PAIR__INIT;
        p.id = ids[i];
        p.prompt = prompts[i];
        p.n_responses = 2;
        p.responses = rs;
        p.run = "toy";
        rmfx_pack(&rec[n], &bufs[n], OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, ids[i], &p.base);
        n++;
        Oaif__V1__Label l = OAIF__V1__LABEL__INIT;
        l.id = ids[i];
        l.pair_id = ids[i];
        l.winner = OAIF__V1__WINNER__WINNER_FIRST;
        l.prob_first = 1.0;
        l.judge = "import:test";
        rmfx_pack(&rec[n], &bufs[n], OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, ids[i], &l.base);
        n++;
    }
    rmfx_put(f, "test-toy-pairs", rec, bufs, n);
}

/* The init model as policy version 0 (the SFT checkpoint the sampler serves). */
static void publish_sft(struct rmfx *f)
{
    char file[400], hex[65], why[256];
    snprintf(file, sizeof file, "%s/model.safetensors", f->init);
    assert_int_equal(ckpt_file_sha256(file, hex, why, sizeof why), ERR_OK);
    Oaif__V1__Checkpoint c = OAIF__V1__CHECKPOINT__INIT;
    c.version = 0;
    c.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT;
    c.path = f->init;
    c.sha256 = hex;
    c.created_ms = bus_now_ms();
    c.run = "test";
    struct bus_client_opts o = {.endpoint = f->cep};
    bus_client_t *cl = NULL;
    assert_int_equal(bus_client_new(&cl, f->zctx, &o), ERR_OK);
    assert_int_equal(ckpt_publish(cl, &c, 5000), ERR_OK);
    bus_client_destroy(&cl);
}

static void start_sampler(struct mfx *m)
{
    char *argv[] = {(char *)tp_bin("services/sampler/sampler"),
                    "--clients",
                    m->f->cep,
                    "--workers",
                    m->wep,
                    "--events",
                    m->eep,
                    "--heartbeat",
                    "200ms",
                    "--checkpoint-dir",
                    m->store,
                    "--threads",
                    "1",
                    NULL};
    m->sampler = tp_spawn(argv, m->slog);
    assert_true(m->sampler > 0);
}

static int setup(void **state)
{
    struct mfx *m = calloc(1, sizeof *m);
    if (!m || !(m->f = rmfx_open("rm-meta-procs", TEST_WATCHDOG_S)))
        return -1;
    assert_true(tp_read_kv(m->f->ep, "workers", m->wep, sizeof m->wep, 1000));
    assert_true(tp_read_kv(m->f->ep, "events", m->eep, sizeof m->eep, 1000));
    snprintf(m->store, sizeof m->store, "%s/store", m->f->dir);
    snprintf(m->slog, sizeof m->slog, "%s/sampler.log", m->f->dir);
    put_pairs(m->f);
    publish_sft(m->f);
    start_sampler(m);
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    struct mfx *m = *state;
    if (m->sampler > 0)
        tp_stop(m->sampler, SIGKILL);
    int rc = rmfx_close(m->f);
    free(m);
    return rc;
}

/* The arguments of every member here, then `extra`. */
static void member_args(struct mfx *m, char *out, size_t len, const char *extra)
{
    int n = snprintf(out, len,
                     "rm train --dataset toy --init %s --checkpoints %s --batch 4 --epochs 2 "
                     "--lr 3e-3 --warmup 2 --holdout 0.2 --checkpoint-every 3 --max-len 48 "
                     "--member 0 --seed 7 %s",
                     m->f->init, m->f->ckpt, extra);
    assert_true(n > 0 && (size_t)n < len);
}

#define META_ARGS                                                                                  \
    "--meta --meta-prompts 12 --meta-batch 2 --meta-max-new-tokens 6 --meta-lr 0.5 "               \
    "--meta-timeout 60s "

static int member_out(struct mfx *m, char *out, size_t len, const char *extra)
{
    char args[1500];
    member_args(m, args, sizeof args, extra);
    return rmfx_oaif(out, len, args);
}

/* The text after `key` in out up to the end of its line, into val. */
static void line_after(const char *out, const char *key, char *val, size_t len)
{
    const char *p = strstr(out, key);
    if (!p)
        fail_msg("no '%s' in:\n%s", key, out);
    p += strlen(key);
    size_t n = strcspn(p, "\n");
    snprintf(val, len, "%.*s", (int)(n < len ? n : len - 1), p);
}

static void test_killed_meta_member_resumes_to_the_same_weights(void **state)
{
    struct mfx *m = *state;
    static char out[1 << 15];
    char sha_a[600], sha_k[600], set_a[200], set_k[200], sha_p[600];
    /* a/m0 undisturbed, sampling the meta set */
    int rc = member_out(m, out, sizeof out, META_ARGS "--ensemble a");
    if (rc != 0)
        fail_msg("member a/m0 failed (%d):\n%s", rc, out);
    line_after(out, "rm: meta set: ", set_a, sizeof set_a);
    line_after(out, "rm: checkpoint ", sha_a, sizeof sha_a);
    assert_non_null(strstr(set_a, "12 prompts x 5 responses of policy v0"));
    assert_non_null(strstr(out, "rm meta: step 1: J "));

    /* k/m0: the same settings, slowed down, killed after its first checkpoint */
    char args[1500], cmd[3000];
    member_args(m, args, sizeof args, META_ARGS "--ensemble k --step-sleep 150ms");
    snprintf(cmd, sizeof cmd, "exec %s %s >>%s 2>&1", tp_bin("services/oaif/oaif"), args,
             m->f->log);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t k = tp_spawn(argv, NULL);
    char state_file[600];
    snprintf(state_file, sizeof state_file, "%s/reward-k-m0-v000001/rm.json", m->f->ckpt);
    for (int i = 0; i < 6000 && access(state_file, R_OK) != 0; i++) {
        char st[200];
        if (tp_state(k, st, sizeof st)) {
            tp_log_tail(m->f->log, 8000);
            fail_msg("member k/m0 %s before its first checkpoint", st);
        }
        usleep(10000);
    }
    assert_int_equal(access(state_file, R_OK), 0);
    assert_true(tp_alive(k));
    tp_stop(k, SIGKILL);

    /* no sampler from here on: the resumed member's meta set comes from the ledger */
    tp_stop(m->sampler, SIGTERM);
    m->sampler = 0;
    rc = member_out(m, out, sizeof out, META_ARGS "--ensemble k");
    if (rc != 0)
        fail_msg("the restarted member failed (%d):\n%s", rc, out);
    fprintf(stderr, "%s", strstr(out, "rm: dataset") ? strstr(out, "rm: dataset") : out);
    assert_non_null(strstr(out, "(resumed)"));
    line_after(out, "rm: meta set: ", set_k, sizeof set_k);
    line_after(out, "rm: checkpoint ", sha_k, sizeof sha_k);
    assert_string_equal(set_k, set_a);
    const char *ha = strstr(sha_a, "(sha256 "), *hk = strstr(sha_k, "(sha256 ");
    assert_non_null(ha);
    assert_non_null(hk);
    fprintf(stderr, "a/m0 %s\nk/m0 (killed, resumed) %s\n", ha, hk);
    assert_string_equal(hk, ha);

    /* the same member without --meta ends elsewhere: the meta step changed the weights */
    rc = member_out(m, out, sizeof out, "--ensemble p");
    if (rc != 0)
        fail_msg("member p/m0 failed (%d):\n%s", rc, out);
    line_after(out, "rm: checkpoint ", sha_p, sizeof sha_p);
    assert_non_null(strstr(sha_p, "(sha256 "));
    assert_string_not_equal(strstr(sha_p, "(sha256 "), ha);

    /* another meta set (another sampling seed) with no sampler: a timeout that says so */
    rc = member_out(m, out, sizeof out,
                    "--ensemble q --meta --meta-prompts 4 --meta-seed 2 --meta-timeout 1500ms");
    assert_int_equal(rc, 1);
    if (!strstr(out, "is a sampler serving policy v0"))
        fail_msg("no sampler named in:\n%s", out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_killed_meta_member_resumes_to_the_same_weights, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("rm_meta_procs", tests, NULL, NULL);
}
