/* bench_score.c - texts per second of the `score` service (issue 13) next to the engine's raw
 * batched forward, in the same run, on the same texts. Not a test (not registered in ctest).
 *
 *   build/tests/bench/bench_score [--texts N] [--batch B] [--members M] [--repeats R]
 *                                 [--in-flight K] [--threads T]
 *
 * M reward members (default 4) of the built-in policy's shape (trainer_builtin_config in
 * services/trainer/policy.c: 2 layers, width 128, MLP 352, 8 heads of 16 with 4 KV heads, 256
 * positions, the byte tokenizer) with a reward head and random weights, written to a checkpoint
 * store and published in a real ledger as the REWARD checkpoints of ensemble "bench", members
 * 0 .. M-1. A real `reward-scorer` process (--members M, --threads T, --credit 2) serves them.
 * The N texts (default 256, 40 to 160 bytes) share one prompt; each pass scores all of them:
 *   engine   in this process: per batch of B texts, for each member, nn_model_reserve and
 *            nn_model_forward with logits off on the rows the scorer builds (the byte
 *            tokenizer's rendering of the default template, one space, the text, EOS), padded
 *            to the batch's longest row. Tokenizing is done before the clock starts.
 *   service  N / B ScoreRequests of B texts each through the ledger (--sync=false) by one bus
 *            client, K (default 4) in flight, until every reply is in; the replies' scores are
 *            checked against the engine's rewards of the same texts.
 * The two passes alternate R times (default 5): the machine may be shared. The table gives
 * texts/s min / median / max of each and the ratio of the medians (service / engine); the
 * target is 0.8 with 4 members. The engine threads (OpenMP, OpenBLAS) are T (default 2) in this
 * process and in the scorer. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
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
#include "tokenizer.h"

#define ENSEMBLE    "bench"
#define PROMPT      "What is 17 + 25? Explain the steps."
#define MAX_MEMBERS 16
#define MAX_REPEATS 100

static pid_t kids[2];
static char tmpdir[256];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void cleanup(void)
{
    for (int i = 0; i < 2; i++)
        if (kids[i] > 0)
            tp_stop(kids[i], SIGTERM);
    if (tmpdir[0] && !getenv("KEEP_LOGS")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_score: could not remove %s\n", tmpdir);
    }
}

static void on_signal(int sig)
{
    (void)sig;
    _exit(130); /* atexit does not run: the children die with their parent's socket */
}

static void die(const char *what)
{
    fprintf(stderr, "bench_score: %s\n", what);
    exit(1);
}

struct opts {
    int texts, batch, members, repeats, in_flight, threads;
};

static int parse(struct opts *o, int argc, char **argv)
{
    *o = (struct opts){
        .texts = 256, .batch = 32, .members = 4, .repeats = 5, .in_flight = 4, .threads = 2};
    for (int i = 1; i < argc; i++) {
        int *dst = NULL;
        if (!strcmp(argv[i], "--texts"))
            dst = &o->texts;
        else if (!strcmp(argv[i], "--batch"))
            dst = &o->batch;
        else if (!strcmp(argv[i], "--members"))
            dst = &o->members;
        else if (!strcmp(argv[i], "--repeats"))
            dst = &o->repeats;
        else if (!strcmp(argv[i], "--in-flight"))
            dst = &o->in_flight;
        else if (!strcmp(argv[i], "--threads"))
            dst = &o->threads;
        if (!dst || i + 1 >= argc)
            return -1;
        *dst = atoi(argv[++i]);
    }
    if (o->texts < 1 || o->texts > 100000 || o->batch < 1 || o->batch > 1024 || o->members < 1 ||
        o->members > MAX_MEMBERS || o->repeats < 1 || o->repeats > MAX_REPEATS ||
        o->in_flight < 1 || o->in_flight > 64 || o->threads < 1 || o->threads > 256)
        return -1;
    return 0;
}

/* The built-in policy's shape (services/trainer/policy.c, trainer_builtin_config) with a reward
 * head. */
static void member_config(struct nn_config *c)
{
    nn_config_default(c);
    c->hidden_size = 128;
    c->intermediate_size = 352;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 8;
    c->num_key_value_heads = 4;
    c->max_position_embeddings = 256;
    c->reward_head = true;
}

