/* test_ledger - the ledger in-process (a thread running ledger_poll) with the real client and
 * worker libraries over loopback TCP: request life cycle, idempotency, leases, dead letters,
 * records, bad input, and recovery from the store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "busclient.h"
#include "busopts.h"
#include "busworker.h"
#include "err.h"
#include "ledger.h"

struct fixture {
    char dir[256];
    void *zctx;
    ledger_t *l;
    pthread_t thread;
    atomic_int stop;
    struct ledger_config cfg;
    bus_client_t *clients[4]; /* closed by teardown, so a failed assertion cannot leak them */
    bus_worker_t *workers[4];
    int nc, nw;
    void *subs[2]; /* closed by teardown: an open socket would hang zmq_ctx_term after a failure */
};

static void *ledger_thread(void *arg)
{
    struct fixture *f = arg;
    while (!atomic_load(&f->stop)) {
        int rc = ledger_poll(f->l, 20);
        if (rc && rc != ERR_INTR && rc != ERR_TIMEOUT)
            break;
    }
    return NULL;
}

static void start_ledger(struct fixture *f)
{
    assert_int_equal(ledger_new(&f->l, &f->cfg, f->zctx), ERR_OK);
    atomic_store(&f->stop, 0);
    assert_int_equal(pthread_create(&f->thread, NULL, ledger_thread, f), 0);
}

static void stop_ledger(struct fixture *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->thread, NULL);
    ledger_destroy(&f->l);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-ledger-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->zctx = zmq_ctx_new();
    char db[300];
    snprintf(db, sizeof db, "%s/db", f->dir);
    if (ledger_config_defaults(&f->cfg) || ledger_config_set(&f->cfg.db_path, db) ||
        ledger_config_set(&f->cfg.client_bind, "tcp://127.0.0.1:*") ||
        ledger_config_set(&f->cfg.worker_bind, "tcp://127.0.0.1:*") ||
        ledger_config_set(&f->cfg.events_bind, "tcp://127.0.0.1:*"))
        return -1;
    f->cfg.heartbeat_ms = 200;
    f->cfg.max_request = 1 << 20;
    start_ledger(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < f->nc; i++)
        bus_client_destroy(&f->clients[i]);
    for (int i = 0; i < f->nw; i++)
        bus_worker_destroy(&f->workers[i]);
    for (int i = 0; i < 2; i++)
        if (f->subs[i])
            zmq_close(f->subs[i]);
    stop_ledger(f);
    zmq_ctx_term(f->zctx);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    ledger_config_release(&f->cfg);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static bus_client_t *client(struct fixture *f)
{
    struct bus_client_opts o = {
        .endpoint = ledger_client_endpoint(f->l), .resend_ms = 300, .reannounce_ms = 300};
    bus_client_t *c = NULL;
    assert_int_equal(bus_client_new(&c, f->zctx, &o), ERR_OK);
    f->clients[f->nc++] = c;
    /* ZMQ_IMMEDIATE drops what is sent before the connection is up: let it come up. */
    bus_client_poll(c, 150, NULL, NULL);
    return c;
}

static bus_worker_t *worker(struct fixture *f, const char *service, unsigned credit)
{
    struct bus_worker_opts o = {.endpoint = ledger_worker_endpoint(f->l),
                                .service = service,
                                .credit = credit,
                                .heartbeat_ms = 200};
    bus_worker_t *w = NULL;
    assert_int_equal(bus_worker_new(&w, f->zctx, &o), ERR_OK);
    f->workers[f->nw++] = w;
    return w;
}

struct got {
    int n;
    char id[8][64];
    int outcome[8];
    char payload[8][64];
    char error[8][256];
    unsigned attempts[8];
};

