/* ledger_opts.c - the ledger's options, declared once: the table fills struct ledger_config
 * (ledger.h) directly and holds every default. Section `ledger`, plus the bus options it shares
 * with every service (busopts.h). */
#include "ledger_opts.h"

#include <stdlib.h>
#include <string.h>

#include "busopts.h"
#include "err.h"

#define O struct ledger_config
static const struct cfg_option options[] = {
    CFG_STRING_OPT(O, db_path, .key = "ledger.data_dir", .def = "data/ledger",
                   .env = "LEDGER_DATA_DIR", .flag = "--db", .help = "RocksDB directory."),
    CFG_STRING_OPT(O, client_bind, .key = "ledger.clients_bind", .flags = CFG_ENDPOINT,
                   .def = BUS_DEFAULT_CLIENTS, .env = "LEDGER_CLIENTS_BIND", .flag = "--clients",
                   .help = "ROUTER for callers (port * picks a free one)."),
    CFG_STRING_OPT(O, worker_bind, .key = "ledger.workers_bind", .flags = CFG_ENDPOINT,
                   .def = BUS_DEFAULT_WORKERS, .env = "LEDGER_WORKERS_BIND", .flag = "--workers",
                   .help = "ROUTER for workers."),
    CFG_STRING_OPT(O, events_bind, .key = "ledger.events_bind", .flags = CFG_ENDPOINT,
                   .def = BUS_DEFAULT_EVENTS, .env = "LEDGER_EVENTS_BIND", .flag = "--events",
                   .help = "PUB for events (empty: none)."),
    CFG_STRING_OPT(O, metrics_bind, .key = "ledger.metrics_bind", .def = "127.0.0.1",
                   .env = "LEDGER_METRICS_BIND", .flag = "--metrics-bind",
                   .help = "Address of the HTTP server for /metrics and /healthz."),
    CFG_INT_OPT(O, metrics_port, .key = "ledger.metrics_port", .def = "-1", .min = -1, .max = 65535,
                .env = "LEDGER_METRICS_PORT", .flag = "--metrics-port",
                .help = "Its port (0: any free one, -1: no HTTP server)."),
    BUS_OPT_HEARTBEAT(O, heartbeat_ms),
    CFG_INT_OPT(O, liveness, .key = "ledger.heartbeat_liveness", .def = "3", .min = 2, .max = 100,
                .env = "LEDGER_HEARTBEAT_LIVENESS", .flag = "--liveness",
                .help = "Silent intervals before a worker is dead."),
    CFG_DURATION_OPT(O, lease_ms, .key = "ledger.lease_timeout", .def = "30s", .min = 10,
                     .max = 86400000, .env = "LEDGER_LEASE_TIMEOUT", .flag = "--lease",
                     .help = "Default lease; an expired lease re-queues the request."),
    CFG_INT_OPT(O, max_attempts, .key = "ledger.max_attempts", .def = "3", .min = 1, .max = 1000,
                .env = "LEDGER_MAX_ATTEMPTS", .flag = "--max-attempts",
                .help = "Default attempts before a request fails (dead letter)."),
    CFG_DURATION_OPT(O, lease_limit_ms, .key = "ledger.lease_timeout_limit", .def = "1h", .min = 10,
                     .max = 86400000, .env = "LEDGER_LEASE_TIMEOUT_LIMIT", .flag = "--lease-limit",
                     .help = "Longest lease a client may ask for; a longer one is cut to it."),
    CFG_INT_OPT(O, max_attempts_limit, .key = "ledger.max_attempts_limit", .def = "20", .min = 1,
                .max = 1000, .env = "LEDGER_MAX_ATTEMPTS_LIMIT", .flag = "--max-attempts-limit",
                .help = "Most attempts a client may ask for; more are cut to it."),
    CFG_SIZE_OPT(O, max_record, .key = "ledger.max_record_size", .def = "16MiB", .min = 1,
                 .max = 1LL << 40, .env = "LEDGER_MAX_RECORD_SIZE", .flag = "--max-record",
                 .help = "Largest record (Put or Result); also at most a quarter of "
                         "bus.max_message_size, so any record fits in one reply."),
    /* BUS_OPT_MAX_MESSAGE, with the ledger's old names */
    CFG_SIZE_OPT(O, max_msg, .key = "bus.max_message_size", .def = BUS_DEFAULT_MAX_MESSAGE,
                 .min = 65536, .max = 1LL << 40, .env = "BUS_MAX_MESSAGE_SIZE",
                 .flag = "--max-message-size", .old_key = "ledger.max_message_size",
                 .old_env = "LEDGER_MAX_MESSAGE_SIZE", .old_flag = "--max-msg",
                 .help = "ZMQ_MAXMSGSIZE: a larger frame drops its connection."),
    CFG_SIZE_OPT(O, max_request, .key = "ledger.max_request_size", .def = "16MiB", .min = 1,
                 .max = 1LL << 40, .env = "LEDGER_MAX_REQUEST_SIZE", .flag = "--max-request",
                 .help = "Largest payload accepted; larger ones get an error reply."),
    CFG_INT_OPT(O, batch_max, .key = "ledger.batch_max", .def = "4096", .min = 1, .max = 1000000,
                .env = "LEDGER_BATCH_MAX", .flag = "--batch-max",
                .help = "Most messages handled per loop turn (one group commit)."),
    CFG_BOOL_OPT(O, sync, .key = "ledger.sync", .def = "true", .env = "LEDGER_SYNC",
                 .flag = "--sync", .help = "fsync every group commit (false: benchmarks only)."),
    CFG_SIZE_OPT(O, min_free, .key = "ledger.min_free_space", .def = "64MiB", .min = 0,
                 .max = 1LL << 50, .env = "LEDGER_MIN_FREE_SPACE", .flag = "--min-free-space",
                 .help = "Below this free space on the store's disk, new writes are refused "
                         "(ERROR_CODE_UNAVAILABLE) until space returns; 0: never."),
    BUS_OPT_CURVE_SECRET(O, curve_secret_key, "ledger", "LEDGER"),
    CFG_STRING_OPT(O, curve_allow, .key = "ledger.allowed_keys_path", .def = NULL,
                   .env = "LEDGER_ALLOWED_KEYS_PATH", .flag = "--curve-allow",
                   .help = "Allowed public keys: a file, or a directory of *.pub files."),
    CFG_STRLIST_OPT(O, allowed_keys, .key = "ledger.allowed_keys", .def = NULL,
                    .env = "LEDGER_ALLOWED_KEYS", .flag = "--allow-key",
                    .help = "Allowed public keys (Z85), in addition to the path."),
    CFG_BOOL_OPT(O, repair, .key = "ledger.repair", .def = "false", .flag = "--repair",
                 .help =
                     "Repair a damaged store (RocksDB's RepairDB: keeps what it can read, "
                     "moves damaged files to DIR/lost), then exit. Losses: README, Reliability."),
    CFG_STRING_OPT(O, endpoints_file, .key = "ledger.endpoints_file", .def = NULL,
                   .env = "LEDGER_ENDPOINTS_FILE", .flag = "--endpoints-file",
                   .help = "Write the bound endpoints there once listening."),
};
#undef O

static const char *const sections[] = {"ledger", NULL};
const struct cfg_spec ledger_opts_spec = {
    .name = "ledger",
    .summary = "Durable broker and record store of an oaif run.",
    .sections = sections,
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct ledger_config),
};

int ledger_opts_load(struct ledger_config *c, int argc, char *const *argv, buf_t *errs,
                     struct cfg_trace *trace)
{
    memset(c, 0, sizeof *c);
    return cfg_load_ex(&ledger_opts_spec, c, argc, argv, errs, trace);
}

int ledger_config_defaults(struct ledger_config *c)
{
    memset(c, 0, sizeof *c);
    return cfg_defaults(&ledger_opts_spec, c);
}

void ledger_config_release(struct ledger_config *c)
{
    cfg_release(&ledger_opts_spec, c);
}

int ledger_config_set(char **field, const char *value)
{
    char *copy = value ? strdup(value) : NULL;
    if (value && !copy)
        return ERR_NOMEM;
    free(*field);
    *field = copy;
    return ERR_OK;
}
