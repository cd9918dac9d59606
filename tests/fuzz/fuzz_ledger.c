/* fuzz_ledger.c - the ledger's request handling fed frame sets, as any peer that reaches its two
 * ROUTER sockets can send them. One ledger (services/ledger, its RocksDB store in the scratch
 * directory, fsync off) runs for the whole fuzzing process on inproc endpoints, with four DEALER
 * peers: two clients and two workers. An input is a sequence of frames, each
 *
 *     [peer/flags: 1 byte] [length: 2 bytes, little-endian] [length bytes]
 *
 * peer/flags: bits 0-1 the peer (0, 1: clients; 2, 3: workers), bit 2 more frames of the same
 * message follow (a multi-frame message, which the ledger must refuse), bit 3 the ledger runs a
 * loop turn right after this message. A length past the end of the input is cut to what is left.
 * After the last frame the ledger runs until it is quiet (no reply for two turns), and every reply
 * is read and must be an oaif.v1.Envelope of the current version. The state carries over from one
 * input to the next (requests stay queued, workers stay registered), as a long-running ledger's
 * does. tests/fuzz/ledger_seeds.c writes the seed corpus in this format. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bus.h"
#include "err.h"
#include "fuzz.h"
#include "ledger.h"
#include "log.h"

#define NPEERS 4

static void *zctx;
static ledger_t *ledger;
static struct ledger_config cfg;
static void *peers[NPEERS];

static void shutdown_ledger(void)
{
    for (int i = 0; i < NPEERS; i++)
        if (peers[i])
            zmq_close(peers[i]);
    ledger_destroy(&ledger);
    ledger_config_release(&cfg);
    if (zctx)
        zmq_ctx_term(zctx);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* a warning per bad frame is the ledger's business; thousands a second are not ours */
    if (!getenv("LOG_LEVEL"))
        log_set_level(LOG_LVL_ERROR);
    char db[1024];
    snprintf(db, sizeof db, "%s/ledger", fuzz_dir()); /* before atexit: removed after the close */
    zctx = zmq_ctx_new();
    if (!zctx || ledger_config_defaults(&cfg) || ledger_config_set(&cfg.db_path, db) ||
        ledger_config_set(&cfg.client_bind, "inproc://fuzz-clients") ||
        ledger_config_set(&cfg.worker_bind, "inproc://fuzz-workers") ||
        ledger_config_set(&cfg.events_bind, "inproc://fuzz-events"))
        abort();
    cfg.sync = false;
    cfg.max_request = 1 << 16;
    if (ledger_new(&ledger, &cfg, zctx) != ERR_OK) {
        fprintf(stderr, "fuzz_ledger: the ledger does not start in %s\n", db);
        abort();
    }
    atexit(shutdown_ledger);
    static const char *const names[NPEERS] = {"client-0", "client-1", "worker-0", "worker-1"};
    for (int i = 0; i < NPEERS; i++) {
        int zero = 0;
        peers[i] = zmq_socket(zctx, ZMQ_DEALER);
        if (!peers[i] || zmq_setsockopt(peers[i], ZMQ_LINGER, &zero, sizeof zero) ||
            zmq_setsockopt(peers[i], ZMQ_ROUTING_ID, names[i], strlen(names[i])) ||
            zmq_connect(peers[i], i < 2 ? "inproc://fuzz-clients" : "inproc://fuzz-workers"))
            abort();
    }
    return 0;
}

/* Reads every reply waiting at the peers; the number read. */
static int drain_replies(void)
{
    int got = 0;
    for (int i = 0; i < NPEERS; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        while (zmq_msg_recv(&m, peers[i], ZMQ_DONTWAIT) >= 0) {
            got++;
            if (zmq_msg_more(&m))
                fuzz_fail("peer %d: a reply of more than one frame", i);
            Oaif__V1__Envelope *env =
                oaif__v1__envelope__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
            if (!env)
                fuzz_fail("peer %d: a reply that is not an Envelope (%zu bytes)", i,
                          zmq_msg_size(&m));
            if (env->version != BUS_PROTOCOL_VERSION)
                fuzz_fail("peer %d: a reply of version %u", i, env->version);
            oaif__v1__envelope__free_unpacked(env, NULL);
        }
        zmq_msg_close(&m);
    }
    return got;
}

static void turn(int timeout_ms)
{
    int rc = ledger_poll(ledger, timeout_ms);
    if (rc != ERR_OK && rc != ERR_INTR)
        fuzz_fail("ledger_poll: %s", err_str(rc));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t at = 0;
    bool open[NPEERS] = {false};
    while (at + 3 <= size) {
        uint8_t flags = data[at];
        size_t len = (size_t)data[at + 1] | (size_t)data[at + 2] << 8;
        at += 3;
        if (len > size - at)
            len = size - at;
        int p = flags & 3;
        bool more = flags & 4;
        /* a DEALER's message left open by the last frame of the input is finished below */
        zmq_send(peers[p], data + at, len, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0));
        open[p] = more;
        at += len;
        if ((flags & 8) && !more)
            turn(0);
    }
    for (int p = 0; p < NPEERS; p++)
        if (open[p])
            zmq_send(peers[p], "", 0, ZMQ_DONTWAIT);
    /* until quiet: the commit thread answers after the turn that staged the work */
    for (int quiet = 0, turns = 0; quiet < 2 && turns < 1000; turns++) {
        turn(quiet ? 1 : 0);
        quiet = drain_replies() ? 0 : quiet + 1;
    }
    return 0;
}