static void on_reply(void *ctx, const Oaif__V1__Reply *r)
{
    struct got *g = ctx;
    if (g->n >= 8)
        return;
    snprintf(g->id[g->n], 64, "%s", r->id);
    g->outcome[g->n] = r->outcome;
    snprintf(g->payload[g->n], 64, "%.*s", (int)r->payload.len, (const char *)r->payload.data);
    snprintf(g->error[g->n], 256, "%s", r->error ? r->error : "");
    g->attempts[g->n] = r->attempts;
    g->n++;
}

static void wait_replies(bus_client_t *c, struct got *g, int n, int timeout_ms)
{
    int waited = 0;
    while (g->n < n && waited < timeout_ms) {
        bus_client_poll(c, 50, on_reply, g);
        waited += 50;
    }
    assert_int_equal(g->n, n);
}

static Oaif__V1__ServiceStatus *find_service(Oaif__V1__Status *st, const char *name)
{
    for (size_t i = 0; i < st->n_services; i++)
        if (!strcmp(st->services[i]->name, name))
            return st->services[i];
    return NULL;
}

static void test_submit_is_leased_and_answered(void **state)
{
    struct fixture *f = *state;
    bus_worker_t *w = worker(f, "echo", 1);
    bus_client_t *c = client(f);
    assert_int_equal(bus_client_submit(c, "echo", "r1", "hello", 5, 0, 0), ERR_OK);
    struct bus_req *r = NULL;
    assert_int_equal(bus_worker_recv(w, 3000, &r), ERR_OK);
    assert_string_equal(r->id, "r1");
    assert_int_equal(r->attempt, 1);
    assert_memory_equal(r->payload, "hello", 5);
    assert_int_equal(bus_worker_reply(w, r->id, "HELLO", 5, NULL, 0), ERR_OK);
    bus_req_free(&r);
    struct got g = {0};
    wait_replies(c, &g, 1, 3000);
    assert_string_equal(g.id[0], "r1");
    assert_int_equal(g.outcome[0], OAIF__V1__OUTCOME__OUTCOME_OK);
    assert_string_equal(g.payload[0], "HELLO");
    assert_int_equal(bus_client_pending(c), 0);
}

static void test_repeated_id_runs_once_and_answers_twice(void **state)
{
    struct fixture *f = *state;
    bus_worker_t *w = worker(f, "echo", 1);
    bus_client_t *c1 = client(f), *c2 = client(f);
    assert_int_equal(bus_client_submit(c1, "echo", "same", "x", 1, 0, 0), ERR_OK);
    struct bus_req *r = NULL;
    assert_int_equal(bus_worker_recv(w, 3000, &r), ERR_OK);
    bus_worker_reply(w, r->id, "y", 1, NULL, 0);
    bus_req_free(&r);
    struct got g1 = {0}, g2 = {0};
    wait_replies(c1, &g1, 1, 3000);
    /* A second client, same id: the stored reply, and no second run. */
    assert_int_equal(bus_client_submit(c2, "echo", "same", "different payload", 17, 0, 0), ERR_OK);
    wait_replies(c2, &g2, 1, 3000);
    assert_string_equal(g2.payload[0], "y");
    assert_int_equal(g2.attempts[0], 1);
    assert_int_equal(bus_worker_recv(w, 500, &r), ERR_TIMEOUT);
}

static void test_expired_lease_is_redelivered(void **state)
{
    struct fixture *f = *state;
    bus_worker_t *w = worker(f, "echo", 1);
    bus_client_t *c = client(f);
    assert_int_equal(bus_client_submit(c, "echo", "slow", "p", 1, 200, 3), ERR_OK);
    struct bus_req *r = NULL;
    assert_int_equal(bus_worker_recv(w, 3000, &r), ERR_OK);
    assert_int_equal(r->attempt, 1);
    bus_req_free(&r); /* never answered: the lease runs out */
    assert_int_equal(bus_worker_recv(w, 3000, &r), ERR_OK);
    assert_int_equal(r->attempt, 2);
    bus_worker_reply(w, r->id, "ok", 2, NULL, 0);
    bus_req_free(&r);
    struct got g = {0};
    wait_replies(c, &g, 1, 3000);
    assert_int_equal(g.outcome[0], OAIF__V1__OUTCOME__OUTCOME_OK);
    assert_int_equal(g.attempts[0], 2);
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(bus_client_status(c, 2000, &env), ERR_OK);
    Oaif__V1__ServiceStatus *ss = find_service(env->status, "echo");
    assert_non_null(ss);
    assert_int_equal(ss->redelivered, 1);
    assert_int_equal(ss->completed, 1);
    oaif__v1__envelope__free_unpacked(env, NULL);
}