/* Text i: 40 to 160 bytes of words, different for every i. */
static char *make_text(int i)
{
    static const char *const words[] = {"the",   "answer", "is",    "forty", "two",  "because",
                                        "we",    "add",    "seven", "and",   "five", "then",
                                        "carry", "one",    "ten",   "so",    "sum",  "equals"};
    size_t want = 40 + (size_t)((i * 37) % 121), n = 0;
    char *s = malloc(want + 16);
    if (!s)
        die("out of memory");
    unsigned x = 2654435761u * (unsigned)(i + 1);
    n = (size_t)snprintf(s, want + 16, "%d:", i);
    while (n < want) {
        x = x * 1103515245u + 12345u;
        const char *w = words[(x >> 16) % (sizeof words / sizeof words[0])];
        size_t wl = strlen(w);
        if (n + 1 + wl > want)
            break;
        s[n++] = ' ';
        memcpy(s + n, w, wl);
        n += wl;
    }
    s[n] = '\0';
    return s;
}

/* ---- the members ------------------------------------------------------------------------- */

static void publish_member(bus_client_t *c, const char *store, uint32_t member, char *dir,
                           size_t dirlen, size_t *params)
{
    struct nn_config cfg;
    member_config(&cfg);
    nn_model_t *m = NULL;
    char err[512], file[PATH_MAX + 32], hex[65], id[128];
    if (nn_model_new(&m, &cfg, err, sizeof err))
        die(err);
    nn_model_init_random(m, 1000 + member, 0.02f);
    snprintf(dir, dirlen, "%s/reward-%s-m%u-v%06u", store, ENSEMBLE, member, 1u);
    if (nn_checkpoint_save(m, dir, err, sizeof err))
        die(err);
    *params = nn_model_num_params(m);
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

/* ---- engine: nn_model_forward alone ------------------------------------------------------- */

struct engine {
    int M, N, B, nb; /* members, texts, batch, batches */
    nn_model_t **m;  /* [M] */
    int **tokens;    /* [nb] of [Bj x T[j]] */
    int **lens;      /* [nb] of [Bj] */
    int *T, *Bj;     /* [nb] */
    double *rewards; /* [M x N] the engine's rewards, member-major */
};

/* The row the scorer builds for `text` with the byte tokenizer and the default template. */
static int *encode(const char *text, int *len)
{
    char head[512];
    snprintf(head, sizeof head, "Human: %s\n\nAssistant:%s", PROMPT,
             text[0] && text[0] != ' ' ? " " : "");
    size_t hl = strlen(head), tl = strlen(text);
    *len = (int)(hl + tl + 1);
    int *ids = malloc((size_t)*len * sizeof *ids);
    if (!ids)
        die("out of memory");
    for (size_t i = 0; i < hl; i++)
        ids[i] = (unsigned char)head[i];
    for (size_t i = 0; i < tl; i++)
        ids[hl + i] = (unsigned char)text[i];
    ids[*len - 1] = TOK_BYTE_EOS;
    return ids;
}

static void engine_setup(struct engine *e, const struct opts *o, char **texts, char dirs[][512])
{
    char err[512];
    memset(e, 0, sizeof *e);
    e->M = o->members;
    e->N = o->texts;
    e->B = o->batch;
    e->nb = (o->texts + o->batch - 1) / o->batch;
    e->m = calloc((size_t)e->M, sizeof(nn_model_t *));
    e->tokens = calloc((size_t)e->nb, sizeof *e->tokens);
    e->lens = calloc((size_t)e->nb, sizeof *e->lens);
    e->T = calloc((size_t)e->nb, sizeof *e->T);
    e->Bj = calloc((size_t)e->nb, sizeof *e->Bj);
    e->rewards = calloc((size_t)e->M * e->N, sizeof *e->rewards);
    if (!e->m || !e->tokens || !e->lens || !e->T || !e->Bj || !e->rewards)
        die("out of memory");
    for (int k = 0; k < e->M; k++)
        if (nn_checkpoint_load(&e->m[k], dirs[k], err, sizeof err))
            die(err);
    for (int j = 0; j < e->nb; j++) {
        int first = j * e->B, Bj = e->N - first < e->B ? e->N - first : e->B;
        int **rows = calloc((size_t)Bj, sizeof *rows);
        e->lens[j] = calloc((size_t)Bj, sizeof **e->lens);
        if (!rows || !e->lens[j])
            die("out of memory");
        int T = 1;
        for (int i = 0; i < Bj; i++) {
            rows[i] = encode(texts[first + i], &e->lens[j][i]);
            T = e->lens[j][i] > T ? e->lens[j][i] : T;
        }
        e->tokens[j] = calloc((size_t)Bj * T, sizeof **e->tokens);
        if (!e->tokens[j])
            die("out of memory");
        for (int i = 0; i < Bj; i++) {
            memcpy(e->tokens[j] + (size_t)i * T, rows[i], (size_t)e->lens[j][i] * sizeof(int));
            free(rows[i]);
        }
        free(rows);
        e->T[j] = T;
        e->Bj[j] = Bj;
    }
}

/* One pass over every text, every member; returns seconds. */
static double engine_run(struct engine *e)
{
    struct nn_fwd_opts fo = {.logits = false};
    double t0 = now_s();
    for (int j = 0; j < e->nb; j++) {
        struct nn_batch b = {
            .B = e->Bj[j], .T = e->T[j], .tokens = e->tokens[j], .lengths = e->lens[j]};
        for (int k = 0; k < e->M; k++) {
            int rc = nn_model_reserve(e->m[k], b.B, b.T, false);
            if (!rc)
                rc = nn_model_forward(e->m[k], &b, &fo);
            if (rc) {
                fprintf(stderr, "bench_score: nn_model_forward: %s\n", err_str(rc));
                exit(1);
            }
            const float *r = nn_model_rewards(e->m[k]);
            for (int i = 0; i < b.B; i++)
                e->rewards[(size_t)k * e->N + (size_t)j * e->B + i] = r[i];
        }
    }
    return now_s() - t0;
}

static void engine_free(struct engine *e)
{
    for (int k = 0; e->m && k < e->M; k++)
        nn_model_destroy(&e->m[k]);
    for (int j = 0; j < e->nb; j++) {
        free(e->tokens ? e->tokens[j] : NULL);
        free(e->lens ? e->lens[j] : NULL);
    }
    free(e->m);
    free(e->tokens);
    free(e->lens);
    free(e->T);
    free(e->Bj);
    free(e->rewards);
}

/* ---- the service -------------------------------------------------------------------------- */

struct service {
    bus_client_t *c;
    int nb, B, N, M;
    uint8_t **req;      /* [nb] packed ScoreRequests */
    size_t *req_len;    /* [nb] */
    const double *want; /* the engine's rewards [M x N] */
    /* one pass */
    int done, failed;
    double max_diff;
};

static void on_reply(void *ctx, const Oaif__V1__Reply *reply)
{
    struct service *s = ctx;
    s->done++;
    if (reply->outcome != OAIF__V1__OUTCOME__OUTCOME_OK) {
        fprintf(stderr, "bench_score: request %s failed: %s\n", reply->id, reply->error);
        s->failed++;
        return;
    }
    const char *dash = strrchr(reply->id, '-');
    int j = dash ? atoi(dash + 1) : -1;
    Oaif__V1__ScoreReply *r =
        oaif__v1__score_reply__unpack(NULL, reply->payload.len, reply->payload.data);
    if (!r || j < 0 || j >= s->nb) {
        fprintf(stderr, "bench_score: request %s: not a ScoreReply\n", reply->id);
        s->failed++;
        if (r)
            oaif__v1__score_reply__free_unpacked(r, NULL);
        return;
    }
    int first = j * s->B, Bj = s->N - first < s->B ? s->N - first : s->B;
    if (r->n_scores != (size_t)s->M * Bj) {
        fprintf(stderr, "bench_score: request %s: %zu scores, want %d\n", reply->id, r->n_scores,
                s->M * Bj);
        s->failed++;
    } else {
        for (int k = 0; k < s->M; k++)
            for (int i = 0; i < Bj; i++) {
                double d =
                    fabs(r->scores[(size_t)k * Bj + i] - s->want[(size_t)k * s->N + first + i]);
                s->max_diff = d > s->max_diff ? d : s->max_diff;
            }
    }
    oaif__v1__score_reply__free_unpacked(r, NULL);
}

/* One pass: every batch as a request, k in flight; returns seconds. */
static double service_run(struct service *s, int pass, int k)
{
    char id[64];
    int next = 0;
    s->done = 0;
    double t0 = now_s();
    while (s->done < s->nb) {
        while (next < s->nb && next - s->done < k) {
            snprintf(id, sizeof id, "bench-%ld-p%d-%d", (long)getpid(), pass, next);
            if (bus_client_submit(s->c, "score", id, s->req[next], s->req_len[next], 0, 0))
                die("bus_client_submit failed");
            next++;
        }
        int rc = bus_client_poll(s->c, 1000, on_reply, s);
        if (rc < 0)
            die("bus_client_poll failed");
    }
    return now_s() - t0;
}

/* The first request waits until the scorer has every member in memory. */
static void service_warm(struct service *s)
{
    char id[64];
    for (int attempt = 0; attempt < 120; attempt++) {
        snprintf(id, sizeof id, "bench-%ld-warm%d-0", (long)getpid(), attempt);
        Oaif__V1__Envelope *env = NULL;
        int rc = bus_client_call(s->c, "score", id, s->req[0], s->req_len[0], 60000, &env);
        if (rc)
            die("the warm-up request got no reply");
        bool ok = env->reply->outcome == OAIF__V1__OUTCOME__OUTCOME_OK;
        if (!ok && attempt % 10 == 9)
            fprintf(stderr, "bench_score: warm-up: %s\n", env->reply->error);
        oaif__v1__envelope__free_unpacked(env, NULL);
        if (ok)
            return;
        usleep(250000);
    }
    die("the scorer never answered the warm-up request");
}

/* ---- the table ---------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse(&o, argc, argv)) {
        fprintf(stderr,
                "usage: bench_score [--texts N] [--batch B (<= 1024)] [--members M (<= %d)] "
                "[--repeats R (<= %d)] [--in-flight K (<= 64)] [--threads T]\n",
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
    omp_set_num_threads(o.threads);
    openblas_set_num_threads(o.threads);
    const char *ct = getenv("OPENBLAS_CORETYPE"), *wp = getenv("OMP_WAIT_POLICY");
    printf("BLAS: %s\n", openblas_get_config());
    printf("OpenBLAS core: %s (OPENBLAS_CORETYPE %s)\n", openblas_get_corename(),
           ct ? ct : "default");
    printf("OMP threads: %d (this process and the scorer); OMP_WAIT_POLICY %s\n", o.threads,
           wp ? wp : "unset");
    printf("load at start (/proc/loadavg): %s; cores online: %ld\n", load,
           sysconf(_SC_NPROCESSORS_ONLN));

    snprintf(tmpdir, sizeof tmpdir, "/tmp/oaif-bench-score-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    char store[300], ep[320], log_l[320], log_s[320], db[320];
    snprintf(store, sizeof store, "%s/checkpoints", tmpdir);
    snprintf(ep, sizeof ep, "%s/endpoints", tmpdir);
    snprintf(log_l, sizeof log_l, "%s/ledger.log", tmpdir);
    snprintf(log_s, sizeof log_s, "%s/scorer.log", tmpdir);
    snprintf(db, sizeof db, "%s/db", tmpdir);
    mkdir(store, 0755);

    /* the ledger */
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
        !tp_read_kv(ep, "events", eep, sizeof eep, 1000)) {
        fprintf(stderr, "bench_score: the ledger did not start (see %s)\n", log_l);
        return 1;
    }
    void *zctx = zmq_ctx_new();
    bus_client_t *c = NULL;
    struct bus_client_opts co = {.endpoint = cep};
    if (!zctx || bus_client_new(&c, zctx, &co))
        die("cannot connect to the ledger");

    /* the members, published before the scorer starts */
    static char dirs[MAX_MEMBERS][512];
    size_t params = 0;
    for (int k = 0; k < o.members; k++)
        publish_member(c, store, (uint32_t)k, dirs[k], sizeof dirs[k], &params);
    printf("members: %d x the built-in policy's shape with a reward head (%zu parameters each, "
           "random weights)\n",
           o.members, params);

    /* the scorer */
    char thr[16], mem[16], maxt[16];
    snprintf(thr, sizeof thr, "%d", o.threads);
    snprintf(mem, sizeof mem, "%d", o.members);
    snprintf(maxt, sizeof maxt, "%d", o.batch);
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
                     "--max-texts",
                     maxt,
                     "--credit",
                     "2",
                     NULL};
    kids[1] = tp_spawn(sargv, log_s);

    /* the texts, the engine's rows, the requests */
    char **texts = calloc((size_t)o.texts, sizeof *texts);
    if (!texts)
        die("out of memory");
    size_t bytes = 0;
    for (int i = 0; i < o.texts; i++) {
        texts[i] = make_text(i);
        bytes += strlen(texts[i]);
    }
    struct engine e;
    engine_setup(&e, &o, texts, dirs);
    struct service s = {.c = c, .nb = e.nb, .B = o.batch, .N = o.texts, .M = o.members};
    s.req = calloc((size_t)s.nb, sizeof *s.req);
    s.req_len = calloc((size_t)s.nb, sizeof *s.req_len);
    if (!s.req || !s.req_len)
        die("out of memory");
    for (int j = 0; j < s.nb; j++) {
        Oaif__V1__ScoreRequest r = OAIF__V1__SCORE_REQUEST__INIT;
        r.prompt = PROMPT;
        r.texts = texts + (size_t)j * o.batch;
        r.n_texts = (size_t)e.Bj[j];
        s.req_len[j] = oaif__v1__score_request__get_packed_size(&r);
        s.req[j] = malloc(s.req_len[j]);
        if (!s.req[j])
            die("out of memory");
        oaif__v1__score_request__pack(&r, s.req[j]);
    }
    s.want = e.rewards;
    printf("ensemble '%s': %d members; %d texts (%.0f bytes on average, one prompt), %d "
           "requests of %d texts, %d in flight; scorer credit 2; ledger --sync=false\n\n",
           ENSEMBLE, o.members, o.texts, (double)bytes / o.texts, s.nb, o.batch, o.in_flight);

    /* warm-up: one engine pass; the first request waits for the scorer to load the members */
    engine_run(&e);
    service_warm(&s);

    double te[MAX_REPEATS] = {0}, ts[MAX_REPEATS] = {0};
    int failed = 0;
    double max_diff = 0;
    for (int k = 0; k < o.repeats; k++) {
        te[k] = o.texts / engine_run(&e);
        s.failed = 0;
        s.max_diff = 0;
        ts[k] = o.texts / service_run(&s, k, o.in_flight);
        failed += s.failed;
        max_diff = s.max_diff > max_diff ? s.max_diff : max_diff;
    }
    double me = median(te, o.repeats), ms = median(ts, o.repeats);
    printf("%-52s %9s %9s %9s %7s\n", "texts/s (all members)", "min", "median", "max", "ratio");
    printf("%-52s %9.1f %9.1f %9.1f %7.2f\n", "engine: nn_model_forward, logits off (raw)", te[0],
           me, te[o.repeats - 1], 1.0);
    printf("%-52s %9.1f %9.1f %9.1f %7.2f\n", "service: ScoreRequests via the ledger", ts[0], ms,
           ts[o.repeats - 1], ms / me);
    printf("\nratio of medians (service / engine): %.3f (target >= 0.8 with 4 members) over %d "
           "repeats\n",
           ms / me, o.repeats);
    printf("service vs engine rewards: max |difference| %.3g; %d failed requests\n", max_diff,
           failed);

    for (int j = 0; j < s.nb; j++)
        free(s.req[j]);
    free(s.req);
    free(s.req_len);
    engine_free(&e);
    for (int i = 0; i < o.texts; i++)
        free(texts[i]);
    free(texts);
    bus_client_destroy(&c);
    zmq_ctx_term(zctx);
    return failed || max_diff > 1e-4 ? 1 : 0;
}
