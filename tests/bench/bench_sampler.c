/* bench_sampler.c - responses per second of the `sample` service next to the engine's raw
 * batched decoding, in the same run, on the same work. Not a test (not registered in ctest).
 *
 *   build/tests/bench_sampler [--threads N] [--repeat N] [--prompts P] [--n N] [--max-new T]
 *                             [--sync]
 *
 * The built-in model shape (nn_config_default: 4 layers, width 128, vocabulary 259 bytes,
 * 256 positions) with random weights, written as checkpoint version 0 and published in a real
 * ledger. One request is P prompts x n responses (default 32 x 2), temperature 1, top-p 1,
 * max-new new tokens (128), the same seed every time, so the three rows do the same decoding
 * (the bench checks they generate the same number of tokens):
 *   engine    nn_sample on the P x n rows (the templated prompts), in this process
 *   library   sampler_run in this process: the engine call (nn_sample_logp: the responses'
 *             log-probs from the decoder's logits, no second forward), decoding the texts,
 *             building and packing the reply and pair records
 *   service   a SampleRequest through the ledger to a `sampler` process and back, the pair
 *             records committed with the reply (the ledger runs with --sync=false unless --sync)
 * Each is the best of --repeat runs (3), interleaved: the machine may be shared. The overhead
 * ratio is service time / engine time. The engine threads (OpenMP, OpenBLAS) are --threads
 * (2) in this process and in the sampler. */
#include <cblas.h>
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
#include "sample.h"
#include "sampler.h"
#include "sampler_opts.h"
#include "testproc.h"
#include "tokenizer.h"

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
            fprintf(stderr, "bench_sampler: could not remove %s\n", tmpdir);
    }
}

static void on_signal(int sig)
{
    (void)sig;
    _exit(130); /* atexit does not run: the children die with their parent's socket */
}

struct opts {
    int threads, repeat, prompts, n, max_new;
    bool sync;
};

/* The P prompts of every request. */
static char texts[256][64];
static Oaif__V1__Prompt pbuf[256];
static Oaif__V1__Prompt *pptr[256];

static void make_request(const struct opts *o, Oaif__V1__SampleRequest *r,
                         Oaif__V1__SamplingParams *sp)
{
    for (int i = 0; i < o->prompts; i++) {
        snprintf(texts[i], sizeof texts[i], "What is %d + %d?", 17 * i + 3, 29 * i + 11);
        oaif__v1__prompt__init(&pbuf[i]);
        pbuf[i].id = texts[i];
        pbuf[i].text = texts[i];
        pptr[i] = &pbuf[i];
    }
    oaif__v1__sampling_params__init(sp);
    sp->n = (uint32_t)o->n;
    sp->temperature = 1.0f;
    sp->top_p = 1.0f;
    sp->max_new_tokens = (uint32_t)o->max_new;
    sp->seed = 1234;
    oaif__v1__sample_request__init(r);
    r->prompts = pptr;
    r->n_prompts = (size_t)o->prompts;
    r->sampling = sp;
}

/* ---- engine: nn_sample alone --------------------------------------------------------------- */

struct engine {
    int prompts;
    nn_model_t *m;
    tok_t *tok;
    int B, N;
    int **ids;
    int *plen_p;
    const int **rows;
    int *plen, *gen, *ntok, *fin;
};

static void engine_free(struct engine *e);

/* The model, the tokenizer and the rows of one request; -1 (everything freed) on failure. */
static int engine_setup(struct engine *e, const struct opts *o, const char *dir)
{
    char err[512];
    memset(e, 0, sizeof *e);
    if (nn_checkpoint_load(&e->m, dir, err, sizeof err)) {
        fprintf(stderr, "bench_sampler: %s\n", err);
        return -1;
    }
    e->prompts = o->prompts;
    e->tok = tok_new_byte();
    e->B = o->prompts * o->n;
    e->N = o->max_new;
    e->ids = calloc((size_t)o->prompts, sizeof *e->ids);
    e->plen_p = calloc((size_t)o->prompts, sizeof *e->plen_p);
    e->rows = calloc((size_t)e->B, sizeof *e->rows);
    e->plen = calloc((size_t)e->B, sizeof *e->plen);
    e->gen = malloc((size_t)e->B * e->N * sizeof *e->gen);
    e->ntok = calloc((size_t)e->B, sizeof *e->ntok);
    e->fin = calloc((size_t)e->B, sizeof *e->fin);
    if (!e->tok || !e->ids || !e->plen_p || !e->rows || !e->plen || !e->gen || !e->ntok ||
        !e->fin) {
        engine_free(e);
        return -1;
    }
    for (int i = 0; i < o->prompts; i++) {
        size_t n = 0;
        if (tok_encode_prompt(e->tok, texts[i], 0, &e->ids[i], &n, err, sizeof err)) {
            engine_free(e);
            return -1;
        }
        e->plen_p[i] = (int)n;
    }
    for (int b = 0; b < e->B; b++) {
        e->rows[b] = e->ids[b / o->n];
        e->plen[b] = e->plen_p[b / o->n];
    }
    return 0;
}