static void test_dead_letter_after_max_attempts(void **state)
{
    struct fixture *f = *state;
    bus_worker_t *w = worker(f, "echo", 1);
    bus_client_t *c = client(f);
    assert_int_equal(bus_client_submit(c, "echo", "doomed", "p", 1, 100, 2), ERR_OK);
    struct bus_req *r = NULL;
    for (int i = 1; i <= 2; i++) {
        assert_int_equal(bus_worker_recv(w, 3000, &r), ERR_OK);
        assert_int_equal(r->attempt, i);
        bus_req_free(&r);
    }
    struct got g = {0};
    wait_replies(c, &g, 1, 3000);
    assert_int_equal(g.outcome[0], OAIF__V1__OUTCOME__OUTCOME_FAILED);
    assert_non_null(strstr(g.error[0], "lease expired"));
    assert_int_equal(g.attempts[0], 2);
    /* The dead letter is durable: a lookup finds it with its reason. */
    const char *ids[] = {"doomed"};
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(bus_client_lookup(c, ids, 1, 2000, &env), ERR_OK);
    assert_int_equal(env->records->n_requests, 1);
    assert_int_equal(env->records->requests[0]->phase,
                     OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_FAILED);
    oaif__v1__envelope__free_unpacked(env, NULL);
    assert_int_equal(bus_client_status(c, 2000, &env), ERR_OK);
    assert_int_equal(env->status->dead_letters, 1);
    oaif__v1__envelope__free_unpacked(env, NULL);
}

static void test_permanent_error_fails_at_once(void **state)
{
    struct fixture *f = *state;
    bus_worker_t *w = worker(f, "echo", 1);
    bus_client_t *c = client(f);
    assert_int_equal(bus_client_submit(c, "echo", "bad1", "p", 1, 0, 5), ERR_OK);
    struct bus_req *r = NULL;
    assert_int_equal(bus_worker_recv(w, 3000, &r), ERR_OK);
    bus_worker_fail(w, r->id, "field 'n': must be at least 1", true);
    bus_req_free(&r);
    struct got g = {0};
    wait_replies(c, &g, 1, 3000);
    assert_int_equal(g.outcome[0], OAIF__V1__OUTCOME__OUTCOME_FAILED);
    assert_string_equal(g.error[0], "field 'n': must be at least 1");
    assert_int_equal(g.attempts[0], 1);
    /* A transient error is retried. */
    assert_int_equal(bus_client_submit(c, "echo", "flaky", "p", 1, 0, 5), ERR_OK);
    assert_int_equal(bus_worker_recv(w, 3000, &r), ERR_OK);
    bus_worker_fail(w, r->id, "judge returned 503", false);
    bus_req_free(&r);
    assert_int_equal(bus_worker_recv(w, 3000, &r), ERR_OK);
    assert_int_equal(r->attempt, 2);
    bus_worker_reply(w, r->id, "fine", 4, NULL, 0);
    bus_req_free(&r);
    wait_replies(c, &g, 2, 3000);
    assert_int_equal(g.outcome[1], OAIF__V1__OUTCOME__OUTCOME_OK);
}

static Oaif__V1__Record *mkrec(Oaif__V1__Record *r, Oaif__V1__RecordKind kind, const char *id,
                               const char *data)
{
    oaif__v1__record__init(r);
    r->kind = kind;
    r->id = (char *)id;
    r->data.data = (uint8_t *)data;
    r->data.len = strlen(data);
    return r;
}

