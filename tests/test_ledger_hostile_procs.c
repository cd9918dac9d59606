/* test_ledger_hostile_procs - the ledger binary against a hostile peer: raw ZeroMQ sockets that
 * send what oaif's own client never would (ids with NUL bytes or control characters, bytes that
 * are not UTF-8, results for requests leased to someone else, a Get of ten million ids, garbage
 * in bulk, a Ready whose name holds a terminal escape), next to real echo workers and clients.
 * Each case failed on the ledger before the checks in common/buscheck.c and ledger.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "buf.h"
#include "busclient.h"
#include "busworker.h"
#include "err.h"
#include "testproc.h"
#include "tpmetrics.h"

struct fx {
    char dir[256], log[300], ep_file[300];
    char cep[256], wep[256], mport[16];
    pid_t ledger, workers[4];
    int nworkers;
    void *zctx;
    bus_client_t *c;
    void *raw[4];
    int nraw;
};

/* ---- protobuf by hand: what a hostile peer can put on the wire ----------------------------- */

struct pb {
    uint8_t *b;
    size_t n, cap;
};

static void pb_raw(struct pb *p, const void *d, size_t n)
{
    if (p->n + n > p->cap) {
        p->cap = (p->n + n) * 2 + 64;
        p->b = realloc(p->b, p->cap);
        assert_non_null(p->b);
    }
    memcpy(p->b + p->n, d, n);
    p->n += n;
}

static void pb_varint(struct pb *p, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_raw(p, t, n);
}

static void pb_uint(struct pb *p, unsigned field, uint64_t v)
{
    pb_varint(p, (uint64_t)field << 3);
    pb_varint(p, v);
}

static void pb_bytes(struct pb *p, unsigned field, const void *d, size_t n)
{
    pb_varint(p, (uint64_t)field << 3 | 2);
    pb_varint(p, n);
    pb_raw(p, d, n);
}

static void pb_msg(struct pb *p, unsigned field, struct pb *m)
{
    pb_bytes(p, field, m->b, m->n);
    free(m->b);
    *m = (struct pb){0};
}

/* Envelope{version 1, corr, body field `body` = m}; m is consumed. */
static struct pb envelope(uint64_t corr, unsigned body, struct pb *m)
{
    struct pb e = {0};
    pb_uint(&e, 1, 1);
    pb_uint(&e, 2, corr);
    pb_msg(&e, body, m);
    return e;
}

/* Submit (body 10) with an id of `idlen` raw bytes. */
static struct pb submit(uint64_t corr, const char *id, size_t idlen, const char *service,
                        const char *payload)
{
    struct pb s = {0};
    pb_bytes(&s, 1, id, idlen);
    pb_bytes(&s, 2, service, strlen(service));
    pb_bytes(&s, 3, payload, strlen(payload));
    return envelope(corr, 10, &s);
}

/* ---- fixture -------------------------------------------------------------------------------- */

static void start_ledger(struct fx *f, const char *const *extra)
{
    char db[300];
    snprintf(db, sizeof db, "%s/db", f->dir);
    char *argv[40] = {(char *)tp_bin("services/ledger/ledger"),
                      "--db",
                      db,
                      "--clients",
                      "tcp://127.0.0.1:0",
                      "--workers",
                      "tcp://127.0.0.1:0",
                      "--events",
                      "",
                      "--heartbeat",
                      "1s",
                      "--lease",
                      "10s",
                      "--endpoints-file",
                      f->ep_file,
                      "--metrics-port",
                      "0"};
    int n = 17;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    f->ledger = tp_spawn(argv, f->log);
    assert_true(f->ledger > 0);
    assert_true(tp_read_kv(f->ep_file, "clients", f->cep, sizeof f->cep, 10000));
    assert_true(tp_read_kv(f->ep_file, "workers", f->wep, sizeof f->wep, 1000));
    assert_true(tp_read_kv(f->ep_file, "metrics_port", f->mport, sizeof f->mport, 1000));
    struct bus_client_opts o = {.endpoint = f->cep, .resend_ms = 300, .reannounce_ms = 500};
    assert_int_equal(bus_client_new(&f->c, f->zctx, &o), ERR_OK);
}

static void start_worker(struct fx *f, const char *const *extra)
{
    char *argv[24] = {(char *)tp_bin("tests/echo_worker"), "--endpoint", f->wep};
    int n = 3;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    pid_t p = tp_spawn(argv, f->log);
    assert_true(p > 0);
    f->workers[f->nworkers++] = p;
}

