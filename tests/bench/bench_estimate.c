/* bench_estimate.c - pairs per second of the `estimate` service (issue 14) next to the `score`
 * requests it makes, in the same run, on the same pairs. Not a test (not registered in ctest).
 *
 *   build/tests/bench/bench_estimate [--pairs N] [--members M] [--repeats R] [--in-flight K]
 *                                    [--threads T] [--policy keep|flip]
 *
 * M reward members (default 4) of the built-in policy's shape (2 layers, width 128, MLP 352, 8
 * heads of 16 with 4 KV heads, 256 positions, the byte tokenizer) with random weights, published
 * in a real ledger (--sync=false) as ensemble "bench"; a real `reward-scorer` (--threads T,
 * --credit 2) serves them and a real `strength-estimator` (--policy, flip with --flip-quantile
 * 0.1 so that every decision reads the ledger's strengths and takes a quantile) serves
 * `estimate`. Each pass sends N pairs (default 256; a prompt and two answers of 40 to 160 bytes)
 * by one bus client, K (default 8) in flight, until every reply is in:
 *   score     N ScoreRequests of the pair's two texts (what the estimator asks for each pair)
 *   estimate  N EstimateRequests of the same pairs under new pair ids: the estimator's score
 *             request, mu and sigma, the decision, the Scores and Strength records in the reply's
 *             commit
 * The two passes alternate R times (default 5); the table gives pairs/s min / median / max and
 * the ratio of the medians (estimate / score), and the latency of a single request alone (K = 1,
 * median of 20) of each. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bus.h"
#include "busclient.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "model.h"
#include "testproc.h"

#define ENSEMBLE    "bench"
#define MAX_MEMBERS 16
#define MAX_REPEATS 100

static pid_t kids[3];
static char tmpdir[256];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void cleanup(void)
{
    for (int i = 2; i >= 0; i--)
        if (kids[i] > 0)
            tp_stop(kids[i], SIGTERM);
    if (tmpdir[0] && !getenv("KEEP_LOGS")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_estimate: could not remove %s\n", tmpdir);
    }
}

static void on_signal(int sig)
{
    (void)sig;
    _exit(130);
}

static void die(const char *what)
{
    fprintf(stderr, "bench_estimate: %s\n", what);
    exit(1);
}

struct opts {
    int pairs, members, repeats, in_flight, threads;
    const char *policy;
};

static int parse(struct opts *o, int argc, char **argv)
{
    *o = (struct opts){
        .pairs = 256, .members = 4, .repeats = 5, .in_flight = 8, .threads = 1, .policy = "flip"};
    for (int i = 1; i < argc; i++) {
        int *dst = NULL;
        if (!strcmp(argv[i], "--pairs"))
            dst = &o->pairs;
        else if (!strcmp(argv[i], "--members"))
            dst = &o->members;
        else if (!strcmp(argv[i], "--repeats"))
            dst = &o->repeats;
        else if (!strcmp(argv[i], "--in-flight"))
            dst = &o->in_flight;
        else if (!strcmp(argv[i], "--threads"))
            dst = &o->threads;
        else if (!strcmp(argv[i], "--policy") && i + 1 < argc) {
            o->policy = argv[++i];
            continue;
        }
        if (!dst || i + 1 >= argc)
            return -1;
        *dst = atoi(argv[++i]);
    }
    if (o->pairs < 1 || o->pairs > 100000 || o->members < 1 || o->members > MAX_MEMBERS ||
        o->repeats < 1 || o->repeats > MAX_REPEATS || o->in_flight < 1 || o->in_flight > 64 ||
        o->threads < 1 || o->threads > 256 ||
        (strcmp(o->policy, "keep") != 0 && strcmp(o->policy, "flip") != 0))
        return -1;
    return 0;
}

static void publish_member(bus_client_t *c, const char *store, uint32_t member)
{
    struct nn_config cfg;
    nn_config_default(&cfg);
    cfg.hidden_size = 128;
    cfg.intermediate_size = 352;
    cfg.num_hidden_layers = 2;
    cfg.num_attention_heads = 8;
    cfg.num_key_value_heads = 4;
    cfg.max_position_embeddings = 256;
    cfg.reward_head = true;
    nn_model_t *m = NULL;
    char err[512], dir[512], file[600], hex[65], id[128];
    if (nn_model_new(&m, &cfg, err, sizeof err))
        die(err);
    nn_model_init_random(m, 1000 + member, 0.02f);
    snprintf(dir, sizeof dir, "%s/reward-%s-m%u-v%06u", store, ENSEMBLE, member, 1u);
    if (nn_checkpoint_save(m, dir, err, sizeof err))
        die(err);
    nn_model_destroy(&m);
    snprintf(file, sizeof file, "%s/%s", dir, NN_CKPT_WEIGHTS);
    if (ckpt_file_sha256(file, hex, err, sizeof err))
        die(err);
    snprintf(id, sizeof id, "reward-%s-m%u-v1", ENSEMBLE, member);
    Oaif__V1__Checkpoint ck = OAIF__V1__CHECKPOINT__INIT;
    ck.id = id;
    ck.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD;
    ck.version = 1;
    ck.ensemble = ENSEMBLE;
    ck.member = member;
    ck.path = dir;
    ck.sha256 = hex;
    ck.created_ms = bus_now_ms();
    ck.run = "bench";
    if (ckpt_publish(c, &ck, 10000))
        die("cannot publish a member checkpoint");
}

/* Pair i's prompt and answers (40 to 160 bytes, different for every i). */
static void pair_texts(int i, char *prompt, size_t pl, char *a, char *b, size_t al)
{
    snprintf(prompt, pl, "What is %d + %d? Explain the steps.", i % 97, i % 89 + 3);
    int la = 40 + (i * 37) % 121, lb = 40 + (i * 53) % 121;
    snprintf(a, al, "The answer is %d because we add the units, then the tens, and so on.",
             i % 97 + i % 89 + 3);
    snprintf(b, al, "It is %d, I think, since adding them that way gives this sum, more or less.",
             i % 61);
    a[la < (int)al ? la : (int)al - 1] = '\0';
    b[lb < (int)al ? lb : (int)al - 1] = '\0';
}

