/* rmfixture.c - see rmfixture.h. */
#include "rmfixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <zmq.h>

#include "busclient.h"
#include "checkpoint.h"
#include "err.h"
#include "model.h"
#include "testproc.h"

static void start_ledger(struct rmfx *f)
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

void rmfx_tiny_model(const char *dir, int positions, uint64_t seed, float std)
{
    struct nn_config c;
    nn_config_default(&c);
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.max_position_embeddings = positions;
    nn_model_t *m = NULL;
    char err[256];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, seed, std);
    assert_int_equal(nn_checkpoint_save(m, dir, err, sizeof err), ERR_OK);
    nn_model_destroy(&m);
}

/* A tiny random model: what matters in these tests is the machinery. */
static void make_init(struct rmfx *f)
{
    rmfx_tiny_model(f->init, 48, 11, 0.05f);
}

struct rmfx *rmfx_open(const char *name, int watchdog_s)
{
    struct rmfx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-%s-XXXXXX", name);
    if (!mkdtemp(f->dir)) {
        free(f);
        return NULL;
    }
    snprintf(f->log, sizeof f->log, "%s/log", f->dir);
    snprintf(f->ep, sizeof f->ep, "%s/endpoints", f->dir);
    snprintf(f->ckpt, sizeof f->ckpt, "%s/ckpt", f->dir);
    snprintf(f->init, sizeof f->init, "%s/sft", f->dir);
    setenv("OMP_NUM_THREADS", "1", 1);
    f->zctx = zmq_ctx_new();
    make_init(f);
    start_ledger(f);
    setenv("BUS_CLIENTS_ENDPOINT", f->cep, 1);
    tp_watchdog(watchdog_s, name, f->log);
    return f;
}

int rmfx_close(struct rmfx *f)
{
    int rc = 0;
    if (f->ledger > 0)
        tp_stop(f->ledger, SIGTERM);
    zmq_ctx_term(f->zctx);
    if (!getenv("KEEP_LOGS")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
        if (system(cmd) != 0)
            rc = -1;
    } else {
        fprintf(stderr, "logs kept in %s\n", f->dir);
    }
    free(f);
    tp_watchdog(0, NULL, NULL);
    return rc;
}

void rmfx_pack(Oaif__V1__Record *rec, uint8_t **buf, Oaif__V1__RecordKind kind, const char *id,
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

void rmfx_put(struct rmfx *f, const char *cid, Oaif__V1__Record *rec, uint8_t **bufs, size_t n)
{
    Oaif__V1__Record **rp = calloc(n, sizeof *rp);
    assert_non_null(rp);
    for (size_t i = 0; i < n; i++)
        rp[i] = &rec[i];
    struct bus_client_opts o = {.endpoint = f->cep};
    bus_client_t *c = NULL;
    assert_int_equal(bus_client_new(&c, f->zctx, &o), ERR_OK);
    assert_int_equal(bus_client_put(c, cid, rp, n, true, 10000), ERR_OK);
    bus_client_destroy(&c);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    free(rp);
}

static int run_oaif(char *out, size_t len, const char *args, const char *redirect)
{
    char cmd[3000];
    int n = snprintf(cmd, sizeof cmd, "%s %s%s", tp_bin("services/oaif/oaif"), args, redirect);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, len - 1, p);
    out[got] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int rmfx_oaif(char *out, size_t len, const char *args)
{
    return run_oaif(out, len, args, " 2>&1");
}

int rmfx_oaif_stdout(char *out, size_t len, const char *args)
{
    return run_oaif(out, len, args, "");
}