/* A bare DEALER on an endpoint: it sends whatever bytes it is given. */
static void *raw_socket(struct fx *f, const char *ep)
{
    void *s = zmq_socket(f->zctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(s, ep), 0);
    f->raw[f->nraw++] = s;
    return s;
}

static void raw_send(void *s, struct pb *e)
{
    assert_true(zmq_send(s, e->b, e->n, 0) == (int)e->n);
    free(e->b);
    *e = (struct pb){0};
}

/* The next envelope on s with body `body` (others, heartbeats and disconnects, are skipped), or
 * NULL after timeout_ms. */
static Oaif__V1__Envelope *raw_recv(void *s, int body, int timeout_ms)
{
    uint64_t end = bus_mono_ms() + (uint64_t)timeout_ms;
    while (bus_mono_ms() < end) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, (int)(end - bus_mono_ms())) <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) {
            zmq_msg_close(&m);
            continue;
        }
        Oaif__V1__Envelope *e =
            oaif__v1__envelope__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        if (e && (int)e->body_case == body)
            return e;
        if (e)
            oaif__v1__envelope__free_unpacked(e, NULL);
    }
    return NULL;
}

/* Send e on s and expect an Error with `code` echoing `corr` whose message holds `says`. */
static void expect_error(void *s, struct pb e, uint64_t corr, int code, const char *says)
{
    raw_send(s, &e);
    Oaif__V1__Envelope *r = raw_recv(s, OAIF__V1__ENVELOPE__BODY_ERROR, 5000);
    if (!r)
        fail_msg("no Error (expected one saying '%s')", says);
    if ((int)r->error->code != code || r->corr != corr || !strstr(r->error->message, says))
        fail_msg("Error code %d corr %llu '%s'; expected code %d corr %llu saying '%s'",
                 (int)r->error->code, (unsigned long long)r->corr, r->error->message, code,
                 (unsigned long long)corr, says);
    oaif__v1__envelope__free_unpacked(r, NULL);
}

static long http_get(struct fx *f, const char *path, buf_t *b)
{
    return tp_http_get(atoi(f->mport), path, b);
}