static void test_put_get_scan_records(void **state)
{
    struct fixture *f = *state;
    bus_client_t *c = client(f);
    Oaif__V1__Record a, b, d;
    Oaif__V1__Record *recs[3] = {
        mkrec(&a, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT, "p1", "one"),
        mkrec(&b, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT, "p2", "two"),
        mkrec(&d, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT, "p3", "three")};
    assert_int_equal(bus_client_put(c, "import-1", recs, 3, true, 2000), ERR_OK);
    /* The same put again (a resend): nothing new. */
    assert_int_equal(bus_client_put(c, "import-1", recs, 3, true, 2000), ERR_OK);
    const char *ids[] = {"p2", "nope", "p1"};
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(
        bus_client_get(c, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT, ids, 3, 2000, &env), ERR_OK);
    assert_int_equal(env->records->n_records, 2);
    assert_int_equal(env->records->n_missing, 1);
    assert_string_equal(env->records->missing[0], "nope");
    assert_memory_equal(env->records->records[0]->data.data, "two", 3);
    oaif__v1__envelope__free_unpacked(env, NULL);
    assert_int_equal(
        bus_client_scan(c, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT, 0, 2, 2000, &env), ERR_OK);
    assert_int_equal(env->records->n_records, 2);
    assert_true(env->records->more);
    assert_string_equal(env->records->records[0]->id, "p1");
    assert_int_equal(env->records->records[0]->seq, 1);
    uint64_t next = env->records->next_seq;
    oaif__v1__envelope__free_unpacked(env, NULL);
    assert_int_equal(
        bus_client_scan(c, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT, next, 10, 2000, &env),
        ERR_OK);
    assert_int_equal(env->records->n_records, 1);
    assert_string_equal(env->records->records[0]->id, "p3");
    assert_false(env->records->more);
    oaif__v1__envelope__free_unpacked(env, NULL);
    /* if_absent under a new put id keeps the old record; counts stay right. */
    Oaif__V1__Record e;
    Oaif__V1__Record *one[1] = {mkrec(&e, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT, "p1", "NEW")};
    assert_int_equal(bus_client_put(c, "import-2", one, 1, true, 2000), ERR_OK);
    assert_int_equal(bus_client_status(c, 2000, &env), ERR_OK);
    for (size_t i = 0; i < env->status->n_records; i++)
        if (env->status->records[i]->kind == OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT)
            assert_int_equal(env->status->records[i]->count, 3);
    oaif__v1__envelope__free_unpacked(env, NULL);
    /* An unknown kind is an error that names it. */
    assert_int_equal(bus_client_scan(c, (Oaif__V1__RecordKind)99, 0, 10, 2000, &env), ERR_REMOTE);
    assert_non_null(strstr(bus_client_last_error(c), "kind 99"));
}

static void test_worker_records_commit_with_reply(void **state)
{
    struct fixture *f = *state;
    bus_worker_t *w = worker(f, "sample", 1);
    bus_client_t *c = client(f);
    /* An event subscriber sees the committed record. */
    void *sub = zmq_socket(f->zctx, ZMQ_SUB);
    int zero = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "pairs", 5);
    assert_int_equal(zmq_connect(sub, ledger_events_endpoint(f->l)), 0);
    usleep(200000); /* let the subscription reach the publisher */
    assert_int_equal(bus_client_submit(c, "sample", "s1", "q", 1, 0, 0), ERR_OK);
    struct bus_req *r = NULL;
    assert_int_equal(bus_worker_recv(w, 3000, &r), ERR_OK);
    Oaif__V1__Record rec;
    Oaif__V1__Record *recs[1] = {
        mkrec(&rec, OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, "pair-1", "the pair")};
    bus_worker_reply(w, r->id, "done", 4, recs, 1);
    bus_req_free(&r);
    struct got g = {0};
    wait_replies(c, &g, 1, 3000);
    const char *ids[] = {"pair-1"};
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(bus_client_get(c, OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, ids, 1, 2000, &env),
                     ERR_OK);
    assert_int_equal(env->records->n_records, 1);
    oaif__v1__envelope__free_unpacked(env, NULL);
    char topic[32] = {0};
    zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&it, 1, 2000), 1);
    assert_int_equal(zmq_recv(sub, topic, sizeof topic - 1, 0), 5);
    assert_string_equal(topic, "pairs");
    uint8_t buf[512];
    int n = zmq_recv(sub, buf, sizeof buf, 0);
    Oaif__V1__Envelope *ev = oaif__v1__envelope__unpack(NULL, (size_t)n, buf);
    assert_non_null(ev);
    assert_int_equal(ev->body_case, OAIF__V1__ENVELOPE__BODY_EVENT);
    assert_string_equal(ev->event->id, "pair-1");
    oaif__v1__envelope__free_unpacked(ev, NULL);
    zmq_close(sub);
}