/* The packed request of pair i for `svc` ("score" or "estimate", the latter under pair id
 * tag-i) into *out (malloc'd); its length. */
static size_t pack_pair(const char *svc, const char *tag, int i, uint8_t **out)
{
    char prompt[128], a[200], b[200], pid[64];
    pair_texts(i, prompt, sizeof prompt, a, b, sizeof a);
    size_t len;
    if (!strcmp(svc, "score")) {
        char *texts[2] = {a, b};
        Oaif__V1__ScoreRequest r = OAIF__V1__SCORE_REQUEST__INIT;
        r.prompt = prompt;
        r.texts = texts;
        r.n_texts = 2;
        len = oaif__v1__score_request__get_packed_size(&r);
        *out = malloc(len);
        if (!*out)
            die("out of memory");
        oaif__v1__score_request__pack(&r, *out);
        return len;
    }
    snprintf(pid, sizeof pid, "%s-%d", tag, i);
    Oaif__V1__Response r0 = OAIF__V1__RESPONSE__INIT, r1 = OAIF__V1__RESPONSE__INIT;
    r0.text = a;
    r1.text = b;
    Oaif__V1__Response *rs[2] = {&r0, &r1};
    Oaif__V1__Pair p = OAIF__V1__PAIR__INIT;
    p.id = pid;
    p.prompt = prompt;
    p.responses = rs;
    p.n_responses = 2;
    Oaif__V1__Label l = OAIF__V1__LABEL__INIT;
    l.winner = i % 4 == 3 ? OAIF__V1__WINNER__WINNER_SECOND : OAIF__V1__WINNER__WINNER_FIRST;
    Oaif__V1__EstimateRequest r = OAIF__V1__ESTIMATE_REQUEST__INIT;
    r.pair = &p;
    r.label = &l;
    len = oaif__v1__estimate_request__get_packed_size(&r);
    *out = malloc(len);
    if (!*out)
        die("out of memory");
    oaif__v1__estimate_request__pack(&r, *out);
    return len;
}

static void on_reply(void *ctx, const Oaif__V1__Reply *reply)
{
    int *ok = ctx;
    if (reply->outcome != OAIF__V1__OUTCOME__OUTCOME_OK) {
        fprintf(stderr, "bench_estimate: %s failed: %s\n", reply->id, reply->error);
        exit(1);
    }
    (*ok)++;
}