static const char *tb(void *ctx, int id, size_t *len)
{
    return tok_token_bytes(ctx, id, len);
}

/* One engine call as the sampler makes it; returns seconds, *tokens generated. */
static double engine_run(struct engine *e, uint64_t *tokens)
{
    struct nn_sample_opts so = {.temperature = 1.0f,
                                .top_k = 0,
                                .top_p = 1.0f,
                                .seed = 1234,
                                .max_new_tokens = e->N,
                                .eos_token_id = TOK_BYTE_EOS,
                                .token_bytes = tb,
                                .token_ctx = e->tok};
    double t0 = now_s();
    int rc = nn_sample(e->m, e->B, e->rows, e->plen, &so, e->gen, e->ntok, e->fin);
    double t = now_s() - t0;
    if (rc) {
        fprintf(stderr, "bench_sampler: nn_sample: %s\n", err_str(rc));
        exit(1);
    }
    *tokens = 0;
    for (int b = 0; b < e->B; b++)
        *tokens += (uint64_t)e->ntok[b];
    return t;
}

static void engine_free(struct engine *e)
{
    for (int i = 0; e->ids && i < e->prompts; i++)
        free(e->ids[i]);
    free(e->ids);
    free(e->plen_p);
    free(e->rows);
    free(e->plen);
    free(e->gen);
    free(e->ntok);
    free(e->fin);
    tok_destroy(&e->tok);
    nn_model_destroy(&e->m);
}

/* ---- the service ----------------------------------------------------------------------------- */

static double service_run(bus_client_t *c, const uint8_t *buf, size_t len, int k, uint64_t *tokens,
                          uint32_t *version)
{
    char id[64];
    snprintf(id, sizeof id, "bench-%d-%ld", k, (long)getpid());
    Oaif__V1__Envelope *env = NULL;
    double t0 = now_s();
    int rc = bus_client_call(c, "sample", id, buf, len, 600000, &env);
    double t = now_s() - t0;
    if (rc || env->reply->outcome != OAIF__V1__OUTCOME__OUTCOME_OK) {
        fprintf(stderr, "bench_sampler: request %s: %s\n", id,
                rc ? err_str(rc) : env->reply->error);
        exit(1);
    }
    Oaif__V1__SampleReply *r =
        oaif__v1__sample_reply__unpack(NULL, env->reply->payload.len, env->reply->payload.data);
    if (!r) {
        fprintf(stderr, "bench_sampler: the reply is not a SampleReply\n");
        exit(1);
    }
    *tokens = 0;
    for (size_t i = 0; i < r->n_pairs; i++)
        for (size_t j = 0; j < r->pairs[i]->n_responses; j++)
            *tokens += r->pairs[i]->responses[j]->num_tokens;
    *version = r->policy_version;
    oaif__v1__sample_reply__free_unpacked(r, NULL);
    oaif__v1__envelope__free_unpacked(env, NULL);
    return t;
}