/* Milliseconds until r's next read (0: due now). */
static uint64_t rescan_gap(const struct bus_rescan *r)
{
    uint64_t now = bus_mono_ms();
    return r->next > now ? r->next - now : 0;
}

/* The rescan clock every service reading the ledger's records keeps (busopts.h): a record whose
 * event was published before the subscription was live is read within the settle gaps, not one
 * interval later; an event is a read at once; a failed read comes back after the retry. */
static void test_rescans_catch_an_event_sent_before_the_subscription(void **state)
{
    struct fixture *f = *state;
    bus_client_t *c = client(f);
    struct bus_rescan r;
    bus_rescan_init(&r);
    assert_true(bus_rescan_due(&r)); /* at once after the start */

    /* a record whose event went out before the subscriber connected: lost to it. A first
     * subscriber, connected before the put, sees the event go out (the first after it
     * subscribed: with ZMQ_IMMEDIATE on SUB sockets, as bus_setup_socket set it before, that one
     * never arrived); only then the second one, the service's, connects */
    struct bus_opts bo = {.events_endpoint = (char *)ledger_events_endpoint(f->l)};
    struct bus_curve off = {0};
    char why[256];
    assert_int_equal(
        bus_opts_events(&bo, &off, f->zctx, "checkpoints", &f->subs[0], why, sizeof why), ERR_OK);
    usleep(200000); /* let the subscription reach the publisher */
    Oaif__V1__Record rec;
    Oaif__V1__Record *one[1] = {
        mkrec(&rec, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT, "ck-early", "early")};
    assert_int_equal(bus_client_put(c, "early", one, 1, true, 2000), ERR_OK);
    zmq_pollitem_t it0 = {f->subs[0], 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&it0, 1, 5000), 1); /* the first event after it subscribed */
    assert_int_equal(
        bus_opts_events(&bo, &off, f->zctx, "checkpoints", &f->subs[1], why, sizeof why), ERR_OK);
    void *sub = f->subs[1];
    assert_non_null(sub);

    /* the first read found nothing; the next ones come 0.25, 0.5, 1, 2 ... s apart, then at the
     * interval (60 s); a failed read neither waits the interval nor moves the schedule on */
    bus_rescan_done(&r, true, 60000, 1000);
    assert_in_range(rescan_gap(&r), 200, 250);
    assert_false(bus_rescan_due(&r));
    bus_rescan_drain(&r, sub);
    assert_false(r.now); /* the early record's event never reached this subscriber */
    assert_int_equal(bus_rescan_wait_ms(&r, 50), 50);
    usleep(260000);
    assert_int_equal(bus_rescan_wait_ms(&r, 50), 0);
    assert_true(bus_rescan_due(&r)); /* the read that finds ck-early, 0.25 s after the start */
    bus_rescan_done(&r, false, 60000, 1000);
    assert_in_range(rescan_gap(&r), 900, 1000);
    uint64_t want[] = {500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        bus_rescan_done(&r, true, 60000, 1000);
        assert_in_range(rescan_gap(&r), want[i] - 50, want[i]);
    }

    /* once the subscription is live, a new record's event makes a read due at once */
    usleep(200000);
    one[0] = mkrec(&rec, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT, "ck-late", "late");
    assert_int_equal(bus_client_put(c, "late", one, 1, true, 2000), ERR_OK);
    zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&it, 1, 2000), 1);
    bus_rescan_drain(&r, sub);
    assert_true(r.now);
    assert_int_equal(bus_rescan_wait_ms(&r, 50), 0);
    assert_true(bus_rescan_due(&r));
    assert_false(r.now);
    bus_rescan_drain(&r, NULL); /* no events endpoint: nothing to drain */
    assert_false(r.now);
}

