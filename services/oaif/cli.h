/* cli.h - what the oaif command's verbs share: loading a verb's options from its cfg table
 * (defaults < run file < environment < flags, with the positional arguments set apart), the common
 * options that say how to reach the ledger, the connection itself and the message for a failed
 * query, and reading the JSONL files the verbs take (oaif import, oaif annotate) into packed
 * messages.
 *
 * A verb returns the process's exit status: 0 done, 1 failed (the reason on stderr), 2 bad usage or
 * a bad value (the flag named). The common options, the same names as every service's bus options
 * (busopts.h):
 *   --clients EP          bus.clients_endpoint, $BUS_CLIENTS_ENDPOINT (old: --ledger, $OAIF_LEDGER)
 *   --ledger-key KEY      bus.ledger_public_key, $BUS_LEDGER_PUBLIC_KEY (old: --server-key,
 *                         $OAIF_SERVER_KEY)
 *   --curve-secret FILE   oaif.curve_secret_key, $OAIF_CURVE_SECRET_KEY (old: $OAIF_CURVE_SECRET)
 *   --timeout DURATION    oaif.timeout, $OAIF_TIMEOUT (old: --timeout-ms N)
 *
 * Not here: the verbs (cmd_<verb>.c, declared in cmd.h), the local deployment's files and
 * processes (local.h). */
#ifndef CLI_H
#define CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "busclient.h"
#include "busopts.h"
#include "cfg.h"

/* The common options' fields; a verb's options struct embeds one. */
struct cli_conn {
    char *clients_endpoint;
    char *ledger_public_key;
    char *curve_secret_key;
    int64_t timeout_ms;
};

/* The common options' rows, for the table of a verb whose struct T has a struct cli_conn at m.
 * The key and the secret are BUS_OPT_LEDGER_KEY and BUS_OPT_CURVE_SECRET(T, m, "oaif", "OAIF")
 * written out, for the variables the CLI read before ($OAIF_SERVER_KEY, $OAIF_CURVE_SECRET). */
/* clang-format off */
#define CLI_CONN_OPTIONS(T, m)                                                                    \
    BUS_OPT_CLIENTS(T, m.clients_endpoint),                                                       \
    CFG_STRING_OPT(T, m.ledger_public_key, .key = "bus.ledger_public_key",                        \
                   .env = "BUS_LEDGER_PUBLIC_KEY", .flag = "--ledger-key",                        \
                   .old_env = "OAIF_SERVER_KEY", .old_flag = "--server-key",                      \
                   .help = "The ledger's CURVE public key: Z85 text or a file (ledger.key.pub)."), \
    CFG_STRING_OPT(T, m.curve_secret_key, .key = "oaif.curve_secret_key",                         \
                   .env = "OAIF_CURVE_SECRET_KEY", .flag = "--curve-secret",                      \
                   .old_env = "OAIF_CURVE_SECRET",                                                \
                   .help = "This process's CURVE key pair file (oaif keys); turns CURVE on."),    \
    CFG_DURATION_OPT(T, m.timeout_ms, .key = "oaif.timeout", .def = "5s", .min = 1,               \
                     .max = 3600000, .env = "OAIF_TIMEOUT", .flag = "--timeout",                  \
                     .old_flag = "--timeout-ms",                                                  \
                     .help = "How long to wait for the ledger (old --timeout-ms: milliseconds).")
/* clang-format on */

/* The common options alone (program name "oaif"): `oaif config show --service oaif`. */
extern const struct cfg_spec cli_conn_spec;

/* Loads a verb's options into `conf` (a zeroed struct of the spec's type) from the defaults, the
 * run file (--config FILE or $OAIF_CONFIG), the environment and argv[0..argc-1], the arguments
 * after the verb. The flags (the spec's, --config, --help, and any other word that starts with '-'
 * but "-", which cfg then reports as unknown) go to cfg_load_ex; the rest, the positional
 * arguments, are moved to the front of argv in their order, *npos of them (all after a "--" are
 * positional); more than max_pos of them (-1: any number) is an error naming the first one too
 * many. `verb` prefixes every message ("oaif import"). Old names' warnings go to stderr.
 * Returns ERR_OK (release conf with cfg_release); CFG_HELP after printing the help on stdout;
 * ERR_INVAL after printing each problem on stderr; ERR_NOMEM. cli_exit_status() turns a failure
 * into the verb's exit status. */
int cli_load(const char *verb, const struct cfg_spec *spec, void *conf, int argc, char **argv,
             int max_pos, int *npos);