/* The services' log, read whole (NUL-terminated; free it). */
static char *read_log(struct fx *f, size_t *len)
{
    FILE *fp = fopen(f->log, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    size_t got = fread(s, 1, (size_t)n, fp);
    s[got] = '\0';
    fclose(fp);
    *len = got;
    return s;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-hostile-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->log, sizeof f->log, "%s/log", f->dir);
    snprintf(f->ep_file, sizeof f->ep_file, "%s/endpoints", f->dir);
    f->zctx = zmq_ctx_new();
    tp_watchdog(60, "ledger_hostile_procs", f->log);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tp_watchdog(0, NULL, NULL);
    for (int i = 0; i < f->nraw; i++)
        zmq_close(f->raw[i]);
    bus_client_destroy(&f->c);
    for (int i = 0; i < f->nworkers; i++)
        tp_stop(f->workers[i], SIGTERM);
    if (f->ledger > 0)
        tp_stop(f->ledger, SIGTERM);
    zmq_ctx_term(f->zctx);
    /* Under -fsanitize the ledger and the workers report into the log: a finding fails the test. */
    int rc = 0;
    size_t n = 0;
    FILE *lf = fopen(f->log, "rb");
    if (lf) {
        fclose(lf);
        char *log = read_log(f, &n);
        if (strstr(log, "Sanitizer") || strstr(log, "runtime error:")) {
            fprintf(stderr, "a sanitizer reported in a child process:\n");
            tp_log_tail(f->log, 12000);
            rc = -1;
        }
        free(log);
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return rc;
}

/* Waits for the reply to `id` (submitted with bus_client_submit); returns its envelope. */
struct got {
    const char *id;
    char payload[64], error[512];
    int outcome, n;
};

static void on_reply(void *ctx, const Oaif__V1__Reply *r)
{
    struct got *g = ctx;
    if (strcmp(r->id, g->id) != 0)
        return;
    snprintf(g->payload, sizeof g->payload, "%.*s", (int)r->payload.len, r->payload.data);
    snprintf(g->error, sizeof g->error, "%s", r->error ? r->error : "");
    g->outcome = (int)r->outcome;
    g->n++;
}

static void wait_reply(struct fx *f, struct got *g, int timeout_ms)
{
    uint64_t end = bus_mono_ms() + (uint64_t)timeout_ms;
    while (!g->n && bus_mono_ms() < end)
        bus_client_poll(f->c, 100, on_reply, g);
    if (!g->n)
        fail_msg("no reply to %s in %d ms", g->id, timeout_ms);
}

/* ---- ids ------------------------------------------------------------------------------------ */

/* Two ids that differ after a NUL byte used to be one request: the second caller got the first
 * one's answer. Ids that are not printable UTF-8 were stored, and made answers undecodable. */
static void test_ids_are_printable_utf8_bytes(void **state)
{
    struct fx *f = *state;
    start_ledger(f, NULL);
    start_worker(f, (const char *const[]){"--credit", "4", NULL});
    void *s = raw_socket(f, f->cep);
    expect_error(s, submit(11, "nul-A\0tail1", 11, "echo", "first"), 11,
                 OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, "is NUL");
    expect_error(s, submit(12, "nul-A\0tail2", 11, "echo", "second"), 12,
                 OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, "is NUL");
    expect_error(s, submit(13, "\xff\xfe-id", 5, "echo", "x"), 13,
                 OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, "UTF-8");
    expect_error(s, submit(14, "line\nbreak", 10, "echo", "x"), 14,
                 OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, "control character");
    expect_error(s, submit(15, "\x1b[31mred", 8, "echo", "x"), 15,
                 OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, "control character");
    expect_error(s, submit(16, "c1-\xc2\x9b", 5, "echo", "x"), 16,
                 OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, "control character");
    char longid[300];
    memset(longid, 'a', sizeof longid);
    expect_error(s, submit(17, longid, sizeof longid, "echo", "x"), 17,
                 OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, "over the limit of 256");
    expect_error(s, submit(18, "put/p1", 6, "echo", "x"), 18,
                 OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, "put/");
    /* A record id cut inside a UTF-8 sequence, in a Put; an id with NUL in a Get. */
    struct pb rec = {0}, put = {0}, get = {0};
    pb_uint(&rec, 1, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT);
    pb_bytes(&rec, 2, "rec\xc3", 4);
    pb_bytes(&rec, 3, "d", 1);
    pb_bytes(&put, 1, "p-utf8", 6);
    pb_msg(&put, 2, &rec);
    expect_error(s, envelope(19, 11, &put), 19, OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, "UTF-8");
    pb_uint(&get, 1, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT);
    pb_bytes(&get, 2, "x\0y", 3);
    expect_error(s, envelope(20, 12, &get), 20, OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, "is NUL");

    /* The id the NUL would have cut to is its own request, answered with its own payload. */
    Oaif__V1__Envelope *ans = NULL;
    assert_int_equal(bus_client_call(f->c, "echo", "nul-A", "third", 5, 10000, &ans), ERR_OK);
    assert_int_equal(ans->reply->payload.len, 5);
    assert_memory_equal(ans->reply->payload.data, "third", 5);
    oaif__v1__envelope__free_unpacked(ans, NULL);
    /* oaif's own client refuses such ids before sending, with the same reason. */
    assert_int_equal(bus_client_submit(f->c, "echo", "tab\there", "x", 1, 0, 0), ERR_INVAL);
    assert_non_null(strstr(bus_client_last_error(f->c), "control character"));
    /* Scans of the kind stay decodable. */
    assert_int_equal(
        bus_client_scan(f->c, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT, 0, 100, 5000, &ans),
        ERR_OK);
    assert_int_equal(ans->records->n_records, 0);
    oaif__v1__envelope__free_unpacked(ans, NULL);
}

/* ---- forged results ------------------------------------------------------------------------- */

static struct pb forged_result(const char *id, const char *payload)
{
    struct pb rec = {0}, res = {0};
    pb_uint(&rec, 1, OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL);
    pb_bytes(&rec, 2, id, strlen(id));
    pb_bytes(&rec, 3, payload, strlen(payload));
    pb_bytes(&res, 1, id, strlen(id));
    pb_uint(&res, 2, 1);
    pb_bytes(&res, 3, payload, strlen(payload));
    pb_msg(&res, 6, &rec);
    return envelope(0, 32, &res);
}

static int lookup_phase(struct fx *f, const char *id)
{
    Oaif__V1__Envelope *ans = NULL;
    const char *ids[] = {id};
    int rc = bus_client_lookup(f->c, ids, 1, 3000, &ans);
    if (rc != ERR_OK) {
        fprintf(stderr, "lookup: %s %s\n", err_str(rc), bus_client_last_error(f->c));
        return -1;
    }
    int ph = ans->records->n_requests ? (int)ans->records->requests[0]->phase : -1;
    oaif__v1__envelope__free_unpacked(ans, NULL);
    return ph;
}

/* Anyone who reached the workers socket could answer a request leased to another worker: its
 * caller got the forged reply and its records were overwritten. */
static void test_results_only_from_the_lessee(void **state)
{
    struct fx *f = *state;
    start_ledger(f, NULL);
    start_worker(f, (const char *const[]){"--delay-ms", "1500", "--record", "3", NULL});
    assert_int_equal(bus_client_submit(f->c, "echo", "victim", "real", 4, 0, 0), ERR_OK);
    struct got g = {.id = "victim"};
    uint64_t end = bus_mono_ms() + 5000;
    while (lookup_phase(f, "victim") != OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_LEASED &&
           bus_mono_ms() < end)
        bus_client_poll(f->c, 20, on_reply, &g); /* sends the submit when connected */
    assert_int_equal(lookup_phase(f, "victim"), OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_LEASED);

    /* A socket that never said Ready. */
    void *stranger = raw_socket(f, f->wep);
    expect_error(stranger, forged_result("victim", "forged"), 0,
                 OAIF__V1__ERROR_CODE__ERROR_CODE_DENIED, "holds no lease");
    /* A registered worker of the same service that holds no lease on it. */
    void *peer = raw_socket(f, f->wep);
    struct pb ready = {0};
    pb_bytes(&ready, 1, "echo", 4);
    pb_uint(&ready, 2, 1);
    pb_bytes(&ready, 3, "peer", 4);
    struct pb e = envelope(0, 30, &ready);
    raw_send(peer, &e);
    usleep(100 * 1000);
    expect_error(peer, forged_result("victim", "forged"), 0,
                 OAIF__V1__ERROR_CODE__ERROR_CODE_DENIED, "holds no lease");

    wait_reply(f, &g, 10000);
    if (g.outcome != OAIF__V1__OUTCOME__OUTCOME_OK)
        fail_msg("victim: outcome %d: %s", g.outcome, g.error);
    assert_string_equal(g.payload, "real");
    Oaif__V1__Envelope *ans = NULL;
    const char *ids[] = {"victim"};
    assert_int_equal(
        bus_client_get(f->c, OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, ids, 1, 3000, &ans), ERR_OK);
    assert_int_equal(ans->records->n_records, 1);
    assert_memory_equal(ans->records->records[0]->data.data, "real", 4);
    oaif__v1__envelope__free_unpacked(ans, NULL);
    size_t n;
    char *log = read_log(f, &n);
    assert_non_null(strstr(log, "holds no lease on it"));
    free(log);
}

/* A DEALER with CURVE key `key` (server_key set) and routing id `rid`, as a hostile peer that
 * learned a worker's routing id would make one. */
static void *raw_curve_socket(struct fx *f, const char *ep, const struct bus_curve *key,
                              const char *rid)
{
    void *s = zmq_socket(f->zctx, ZMQ_DEALER);
    assert_int_equal(bus_setup_socket(s, false, ZMQ_DEALER, 0, key), ERR_OK);
    assert_int_equal(zmq_setsockopt(s, ZMQ_ROUTING_ID, rid, strlen(rid)), 0);
    assert_int_equal(zmq_connect(s, ep), 0);
    f->raw[f->nraw++] = s;
    return s;
}

/* With CURVE a worker is its key: another allowed key that takes over the worker's routing id
 * (the workers socket hands a routing id over to its newest connection) is refused. */
static void test_curve_binds_worker_to_key(void **state)
{
    struct fx *f = *state;
    struct bus_curve server, a, b, caller;
    char dir[300], path[400], err[256], server_key[400], server_pub[420];
    assert_int_equal(bus_curve_generate(&server), ERR_OK);
    assert_int_equal(bus_curve_generate(&a), ERR_OK);
    assert_int_equal(bus_curve_generate(&b), ERR_OK);
    assert_int_equal(bus_curve_generate(&caller), ERR_OK);
    snprintf(dir, sizeof dir, "%s/allow", f->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(server_key, sizeof server_key, "%s/server.key", f->dir);
    assert_int_equal(bus_curve_save(&server, server_key, err, sizeof err), ERR_OK);
    snprintf(server_pub, sizeof server_pub, "%s.pub", server_key);
    const struct bus_curve *allowed[] = {&a, &b, &caller};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/k%d.key", dir, i);
        assert_int_equal(bus_curve_save(allowed[i], path, err, sizeof err), ERR_OK);
    }
    memcpy(a.server_key, server.public_key, 41);
    memcpy(b.server_key, server.public_key, 41);
    memcpy(caller.server_key, server.public_key, 41);
    start_ledger(f,
                 (const char *const[]){"--curve-secret", server_key, "--curve-allow", dir, NULL});
    bus_client_destroy(&f->c);
    struct bus_client_opts o = {
        .endpoint = f->cep, .curve = &caller, .resend_ms = 300, .reannounce_ms = 500};
    assert_int_equal(bus_client_new(&f->c, f->zctx, &o), ERR_OK);

    void *wa = raw_curve_socket(f, f->wep, &a, "wk-1");
    struct pb ready = {0};
    pb_bytes(&ready, 1, "echo", 4);
    pb_uint(&ready, 2, 1);
    pb_bytes(&ready, 3, "a", 1);
    struct pb e = envelope(0, 30, &ready);
    raw_send(wa, &e);
    struct got g = {.id = "cv"};
    assert_int_equal(bus_client_submit(f->c, "echo", "cv", "real", 4, 0, 0), ERR_OK);
    Oaif__V1__Envelope *req = NULL;
    uint64_t end = bus_mono_ms() + 10000;
    while (!req && bus_mono_ms() < end) {
        bus_client_poll(f->c, 20, on_reply, &g);
        req = raw_recv(wa, OAIF__V1__ENVELOPE__BODY_REQUEST, 50);
    }
    assert_non_null(req); /* key a holds the lease, under routing id wk-1 */
    oaif__v1__envelope__free_unpacked(req, NULL);

    void *wb = raw_curve_socket(f, f->wep, &b, "wk-1");
    expect_error(wb, forged_result("cv", "forged"), 0, OAIF__V1__ERROR_CODE__ERROR_CODE_DENIED,
                 "another key");
    bus_client_poll(f->c, 500, on_reply, &g);
    assert_int_equal(g.n, 0);
    size_t n;
    char *log = read_log(f, &n);
    assert_non_null(strstr(log, "from another CURVE key refused"));
    free(log);
}

/* A worker of a known service attaches only its service's kinds (common/kinds.c): a "sample"
 * worker that writes a checkpoint record fails its attempt instead of storing it. */
static void test_worker_writes_only_its_kinds(void **state)
{
    struct fx *f = *state;
    start_ledger(f, NULL);
    start_worker(f, (const char *const[]){"--service", "sample", "--record", "6", NULL});
    assert_int_equal(bus_client_submit(f->c, "sample", "k1", "x", 1, 0, 1), ERR_OK);
    struct got g = {.id = "k1"};
    wait_reply(f, &g, 10000);
    assert_int_equal(g.outcome, OAIF__V1__OUTCOME__OUTCOME_FAILED);
    assert_non_null(strstr(g.error, "does not write checkpoints records"));
    Oaif__V1__Envelope *ans = NULL;
    const char *ids[] = {"k1"};
    assert_int_equal(
        bus_client_get(f->c, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT, ids, 1, 3000, &ans),
        ERR_OK);
    assert_int_equal(ans->records->n_records, 0);
    oaif__v1__envelope__free_unpacked(ans, NULL);
}

/* ---- one message's work ---------------------------------------------------------------------- */

/* A Get of ten million empty ids (a 20 MB frame) held the loop for 11 s: /healthz said 503 and a
 * healthy worker was declared dead. Now it is refused before it is unpacked. */
static void test_huge_messages_refused_fast(void **state)
{
    struct fx *f = *state;
    start_ledger(f, (const char *const[]){"--max-record", "4096", NULL});
    void *s = raw_socket(f, f->cep);
    struct pb get = {0};
    pb_uint(&get, 1, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT);
    for (int i = 0; i < 10000000; i++)
        pb_raw(&get, "\x12\x00", 2);
    uint64_t t0 = bus_mono_ms();
    expect_error(s, envelope(31, 12, &get), 31, OAIF__V1__ERROR_CODE__ERROR_CODE_TOO_BIG,
                 "more than 100000 elements");
    uint64_t ms = bus_mono_ms() - t0;
    fprintf(stderr, "a Get of 10,000,000 empty ids refused in %llu ms\n", (unsigned long long)ms);
    assert_true(ms < 3000);
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(http_get(f, "/healthz", &b), 200);
    buf_free(&b);
    /* Under the wire bound, the ledger's own caps, each with an Error naming the limit. */
    struct pb g2 = {0};
    pb_uint(&g2, 1, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT);
    for (int i = 0; i < 10001; i++)
        pb_bytes(&g2, 2, "a", 1);
    expect_error(s, envelope(32, 12, &g2), 32, OAIF__V1__ERROR_CODE__ERROR_CODE_TOO_BIG,
                 "over the limit of 10000");
    char big[5000];
    memset(big, 'x', sizeof big);
    Oaif__V1__Record r = OAIF__V1__RECORD__INIT, *rp = &r;
    r.kind = OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT;
    r.id = "big";
    r.data.data = (uint8_t *)big;
    r.data.len = sizeof big;
    assert_int_equal(bus_client_put(f->c, "put-big", &rp, 1, false, 3000), ERR_REMOTE);
    assert_non_null(strstr(bus_client_last_error(f->c), "over the limit of 4096"));
    /* A client's own lease and attempts are cut to the ledger's limits. */
    assert_int_equal(bus_client_submit(f->c, "nobody", "greedy", "x", 1, 1000000000u, 1000),
                     ERR_OK);
    Oaif__V1__Envelope *ans = NULL;
    const char *ids[] = {"greedy"};
    uint64_t end = bus_mono_ms() + 5000;
    do {
        if (ans)
            oaif__v1__envelope__free_unpacked(ans, NULL);
        ans = NULL;
        bus_client_poll(f->c, 50, NULL, NULL);
        assert_int_equal(bus_client_lookup(f->c, ids, 1, 3000, &ans), ERR_OK);
    } while (!ans->records->n_requests && bus_mono_ms() < end);
    assert_int_equal(ans->records->n_requests, 1);
    assert_int_equal(ans->records->requests[0]->max_attempts, 20);
    assert_int_equal(ans->records->requests[0]->lease_ms, 3600000);
    oaif__v1__envelope__free_unpacked(ans, NULL);
}

/* ---- logs and metrics --------------------------------------------------------------------------
 */

/* 20,000 garbage frames wrote 2.9 MB of log; 5,000 service names pushed /metrics to 1.4 MB; a
 * Ready name with a newline and an ANSI escape went raw into the log. */
static void test_logs_and_metrics_stay_bounded(void **state)
{
    struct fx *f = *state;
    start_ledger(f, NULL);
    void *s = raw_socket(f, f->cep);
    for (int i = 0; i < 3000; i++)
        assert_true(zmq_send(s, "\xff\xff garbage", 10, 0) == 10);
    size_t got = 0;
    uint64_t end = bus_mono_ms() + 10000;
    while (got < 3000 && bus_mono_ms() < end) {
        Oaif__V1__Envelope *e = raw_recv(s, OAIF__V1__ENVELOPE__BODY_ERROR, 1000);
        if (e)
            got++;
        if (e)
            oaif__v1__envelope__free_unpacked(e, NULL);
    }
    assert_int_equal(got, 3000);

    void *w = raw_socket(f, f->wep);
    struct pb ready = {0};
    pb_bytes(&ready, 1, "echo", 4);
    pb_uint(&ready, 2, 1);
    pb_bytes(&ready, 3, "evil\n\x1b[31mname", 14);
    struct pb e = envelope(0, 30, &ready);
    raw_send(w, &e);
    usleep(200 * 1000);

    int refused = 0;
    for (int i = 0; i < 300; i++) {
        char svc[32], id[32];
        snprintf(svc, sizeof svc, "svc-%d", i);
        snprintf(id, sizeof id, "many-%d", i);
        assert_int_equal(bus_client_submit(f->c, svc, id, "x", 1, 0, 0), ERR_OK);
    }
    end = bus_mono_ms() + 5000;
    while (refused < 300 - 255 && bus_mono_ms() < end) {
        int n = bus_client_poll(f->c, 100, NULL, NULL);
        if (n > 0)
            refused += n;
    }
    assert_int_equal(refused, 300 - 255); /* "echo" from the Ready is the 256th service */
    assert_non_null(strstr(bus_client_last_error(f->c), "services a ledger serves"));

    usleep(800 * 1000); /* the ledger renews its series every 500 ms */
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(http_get(f, "/metrics", &b), 200);
    size_t series = count(b.data, "oaif_ledger_queued{");
    fprintf(stderr, "/metrics with 300 service names asked for: %zu bytes, %zu services\n", b.len,
            series);
    assert_int_equal(series, 256);
    assert_true(b.len < 300000);
    buf_free(&b);

    size_t n;
    char *log = read_log(f, &n);
    assert_true(count(log, "sent a bad message") <= 2);
    assert_null(memchr(log, 0x1b, n));
    assert_non_null(strstr(log, "evil\\x0a\\x1b[31mname"));
    free(log);
}

/* ---- judges -----------------------------------------------------------------------------------
 */

/* Three annotator-proxies with three judges on one ledger shared the "annotate" service: one run
 * got labels from two judges. A worker announces its variant; the ledger refuses another one. */
static void test_one_service_one_judge(void **state)
{
    struct fx *f = *state;
    start_ledger(f, NULL);
    bus_worker_t *a = NULL, *b = NULL, *a2 = NULL;
    struct bus_worker_opts o = {.endpoint = f->wep,
                                .service = "annotate",
                                .credit = 1,
                                .heartbeat_ms = 200,
                                .variant = "openai/judge-a 1f2e"};
    assert_int_equal(bus_worker_new(&a, f->zctx, &o), ERR_OK);
    struct bus_req *r = NULL;
    assert_int_equal(bus_worker_recv(a, 300, &r), ERR_TIMEOUT);
    o.variant = "openai/judge-b 77aa";
    assert_int_equal(bus_worker_new(&b, f->zctx, &o), ERR_OK);
    assert_int_equal(bus_worker_recv(b, 3000, &r), ERR_REMOTE);
    assert_non_null(strstr(bus_worker_refusal(b), "openai/judge-a 1f2e"));
    o.variant = "openai/judge-a 1f2e";
    assert_int_equal(bus_worker_new(&a2, f->zctx, &o), ERR_OK);
    assert_int_equal(bus_worker_recv(a2, 300, &r), ERR_TIMEOUT);
    assert_string_equal(bus_worker_refusal(a2), "");
    bus_worker_destroy(&a);
    bus_worker_destroy(&b);
    bus_worker_destroy(&a2);
}

/* The same through the real annotator-proxy: a second proxy whose judge differs (another label
 * noise) stops with the ledger's refusal instead of serving "annotate" beside the first. */
static void test_second_judge_proxy_stops(void **state)
{
    struct fx *f = *state;
    start_ledger(f, NULL);
    char *a[] = {(char *)tp_bin("services/annotator-proxy/annotator-proxy"),
                 "--clients",
                 f->cep,
                 "--workers",
                 f->wep,
                 "--backend",
                 "rules",
                 "--noise",
                 "0",
                 NULL};
    pid_t first = tp_spawn(a, f->log);
    assert_true(first > 0);
    f->workers[f->nworkers++] = first;
    usleep(500 * 1000);
    a[8] = "0.2";
    pid_t second = tp_spawn(a, f->log);
    assert_true(second > 0);
    char st[128];
    uint64_t end = bus_mono_ms() + 10000;
    while (!tp_state(second, st, sizeof st) && bus_mono_ms() < end)
        usleep(20 * 1000);
    assert_non_null(tp_state(second, st, sizeof st));
    assert_int_not_equal(tp_stop(second, SIGKILL), 0);
    assert_true(tp_alive(first));
    size_t n;
    char *log = read_log(f, &n);
    assert_non_null(strstr(log, "the ledger refused this worker"));
    assert_non_null(strstr(log, "rules/noise=0/"));
    free(log);
}

/* A ledger that answers every query with a Records whose record id is not UTF-8, as a store
 * written before the check would. */
static void *bad_answerer(void *arg)
{
    void *router = arg;
    uint8_t rid[256];
    int n = zmq_recv(router, rid, sizeof rid, 0);
    zmq_msg_t q;
    zmq_msg_init(&q);
    if (n > 0 && zmq_msg_recv(&q, router, 0) >= 0) {
        Oaif__V1__Envelope *e =
            oaif__v1__envelope__unpack(NULL, zmq_msg_size(&q), zmq_msg_data(&q));
        struct pb rec = {0}, recs = {0};
        pb_uint(&rec, 1, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT);
        pb_bytes(&rec, 2, "old-\xff", 5);
        pb_msg(&recs, 1, &rec);
        struct pb ans = envelope(e ? e->corr : 0, 22, &recs);
        zmq_send(router, rid, (size_t)n, ZMQ_SNDMORE);
        zmq_send(router, ans.b, ans.n, 0);
        free(ans.b);
        if (e)
            oaif__v1__envelope__free_unpacked(e, NULL);
    }
    zmq_msg_close(&q);
    return NULL;
}

/* oaif's client says at once that its answer is undecodable, instead of asking again until its
 * deadline (oaif export of a kind with such a record looked like a ledger that never answers). */
static void test_client_names_an_undecodable_answer(void **state)
{
    struct fx *f = *state;
    void *router = zmq_socket(f->zctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(router, "tcp://127.0.0.1:*"), 0);
    char ep[128];
    size_t len = sizeof ep;
    zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &len);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bad_answerer, router), 0);
    struct bus_client_opts o = {.endpoint = ep};
    assert_int_equal(bus_client_new(&f->c, f->zctx, &o), ERR_OK);
    Oaif__V1__Envelope *ans = NULL;
    uint64_t t0 = bus_mono_ms();
    assert_int_equal(
        bus_client_scan(f->c, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT, 0, 10, 10000, &ans),
        ERR_PROTO);
    assert_true(bus_mono_ms() - t0 < 5000);
    assert_non_null(strstr(bus_client_last_error(f->c), "records.records[0].id"));
    assert_non_null(strstr(bus_client_last_error(f->c), "UTF-8"));
    pthread_join(t, NULL);
    zmq_close(router);
}