/* One pass: n requests of `svc` (ids and pair ids tagged `tag`), k in flight; its seconds. */
static double run_pass(bus_client_t *c, const char *svc, const char *tag, int first, int n, int k)
{
    int sent = 0, done = 0;
    double t0 = now_s();
    while (done < n) {
        while (sent < n && sent - done < k) {
            uint8_t *buf = NULL;
            size_t len = pack_pair(svc, tag, first + sent, &buf);
            char id[96];
            snprintf(id, sizeof id, "%s-%s-%d", svc, tag, first + sent);
            if (bus_client_submit(c, svc, id, buf, len, 0, 0))
                die("submit failed");
            free(buf);
            sent++;
        }
        if (bus_client_poll(c, 1000, on_reply, &done) < 0)
            die("poll failed");
    }
    return now_s() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse(&o, argc, argv)) {
        fprintf(stderr,
                "usage: bench_estimate [--pairs N] [--members M (<= %d)] [--repeats R "
                "(<= %d)] [--in-flight K (<= 64)] [--threads T] [--policy keep|flip]\n",
                MAX_MEMBERS, MAX_REPEATS);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    char load[128] = "unknown";
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fgets(load, sizeof load, la))
            load[strcspn(load, "\n")] = '\0';
        fclose(la);
    }
    printf("load at start (/proc/loadavg): %s; cores online: %ld; scorer threads %d\n", load,
           sysconf(_SC_NPROCESSORS_ONLN), o.threads);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/oaif-bench-estimate-XXXXXX");
    if (!mkdtemp(tmpdir))
        die("mkdtemp failed");
    atexit(cleanup);
    char store[300], ep[320], log_l[320], log_s[320], log_e[320], db[320];
    snprintf(store, sizeof store, "%s/checkpoints", tmpdir);
    snprintf(ep, sizeof ep, "%s/endpoints", tmpdir);
    snprintf(log_l, sizeof log_l, "%s/ledger.log", tmpdir);
    snprintf(log_s, sizeof log_s, "%s/scorer.log", tmpdir);
    snprintf(log_e, sizeof log_e, "%s/estimator.log", tmpdir);
    snprintf(db, sizeof db, "%s/db", tmpdir);
    mkdir(store, 0755);
    char *largv[] = {(char *)tp_bin("services/ledger/ledger"),
                     "--db",
                     db,
                     "--clients",
                     "tcp://127.0.0.1:*",
                     "--workers",
                     "tcp://127.0.0.1:*",
                     "--events",
                     "tcp://127.0.0.1:*",
                     "--lease",
                     "10m",
                     "--sync=false",
                     "--endpoints-file",
                     ep,
                     NULL};
    kids[0] = tp_spawn(largv, log_l);
    char cep[256], wep[256], eep[256];
    if (!tp_read_kv(ep, "clients", cep, sizeof cep, 10000) ||
        !tp_read_kv(ep, "workers", wep, sizeof wep, 1000) ||
        !tp_read_kv(ep, "events", eep, sizeof eep, 1000))
        die("the ledger did not start");
    void *zctx = zmq_ctx_new();
    bus_client_t *c = NULL;
    struct bus_client_opts co = {.endpoint = cep};
    if (!zctx || bus_client_new(&c, zctx, &co))
        die("cannot connect to the ledger");
    for (int k = 0; k < o.members; k++)
        publish_member(c, store, (uint32_t)k);
    char thr[16], mem[16];
    snprintf(thr, sizeof thr, "%d", o.threads);
    snprintf(mem, sizeof mem, "%d", o.members);
    char *sargv[] = {(char *)tp_bin("services/reward-scorer/reward-scorer"),
                     "--clients",
                     cep,
                     "--workers",
                     wep,
                     "--events",
                     eep,
                     "--checkpoint-dir",
                     store,
                     "--ensemble",
                     ENSEMBLE,
                     "--members",
                     mem,
                     "--threads",
                     thr,
                     "--credit",
                     "2",
                     NULL};
    kids[1] = tp_spawn(sargv, log_s);
    char *eargv[] = {(char *)tp_bin("services/strength-estimator/strength-estimator"),
                     "--clients",
                     cep,
                     "--workers",
                     wep,
                     "--events",
                     eep,
                     "--ensemble",
                     ENSEMBLE,
                     "--min-members",
                     mem,
                     "--policy",
                     (char *)o.policy,
                     "--flip-quantile",
                     "0.1",
                     "--min-sample",
                     "10",
                     "--credit",
                     "16",
                     NULL};
    kids[2] = tp_spawn(eargv, log_e);
    printf("ensemble '%s': %d members of the built-in policy's shape; %d pairs a pass, %d in "
           "flight; estimator policy %s (flip: bottom 0.1 by mu); ledger --sync=false\n\n",
           ENSEMBLE, o.members, o.pairs, o.in_flight, o.policy);

    /* warm-up: the scorer loads the members, the estimator reads them */
    run_pass(c, "estimate", "warm", 0, 20, 4);

    double ts[MAX_REPEATS], te[MAX_REPEATS], ls[20], le[20];
    for (int r = 0; r < o.repeats; r++) {
        char tag[32];
        snprintf(tag, sizeof tag, "p%d", r);
        ts[r] = o.pairs / run_pass(c, "score", tag, 0, o.pairs, o.in_flight);
        te[r] = o.pairs / run_pass(c, "estimate", tag, 0, o.pairs, o.in_flight);
    }
    for (int i = 0; i < 20; i++) {
        ls[i] = run_pass(c, "score", "alone", 1000 + i, 1, 1) * 1000;
        le[i] = run_pass(c, "estimate", "alone", 1000 + i, 1, 1) * 1000;
    }
    double ms = median(ts, o.repeats), me = median(te, o.repeats);
    printf("%-46s %8s %8s %8s %7s %12s\n", "pairs/s", "min", "median", "max", "ratio",
           "alone (ms)");
    printf("%-46s %8.1f %8.1f %8.1f %7.2f %12.2f\n", "score: the pair's two texts, every member",
           ts[0], ms, ts[o.repeats - 1], 1.0, median(ls, 20));
    printf("%-46s %8.1f %8.1f %8.1f %7.2f %12.2f\n", "estimate: score + mu, sigma, action, records",
           te[0], me, te[o.repeats - 1], me / ms, median(le, 20));
    printf("\nratio of medians (estimate / score): %.3f over %d repeats\n", me / ms, o.repeats);
    bus_client_destroy(&c);
    zmq_ctx_term(zctx);
    return 0;
}