/* Send raw frames on a DEALER and return the Error the ledger answers with (or NULL). */
static Oaif__V1__Envelope *raw_exchange(void *zctx, const char *ep, const void *const *frames,
                                        const size_t *lens, int n)
{
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(s, ep);
    for (int i = 0; i < n; i++)
        zmq_send(s, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    Oaif__V1__Envelope *env = NULL;
    if (zmq_poll(&it, 1, 3000) == 1) {
        uint8_t buf[4096];
        int got = zmq_recv(s, buf, sizeof buf, 0);
        if (got >= 0)
            env = oaif__v1__envelope__unpack(NULL, (size_t)got, buf);
    }
    zmq_close(s);
    return env;
}

static void expect_error(void *zctx, const char *ep, const void *const *frames, const size_t *lens,
                         int n, const char *needle)
{
    Oaif__V1__Envelope *env = raw_exchange(zctx, ep, frames, lens, n);
    assert_non_null(env);
    assert_int_equal(env->body_case, OAIF__V1__ENVELOPE__BODY_ERROR);
    if (!strstr(env->error->message, needle))
        fail_msg("error '%s' does not mention '%s'", env->error->message, needle);
    oaif__v1__envelope__free_unpacked(env, NULL);
}

static void test_bad_input_gets_errors_and_ledger_keeps_serving(void **state)
{
    struct fixture *f = *state;
    const char *ep = ledger_client_endpoint(f->l);
    /* Garbage bytes. */
    static const char garbage[] = "\xff\xff\xff\xff garbage";
    const void *g[] = {garbage};
    size_t gl[] = {sizeof garbage - 1};
    expect_error(f->zctx, ep, g, gl, 1, "not a protobuf");
    /* Two frames. */
    Oaif__V1__StatusQuery sq = OAIF__V1__STATUS_QUERY__INIT;
    Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
    env.version = 1;
    env.body_case = OAIF__V1__ENVELOPE__BODY_STATUS_QUERY;
    env.status_query = &sq;
    uint8_t buf[64];
    size_t n = oaif__v1__envelope__pack(&env, buf);
    const void *two[] = {buf, buf};
    size_t twol[] = {n, n};
    expect_error(f->zctx, ep, two, twol, 2, "frames");
    /* Another protocol version. */
    env.version = 7;
    n = oaif__v1__envelope__pack(&env, buf);
    const void *v7[] = {buf};
    size_t v7l[] = {n};
    expect_error(f->zctx, ep, v7, v7l, 1, "version 7");
    /* An empty frame: no body. */
    const void *empty[] = {""};
    size_t emptyl[] = {0};
    expect_error(f->zctx, ep, empty, emptyl, 1, "version 0");
    /* A worker command on the client socket. */
    Oaif__V1__Ready rd = OAIF__V1__READY__INIT;
    rd.service = "echo";
    rd.credit = 1;
    env.version = 1;
    env.body_case = OAIF__V1__ENVELOPE__BODY_READY;
    env.ready = &rd;
    v7l[0] = oaif__v1__envelope__pack(&env, buf);
    expect_error(f->zctx, ep, v7, v7l, 1, "not a client command");
    /* A bad service name and an oversized payload. */
    bus_client_t *c = client(f);
    Oaif__V1__Envelope *ans = NULL;
    assert_int_equal(bus_client_call(c, "Bad Name!", "x1", "p", 1, 2000, &ans), ERR_REMOTE);
    assert_non_null(strstr(bus_client_last_error(c), "service name"));
    size_t big = (1 << 20) + 1;
    char *p = calloc(1, big);
    assert_int_equal(bus_client_call(c, "echo", "x2", p, big, 2000, &ans), ERR_REMOTE);
    assert_non_null(strstr(bus_client_last_error(c), "over the limit"));
    free(p);
    /* Still serving. */
    assert_int_equal(bus_client_status(c, 2000, &ans), ERR_OK);
    assert_true(ans->status->dropped_messages >= 4);
    oaif__v1__envelope__free_unpacked(ans, NULL);
}

/* Waits for c's acks (durable), then restarts the ledger on the same ports. */
static void restart_after_acks(struct fixture *f, bus_client_t *c)
{
    for (int i = 0; i < 20; i++)
        bus_client_poll(c, 50, NULL, NULL);
    char cep[256], wep[256];
    snprintf(cep, sizeof cep, "%s", ledger_client_endpoint(f->l));
    snprintf(wep, sizeof wep, "%s", ledger_worker_endpoint(f->l));
    stop_ledger(f);
    assert_int_equal(ledger_config_set(&f->cfg.client_bind, cep), ERR_OK);
    assert_int_equal(ledger_config_set(&f->cfg.worker_bind, wep), ERR_OK);
    start_ledger(f);
}

static void test_restart_rebuilds_queues_from_store(void **state)
{
    struct fixture *f = *state;
    bus_client_t *c = client(f);
    assert_int_equal(bus_client_submit(c, "later", "kept-1", "a", 1, 0, 0), ERR_OK);
    assert_int_equal(bus_client_submit(c, "later", "kept-2", "b", 1, 0, 0), ERR_OK);
    restart_after_acks(f, c);
    bus_worker_t *w = worker(f, "later", 2);
    for (int i = 0; i < 2; i++) {
        struct bus_req *r = NULL;
        assert_int_equal(bus_worker_recv(w, 3000, &r), ERR_OK);
        bus_worker_reply(w, r->id, r->payload, r->len, NULL, 0);
        bus_req_free(&r);
    }
    struct got g = {0};
    wait_replies(c, &g, 2, 5000); /* the client re-announces; the new ledger answers */
}

/* A service's variant (a judge's identity) survives a restart: requests queued for judge A are
 * not handed to a worker of judge B that registers first after the restart. */
static void test_restart_keeps_the_services_judge(void **state)
{
    struct fixture *f = *state;
    struct bus_worker_opts o = {.endpoint = ledger_worker_endpoint(f->l),
                                .service = "annotate",
                                .credit = 1,
                                .heartbeat_ms = 200,
                                .variant = "rules/judge-a"};
    /* the fixture owns the workers: teardown closes them whatever fails */
    bus_worker_t **a = &f->workers[f->nw++], **b = &f->workers[f->nw++];
    bus_worker_t **a2 = &f->workers[f->nw++];
    assert_int_equal(bus_worker_new(a, f->zctx, &o), ERR_OK);
    struct bus_req *r = NULL;
    assert_int_equal(bus_worker_recv(*a, 300, &r), ERR_TIMEOUT); /* registered */
    bus_worker_destroy(a);
    bus_client_t *c = client(f);
    assert_int_equal(bus_client_submit(c, "annotate", "label-1", "x", 1, 0, 0), ERR_OK);
    restart_after_acks(f, c);
    o.endpoint = ledger_worker_endpoint(f->l);
    o.variant = "openai/judge-b";
    assert_int_equal(bus_worker_new(b, f->zctx, &o), ERR_OK);
    int brc = bus_worker_recv(*b, 3000, &r);
    if (brc == ERR_OK)
        bus_req_free(&r);
    assert_int_equal(brc, ERR_REMOTE);
    assert_non_null(strstr(bus_worker_refusal(*b), "rules/judge-a"));
    o.variant = "rules/judge-a";
    assert_int_equal(bus_worker_new(a2, f->zctx, &o), ERR_OK);
    assert_int_equal(bus_worker_recv(*a2, 3000, &r), ERR_OK);
    char id[64];
    snprintf(id, sizeof id, "%s", r->id);
    bus_worker_reply(*a2, r->id, "y", 1, NULL, 0);
    bus_req_free(&r);
    assert_string_equal(id, "label-1");
    struct got g = {0};
    wait_replies(c, &g, 1, 5000);
}

static void count_reply(void *ctx, const Oaif__V1__Reply *r)
{
    (void)r;
    (*(int *)ctx)++;
}

/* A reply that arrives while the client waits in a synchronous query is kept for the next poll
 * and delivered exactly once, even though the client goes on re-announcing for a while. */
static void test_reply_during_sync_query_is_delivered_once(void **state)
{
    struct fixture *f = *state;
    bus_worker_t *w = worker(f, "echo", 1);
    bus_client_t *c = client(f);
    assert_int_equal(bus_client_submit(c, "echo", "once", "p", 1, 0, 0), ERR_OK);
    struct bus_req *r = NULL;
    assert_int_equal(bus_worker_recv(w, 3000, &r), ERR_OK);
    bus_worker_reply(w, r->id, "q", 1, NULL, 0);
    bus_req_free(&r);
    usleep(200000); /* the reply is waiting in the client's socket */
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(bus_client_status(c, 2000, &env), ERR_OK);
    oaif__v1__envelope__free_unpacked(env, NULL);
    int n = 0;
    for (int i = 0; i < 20; i++) /* 1 s: several re-announce intervals */
        bus_client_poll(c, 50, count_reply, &n);
    assert_int_equal(n, 1);
    assert_int_equal(bus_client_pending(c), 0);
}

/* A client's first request, sent before its connection is up (ZMQ_IMMEDIATE refuses it), goes
 * out as soon as the connection is: it does not wait a resend interval, and is not counted as a
 * resend. With a resend interval of a minute, the old behaviour timed out here. */
static void test_first_request_goes_out_when_the_connection_is_up(void **state)
{
    struct fixture *f = *state;
    struct bus_client_opts o = {
        .endpoint = ledger_client_endpoint(f->l), .resend_ms = 60000, .reannounce_ms = 60000};
    bus_client_t *c = NULL;
    assert_int_equal(bus_client_new(&c, f->zctx, &o), ERR_OK);
    f->clients[f->nc++] = c;
    Oaif__V1__StatusQuery sq = OAIF__V1__STATUS_QUERY__INIT;
    Oaif__V1__Envelope q = OAIF__V1__ENVELOPE__INIT;
    q.body_case = OAIF__V1__ENVELOPE__BODY_STATUS_QUERY;
    q.status_query = &sq;
    Oaif__V1__Envelope *ans = NULL;
    assert_int_equal(bus_client_query(c, &q, 5000, &ans), ERR_OK);
    assert_int_equal(ans->body_case, OAIF__V1__ENVELOPE__BODY_STATUS);
    oaif__v1__envelope__free_unpacked(ans, NULL);
    assert_int_equal(bus_client_resends(c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_submit_is_leased_and_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_request_goes_out_when_the_connection_is_up,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_id_runs_once_and_answers_twice, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_expired_lease_is_redelivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letter_after_max_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permanent_error_fails_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_get_scan_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_records_commit_with_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_the_services_judge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rescans_catch_an_event_sent_before_the_subscription,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_gets_errors_and_ledger_keeps_serving, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_rebuilds_queues_from_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_during_sync_query_is_delivered_once, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("ledger", tests, NULL, NULL);
}