/* The exit status for a cli_load() that did not return ERR_OK: 0 for CFG_HELP, 1 for ERR_NOMEM,
 * 2 for the rest. */
int cli_exit_status(int rc);

/* Marks in mine[i] each of argv[0..argc-1] that `spec` takes as a flag or a flag's value
 * (--config FILE and --help included; a flag's old name and a secret's "-file" form count). Words
 * after a "--" are never marked. Returns how many were marked. For verbs that hand what is not
 * theirs to another program's options (oaif config show, oaif up). */
int cli_mark_flags(const struct cfg_spec *spec, int argc, char *const *argv, bool *mine);

/* The value of --config in argv[0..argc-1] ("--config FILE" or "--config=FILE"), else
 * $OAIF_CONFIG when set and not empty, else NULL. Borrowed from argv or the environment. */
const char *cli_config_path(int argc, char *const *argv);

/* Writes each line of b to stderr after `prefix` ("oaif up: warning: "). */
void cli_print_lines(const char *prefix, const buf_t *b);

/* Writes "verb: message\n" to stderr. */
void cli_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A connection to the ledger's client endpoint. */
struct cli_ledger {
    const char *verb;            /* for messages; borrowed */
    const struct cli_conn *conn; /* borrowed for the connection's life */
    void *zctx;
    bus_client_t *client;
    int timeout_ms; /* conn->timeout_ms, for the bus_client_* calls */
};

/* Connects as `conn` says (CURVE when --curve-secret and --ledger-key are set). Returns 0, or the
 * exit status after printing why: 2 for a bad key option, 1 when the client cannot be made. Close
 * with cli_ledger_close() either way. */
int cli_ledger_open(struct cli_ledger *l, const char *verb, const struct cli_conn *conn);

/* Closes the client and its context. Safe twice, and after a failed open. */
void cli_ledger_close(struct cli_ledger *l);

/* Prints why a query failed (a timeout names the endpoint and the wait, an Error from the ledger
 * its message) and returns 1, the exit status. */
int cli_ledger_failed(const struct cli_ledger *l, int rc);

/* Calls fn(ctx, record) on every record of `kind`, in commit order (records are borrowed for the
 * call). Returns 0, or 1 after cli_ledger_failed(). */
int cli_ledger_scan(struct cli_ledger *l, Oaif__V1__RecordKind kind,
                    void (*fn)(void *ctx, const Oaif__V1__Record *rec), void *ctx);

/* The same for the records committed after sequence number *after only, which it advances past
 * the last one read: called again, it reads what was committed since (a live view). */
int cli_ledger_scan_from(struct cli_ledger *l, Oaif__V1__RecordKind kind, uint64_t *after,
                         void (*fn)(void *ctx, const Oaif__V1__Record *rec), void *ctx);

/* ---- input files ---------------------------------------------------------------------------- */

/* A record or request packed for the bus: its id and its bytes, both malloc'd. */
struct cli_packed {
    char *id;
    uint8_t *data;
    size_t len;
};

/* A growing array of them; start from {0}. */
struct cli_packed_list {
    struct cli_packed *items;
    size_t n, cap;
};

/* Packs message m and appends it under a copy of id. ERR_OK, or ERR_NOMEM (the list unchanged). */
int cli_packed_add(struct cli_packed_list *l, const char *id, const ProtobufCMessage *m);

/* Frees every item and the array; the list is empty after. */
void cli_packed_free(struct cli_packed_list *l);

/* What cli_jsonl_read calls for each line: obj is the line's JSON object (borrowed for the call),
 * where its place ("FILE:LINE") for messages. Returns ERR_OK, or an error after writing
 * "where: reason" to err. */
typedef int (*cli_jsonl_fn)(void *ctx, json_t *obj, const char *where, char *err, size_t errlen);

/* Reads the JSONL file at `path` ("-": stdin) and calls fn on each line that is not blank, stopping
 * at the first error, which it returns. A line that is not a JSON object is ERR_INVAL
 * ("FILE:LINE:COL: not valid JSON: reason", "FILE:LINE: expected a JSON object per line"), a file
 * that cannot be opened ERR_NOTFOUND ("FILE: reason"), each written to err. */
int cli_jsonl_read(const char *path, cli_jsonl_fn fn, void *ctx, char *err, size_t errlen);

/* The first n bytes as lowercase hex into out (2n + 1 bytes with the NUL). */
void cli_hex(char *out, const uint8_t *bytes, size_t n);

#endif /* CLI_H */