/* ---- configuration ----------------------------------------------------------------------------
 */

static int run_ledger_expecting_failure(struct fx *f, const char *const *args, char **log)
{
    char db[300];
    snprintf(db, sizeof db, "%s/db", f->dir);
    char *argv[24] = {(char *)tp_bin("services/ledger/ledger"), "--db", db};
    int n = 3;
    for (int i = 0; args[i]; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    FILE *lf = fopen(f->log, "w"); /* this run's lines only */
    if (lf)
        fclose(lf);
    pid_t p = tp_spawn(argv, f->log);
    assert_true(p > 0);
    char st[128];
    uint64_t end = bus_mono_ms() + 10000;
    while (!tp_state(p, st, sizeof st) && bus_mono_ms() < end)
        usleep(20 * 1000);
    int status = tp_stop(p, SIGKILL);
    size_t len;
    *log = read_log(f, &len);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A typo in the shared bus section was ignored (the service waited on the default endpoint);
 * tcp://127.0.0.1:70000 bound port 4464 and :-1 bound 65535. */
static void test_bus_config_is_checked(void **state)
{
    struct fx *f = *state;
    char cfg[400];
    snprintf(cfg, sizeof cfg, "%s/run.yaml", f->dir);
    FILE *fp = fopen(cfg, "w");
    assert_non_null(fp);
    fputs("bus:\n  clients_endpoint: tcp://127.0.0.1:5555\n  workers_endpont: "
          "tcp://127.0.0.1:5556\n",
          fp);
    fclose(fp);
    char *log = NULL;
    assert_int_not_equal(
        run_ledger_expecting_failure(f, (const char *const[]){"--config", cfg, NULL}, &log), 0);
    assert_non_null(strstr(log, "run.yaml:3:3: bus.workers_endpont: unknown option"));
    assert_non_null(strstr(log, "did you mean 'bus.workers_endpoint'"));
    free(log);
    static const char *const bad[] = {"tcp://127.0.0.1:70000", "tcp://127.0.0.1:-1"};
    for (int i = 0; i < 2; i++) {
        assert_int_not_equal(
            run_ledger_expecting_failure(f, (const char *const[]){"--clients", bad[i], NULL}, &log),
            0);
        assert_non_null(strstr(log, "--clients"));
        assert_non_null(strstr(log, "PORT a number from 0 to 65535"));
        free(log);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ids_are_printable_utf8_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results_only_from_the_lessee, setup, teardown),
        cmocka_unit_test_setup_teardown(test_curve_binds_worker_to_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_writes_only_its_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_messages_refused_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logs_and_metrics_stay_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_service_one_judge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_judge_proxy_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_names_an_undecodable_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bus_config_is_checked, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    return rc;
}