static int parse(struct opts *o, int argc, char **argv)
{
    *o = (struct opts){.threads = 2, .repeat = 3, .prompts = 32, .n = 2, .max_new = 128};
    for (int i = 1; i < argc; i++) {
        int *dst = NULL;
        if (!strcmp(argv[i], "--threads"))
            dst = &o->threads;
        else if (!strcmp(argv[i], "--repeat"))
            dst = &o->repeat;
        else if (!strcmp(argv[i], "--prompts"))
            dst = &o->prompts;
        else if (!strcmp(argv[i], "--n"))
            dst = &o->n;
        else if (!strcmp(argv[i], "--max-new"))
            dst = &o->max_new;
        else if (!strcmp(argv[i], "--sync")) {
            o->sync = true;
            continue;
        }
        if (!dst || i + 1 >= argc)
            return -1;
        *dst = atoi(argv[++i]);
    }
    if (o->threads < 1 || o->repeat < 1 || o->prompts < 1 || o->prompts > 256 || o->n < 1 ||
        o->n > 16 || o->prompts * o->n > 512 || o->max_new < 1 || o->max_new > 200)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse(&o, argc, argv)) {
        fprintf(stderr, "usage: bench_sampler [--threads N] [--repeat N] [--prompts P (<= 256)] "
                        "[--n N (<= 16)] [--max-new T (<= 200)] [--sync]\n");
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    char thr[16];
    snprintf(thr, sizeof thr, "%d", o.threads);
    omp_set_num_threads(o.threads);
    openblas_set_num_threads(o.threads);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("BLAS: %s\n", openblas_get_config());
    printf("OpenBLAS core: %s (OPENBLAS_CORETYPE %s)\n", openblas_get_corename(),
           ct ? ct : "unset: detected from the CPU");
    printf("threads: %d (this process and the sampler); ledger sync %s\n", o.threads,
           o.sync ? "on" : "off");

    snprintf(tmpdir, sizeof tmpdir, "/tmp/oaif-bench-sampler-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    char store[300], dir[512], err[512], ep[320], log_l[320], log_s[320], db[320];
    snprintf(store, sizeof store, "%s/checkpoints", tmpdir);
    snprintf(ep, sizeof ep, "%s/endpoints", tmpdir);
    snprintf(log_l, sizeof log_l, "%s/ledger.log", tmpdir);
    snprintf(log_s, sizeof log_s, "%s/sampler.log", tmpdir);
    snprintf(db, sizeof db, "%s/db", tmpdir);
    mkdir(store, 0755);
    struct nn_config cfg;
    nn_config_default(&cfg);
    nn_model_t *m = NULL;
    if (nn_model_new(&m, &cfg, err, sizeof err)) {
        fprintf(stderr, "bench_sampler: %s\n", err);
        return 1;
    }
    nn_model_init_random(m, 1, 0.02f);
    ckpt_dir(dir, sizeof dir, store, OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT, 0);
    if (nn_checkpoint_save(m, dir, err, sizeof err)) {
        fprintf(stderr, "bench_sampler: %s\n", err);
        return 1;
    }
    printf("model: nn_config_default (%zu parameters, random weights); %d prompts x %d "
           "responses, %d new tokens at most, temperature 1\n\n",
           nn_model_num_params(m), o.prompts, o.n, o.max_new);
    nn_model_destroy(&m);

    /* the ledger and the sampler */
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
                     o.sync ? "--sync=true" : "--sync=false",
                     "--endpoints-file",
                     ep,
                     NULL};
    kids[0] = tp_spawn(largv, log_l);
    char cep[256], wep[256], eep[256];
    if (!tp_read_kv(ep, "clients", cep, sizeof cep, 10000) ||
        !tp_read_kv(ep, "workers", wep, sizeof wep, 1000) ||
        !tp_read_kv(ep, "events", eep, sizeof eep, 1000)) {
        fprintf(stderr, "bench_sampler: the ledger did not start (see %s)\n", log_l);
        return 1;
    }
    char *sargv[] = {(char *)tp_bin("services/sampler/sampler"),
                     "--clients",
                     cep,
                     "--workers",
                     wep,
                     "--events",
                     eep,
                     "--checkpoint-dir",
                     store,
                     "--threads",
                     thr,
                     "--max-new-tokens-limit",
                     "1024",
                     NULL};
    kids[1] = tp_spawn(sargv, log_s);
    void *zctx = zmq_ctx_new();
    bus_client_t *c = NULL;
    struct bus_client_opts co = {.endpoint = cep};
    if (bus_client_new(&c, zctx, &co)) {
        fprintf(stderr, "bench_sampler: cannot connect to the ledger\n");
        return 1;
    }
    char file[600], hex[65];
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    ckpt_file_sha256(file, hex, err, sizeof err);
    Oaif__V1__Checkpoint ck = OAIF__V1__CHECKPOINT__INIT;
    ck.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT;
    ck.version = 0;
    ck.path = dir;
    ck.sha256 = hex;
    if (ckpt_publish(c, &ck, 10000)) {
        fprintf(stderr, "bench_sampler: cannot publish the checkpoint\n");
        return 1;
    }

    Oaif__V1__SampleRequest req;
    Oaif__V1__SamplingParams sp;
    make_request(&o, &req, &sp);
    size_t len = oaif__v1__sample_request__get_packed_size(&req);
    uint8_t *buf = malloc(len);
    oaif__v1__sample_request__pack(&req, buf);

    struct engine e;
    if (engine_setup(&e, &o, dir)) {
        fprintf(stderr, "bench_sampler: engine setup failed\n");
        return 1;
    }
    struct sampler_config sc; /* the service's defaults, on this store */
    if (sampler_config_defaults(&sc)) {
        fprintf(stderr, "bench_sampler: out of memory\n");
        return 1;
    }
    free(sc.checkpoint_dir);
    sc.checkpoint_dir = strdup(store);
    sampler_t *lib = NULL;
    int lib_rc = sc.checkpoint_dir ? sampler_new(&lib, &sc, err, sizeof err) : ERR_NOMEM;
    sampler_config_release(&sc); /* the sampler keeps copies */
    if (lib_rc || sampler_load(lib, 0, NULL, hex, err, sizeof err)) {
        fprintf(stderr, "bench_sampler: %s\n", lib_rc == ERR_NOMEM ? "out of memory" : err);
        return 1;
    }

    /* warm-up: the first service request also waits for the sampler to load version 0 */
    uint64_t tok_e = 0, tok_l = 0, tok_s = 0, tk;
    uint32_t version = 0;
    engine_run(&e, &tok_e);
    service_run(c, buf, len, -1, &tok_s, &version);

    double best_e = 1e30, best_l = 1e30, best_s = 1e30, best_gen = 0, best_score = 0;
    for (int k = 0; k < o.repeat; k++) {
        double t = engine_run(&e, &tk);
        best_e = t < best_e ? t : best_e;
        tok_e = tk;
        struct sampler_result *r = NULL;
        double t0 = now_s();
        int rc = sampler_run(lib, "bench-lib", &req, 0, &r, err, sizeof err);
        t = now_s() - t0;
        if (rc) {
            fprintf(stderr, "bench_sampler: sampler_run: %s\n", err);
            return 1;
        }
        if (t < best_l) {
            best_l = t;
            best_gen = r->gen_seconds;
            best_score = r->score_seconds;
        }
        tok_l = r->tokens;
        sampler_result_free(&r);
        t = service_run(c, buf, len, k, &tk, &version);
        best_s = t < best_s ? t : best_s;
        tok_s = tk;
    }
    double R = (double)o.prompts * o.n;
    printf("%-46s %10s %12s %11s %7s\n", "", "s/request", "responses/s", "tokens/s", "ratio");
    printf("%-46s %10.3f %12.1f %11.0f %7.2f\n", "engine: nn_sample (raw batched decoding)", best_e,
           R / best_e, (double)tok_e / best_e, 1.0);
    printf("%-46s %10.3f %12.1f %11.0f %7.2f\n", "library: sampler_run (+ texts, reply)", best_l,
           R / best_l, (double)tok_l / best_l, best_l / best_e);
    printf("%-46s %10.3f %12.1f %11.0f %7.2f\n", "service: SampleRequest via the ledger", best_s,
           R / best_s, (double)tok_s / best_s, best_s / best_e);
    printf("\nlibrary time: generation %.3f s, scoring %.3f s, the rest %.3f s\n", best_gen,
           best_score, best_l - best_gen - best_score);
    printf("service overhead ratio (service / engine): %.2f\n", best_s / best_e);
    printf("tokens per request: engine %llu, library %llu, service %llu (policy version %u)%s\n",
           (unsigned long long)tok_e, (unsigned long long)tok_l, (unsigned long long)tok_s, version,
           tok_e == tok_l && tok_l == tok_s ? "" : "  MISMATCH: not the same work");

    free(buf);
    sampler_destroy(&lib);
    engine_free(&e);
    bus_client_destroy(&c);
    zmq_ctx_term(zctx);
    return tok_e == tok_l && tok_l == tok_s ? 0 : 1;
}
