/* cfg.h - a service's configuration: defaults < run file (YAML) < environment < --flags.
 *
 * Each service describes its options once, in a table of struct cfg_option (key path in the run
 * file, type and range, where the value lives in the service's config struct, default, environment
 * variable, flag, help). cfg_load() fills the struct from that table, validating every value and
 * naming where a bad one came from:
 *   run.yaml:12:15: trainer.batch_size: expected an integer in [1, 4096], got 'abc'
 *   environment LEDGER_MAX_ATTEMPTS: expected an integer in [1, 100], got '0'
 *   flag --bind: needs a value
 * cfg_log() logs the result once (secrets as ***), cfg_render_yaml() prints it as a run file
 * section, and with the origins cfg_load_ex() records, where each value came from (`oaif config
 * show`); cfg_help() writes the --help text; cfg_defaults() fills a struct with the defaults alone
 * (a library's `*_defaults()` is that call, so each default is written once, in the table).
 *
 * Renamed options: an option may name its old run-file key, environment variable and flag. They
 * keep working for one release, each use with a warning that names the new name; where the old
 * and the new name are both given, the new one wins.
 *
 * The run file is one YAML document whose top level maps section names (ledger, sampler,
 * annotator, trainer, evaluator, ...) to mappings. A service *owns* the sections its spec lists:
 * there, a key that no option uses is an error (with the closest known key as a suggestion).
 * Sections it does not own are read only for the keys it binds and otherwise left to the services
 * that own them. The file is named by --config FILE or the environment variable OAIF_CONFIG.
 *
 * The YAML loader underneath (cfg_doc_*) is public: it gives a tree of maps, sequences and scalars
 * where every node knows its file, line and column. It refuses anchors, aliases, explicit tags,
 * duplicate keys, non-scalar keys and more than one document, naming file:line:col and the reason.
 *
 * Not here: watching the file for changes (config is read once at start), and schema for
 * anything but flat typed options (read lists of records from the cfg_doc tree directly). */
#ifndef CFG_H
#define CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* ------------------------------------------------------------------------------------------ */
/* The YAML document tree                                                                      */

typedef struct cfg_doc cfg_doc_t; /* opaque: owns every node below */

enum cfg_node_kind { CFG_NODE_SCALAR = 1, CFG_NODE_MAP, CFG_NODE_SEQ };

/* One node; read-only, borrowed from its cfg_doc_t until cfg_doc_free(). */
struct cfg_node {
    enum cfg_node_kind kind;
    const char *file;       /* the name the document was loaded under */
    int line, col;          /* where the node starts, 1-based */
    const char *key;        /* when this node is a value in a MAP: its key; else NULL */
    int key_line, key_col;  /* where that key starts, 1-based; 0 when key is NULL */
    const char *text;       /* SCALAR: the value, NUL-terminated, no NUL inside; else NULL */
    size_t len;             /* SCALAR: strlen(text) */
    bool plain;             /* SCALAR: unquoted, so '', ~ and null are null */
    struct cfg_node **kids; /* MAP: the values in file order, each with .key; SEQ: the items */
    size_t n_kids;
};

/* Parse `len` bytes of YAML text; `name` is used in messages and node->file (e.g. the path).
 * On ERR_OK *out owns the document (free with cfg_doc_free). On ERR_INVAL each problem is one
 * line "name:line:col: reason\n" appended to `errs`, or logged with log_error if errs is NULL;
 * *out is NULL. ERR_NOMEM on allocation failure. Empty text gives a document with no root. */
int cfg_doc_parse(cfg_doc_t **out, const char *name, const char *text, size_t len, buf_t *errs);

/* Read and parse the file at `path` (at most 4 MiB). Errors as cfg_doc_parse; a file that cannot
 * be read is ERR_IO ("path: cannot read: reason"), one over the limit ERR_TOOBIG. */
int cfg_doc_load(cfg_doc_t **out, const char *path, buf_t *errs);

/* Frees the document and every node; sets *doc to NULL. Accepts doc == NULL and *doc == NULL. */
void cfg_doc_free(cfg_doc_t **doc);

/* The top-level node, or NULL for an empty document. Borrowed until cfg_doc_free(). */
const struct cfg_node *cfg_doc_root(const cfg_doc_t *doc);

/* Follows a dotted key path ("trainer.optim.lr") through nested MAPs from `node`. Returns the
 * node, or NULL when a step is missing or not a MAP. `node` may be NULL (returns NULL). */
const struct cfg_node *cfg_node_get(const struct cfg_node *node, const char *path);

/* True for a plain scalar '', '~', 'null', 'Null' or 'NULL' (YAML's null). */
bool cfg_node_is_null(const struct cfg_node *node);

/* ------------------------------------------------------------------------------------------ */
/* Options                                                                                     */

/* The type of an option and the C type of the field it fills: */
enum cfg_type {
    CFG_INT = 1,  /* int; range [min, max] (both 0: any int) */
    CFG_DOUBLE,   /* double, finite; range [dmin, dmax] (both 0: any finite value) */
    CFG_BOOL,     /* bool: true/false, yes/no, on/off, 1/0 (any case). A bool flag alone
                   * (--verbose) means true; --verbose=false sets false. */
    CFG_STRING,   /* char *, malloc'd, NULL when unset; any text */
    CFG_ENUM,     /* an int or a C enum: the value of the {name, value} pair in `choices` whose
                   * name matches (exact, case-sensitive) */
    CFG_DURATION, /* int64_t milliseconds: 500ms, 2s, 1.5s, 1m, 1h, 1h30m; "0" is allowed bare.
                   * Range [min, max] in ms (both 0: any duration >= 0) */
    CFG_SIZE,     /* size_t bytes: 4096, 512KiB, 64MiB, 2GiB, 1TiB (binary), 10kB, 5MB, 1GB
                   * (decimal), B. Range [min, max] in bytes (both 0: any size) */
    CFG_STRLIST,  /* struct cfg_strlist; a YAML sequence of scalars, or comma-separated text
                   * (environment, flags, defaults, a YAML scalar); items are trimmed */
    CFG_FLOAT,    /* float, finite, parsed as a double and checked against [dmin, dmax] (both 0:
                   * any finite float), then rounded to float */
    CFG_LONG,     /* long; range [min, max] (both 0: any long) */
    CFG_UINT64,   /* uint64_t; range [min, max], min >= 0 (both 0: [0, INT64_MAX]) */
};

/* One name of an enum option and the value it stores. Tables end with {NULL, 0}. */
struct cfg_choice {
    const char *name;
    int value;
};

/* The field type of CFG_STRLIST. items[i] and items are malloc'd; n == 0 means empty (items may
 * then be NULL). */
struct cfg_strlist {
    char **items;
    size_t n;
};

enum {
    CFG_ENDPOINT = 1u << 1, /* CFG_STRING only: a ZeroMQ endpoint; for tcp:// its port must be a
                             * number from 0 to 65535 or * (bus_endpoint_check, buscheck.h) */
    CFG_SECRET = 1u << 0,   /* CFG_STRING only: masked as *** in logs and renders; may also be given
                             * as the file holding it: run file key "<key>_file", environment
                             * "<env>_FILE", flag "<flag>-file"; the value is the file's contents
                             * with surrounding whitespace trimmed (at most 64 KiB, not empty). */
};

/* One option. Write tables with designated initializers and the typed helpers below, which
 * fill .type and a compile-time checked .offset:
 *   CFG_INT_OPT(struct trainer_config, batch_size, .key = "trainer.batch_size", .def = "64",
 *               .min = 1, .max = 4096, .env = "TRAINER_BATCH_SIZE", .flag = "--batch-size",
 *               .help = "Prompts per step."), */
struct cfg_option {
    const char *key; /* dotted path in the run file, "trainer.batch_size"; required, unique */
    enum cfg_type type;
    size_t offset;     /* of the field in the service's config struct (use the helpers) */
    const char *def;   /* default, written as in the environment ("64", "2s", "a,b"); parsed and
                        * checked like any other value. NULL: 0, false, NULL, empty list, the first
                        * choice of an enum. */
    const char *env;   /* environment variable, "TRAINER_BATCH_SIZE", or NULL */
    const char *flag;  /* "--batch-size" (with the dashes), or NULL */
    const char *help;  /* one sentence for --help */
    int64_t min, max;  /* CFG_INT, CFG_DURATION (ms), CFG_SIZE (bytes): inclusive range */
    double dmin, dmax; /* CFG_DOUBLE: inclusive range */
    const struct cfg_choice *choices; /* CFG_ENUM: the names and their values, {NULL, 0}-ended */
    unsigned flags;                   /* CFG_SECRET */
    /* The option's names before a rename (NULL: none). Each keeps working for one release, with
     * a warning naming the new one. old_key may lie in any section. */
    const char *old_key, *old_env, *old_flag;
};

/* offsetof(T, m), which fails to compile unless member m of T has type ctype. */
/* clang-format off */
#define CFG_OFFSET(T, m, ctype) _Generic(&((T *)0)->m, ctype *: offsetof(T, m))
/* offsetof(T, m), which fails to compile unless member m of T is int-sized (an int or an enum) */
#define CFG_OFFSET_INTSIZED(T, m) \
    (offsetof(T, m) + 0 * sizeof(char[sizeof(((T *)0)->m) == sizeof(int) ? 1 : -1]))

#define CFG_INT_OPT(T, m, ...)      {.type = CFG_INT, .offset = CFG_OFFSET(T, m, int), __VA_ARGS__}
#define CFG_DOUBLE_OPT(T, m, ...)   {.type = CFG_DOUBLE, .offset = CFG_OFFSET(T, m, double), \
                                     __VA_ARGS__}
#define CFG_BOOL_OPT(T, m, ...)     {.type = CFG_BOOL, .offset = CFG_OFFSET(T, m, bool), __VA_ARGS__}
#define CFG_STRING_OPT(T, m, ...)   {.type = CFG_STRING, .offset = CFG_OFFSET(T, m, char *), \
                                     __VA_ARGS__}
#define CFG_ENUM_OPT(T, m, ...)     {.type = CFG_ENUM, .offset = CFG_OFFSET_INTSIZED(T, m), \
                                     __VA_ARGS__}
#define CFG_FLOAT_OPT(T, m, ...)    {.type = CFG_FLOAT, .offset = CFG_OFFSET(T, m, float), __VA_ARGS__}
#define CFG_LONG_OPT(T, m, ...)     {.type = CFG_LONG, .offset = CFG_OFFSET(T, m, long), __VA_ARGS__}
#define CFG_UINT64_OPT(T, m, ...)   {.type = CFG_UINT64, .offset = CFG_OFFSET(T, m, uint64_t), \
                                     __VA_ARGS__}
#define CFG_DURATION_OPT(T, m, ...) {.type = CFG_DURATION, .offset = CFG_OFFSET(T, m, int64_t), \
                                     __VA_ARGS__}
#define CFG_SIZE_OPT(T, m, ...)     {.type = CFG_SIZE, .offset = CFG_OFFSET(T, m, size_t), \
                                     __VA_ARGS__}
#define CFG_STRLIST_OPT(T, m, ...)  {.type = CFG_STRLIST, \
                                     .offset = CFG_OFFSET(T, m, struct cfg_strlist), __VA_ARGS__}
/* clang-format on */

/* A service's whole configuration. */
struct cfg_spec {
    const char *name;                 /* program name for --help: "ledger" */
    const char *summary;              /* one line for --help */
    const char *const *sections;      /* run-file sections this service owns, NULL-terminated */
    const struct cfg_option *options; /* the table */
    size_t n_options;
    size_t conf_size; /* sizeof the struct the table fills (0: unknown); lets generic code
                       * (`oaif config show`) load a service's configuration */
};

/* Returned by cfg_load when --help (or -h) was given: the help is on stdout; exit 0. */
#define CFG_HELP 1

/* Fill the option fields of `conf` (a struct of the spec's type) from, in rising precedence: the
 * defaults, the run file (--config FILE, else $OAIF_CONFIG, else none), the environment (an empty
 * variable counts as unset), and the flags in argv[1..argc-1] ("--flag value" or "--flag=value";
 * a plain argument or an unknown flag is an error). A null in the run file (`key:`, `key: ~`)
 * leaves the option as the defaults set it. The option fields of `conf` are overwritten without
 * being freed (start from a zeroed or fresh struct); other fields are left alone.
 * Returns ERR_OK; CFG_HELP after printing the help to stdout; ERR_INVAL when any value (or the
 * spec itself) is bad, ERR_NOMEM. On failure every problem found is one line appended to `errs`
 * (or logged with log_error when errs is NULL), and the option fields are released (strings and
 * lists NULL/empty), so the caller has nothing to free. Uses getenv: call before starting threads
 * that call setenv. */
int cfg_load(const struct cfg_spec *spec, void *conf, int argc, char *const *argv, buf_t *errs);

/* Where an option's value came from: "default", "run.yaml:12:15", "environment TRAINER_LR",
 * "flag --lr", with " (old name)" after a deprecated name. */
#define CFG_ORIGIN_MAX 320
struct cfg_origin {
    char where[CFG_ORIGIN_MAX];
};

/* What cfg_load_ex() reports besides errors. */
struct cfg_trace {
    struct cfg_origin *origins; /* spec->n_options entries, filled in table order; or NULL */
    buf_t *warnings;            /* one line per use of an old name; NULL: log_warn each */
};

/* cfg_load() that also says where each value came from and collects the warnings (old names).
 * trace may be NULL (then it is cfg_load). */
int cfg_load_ex(const struct cfg_spec *spec, void *conf, int argc, char *const *argv, buf_t *errs,
                struct cfg_trace *trace);

/* Fills the option fields of `conf` with the defaults alone (no file, environment or flags).
 * ERR_OK, ERR_NOMEM, or ERR_INVAL when the table itself is bad (logged). Free with
 * cfg_release. */
int cfg_defaults(const struct cfg_spec *spec, void *conf);

/* Frees the strings and lists that cfg_load put in `conf` and zeroes those fields. Safe to call
 * twice, and on a conf that cfg_load failed on. */
void cfg_release(const struct cfg_spec *spec, void *conf);

/* Logs the effective configuration with log_info, one line per option in table order:
 *   config trainer.batch_size = 64
 *   config annotator.api_key = "***"        (secrets that are set; unset ones show null)
 * Values are written as cfg_render_yaml writes them (strings quoted, durations with units). */
void cfg_log(const struct cfg_spec *spec, const void *conf);

/* Appends the configuration to `out` as YAML in the run file's shape (sections and nested keys
 * as mappings, table order, strings double-quoted, durations and sizes with units, secrets that
 * are set as "***"). Returns ERR_OK or buf_append's error. */
int cfg_render_yaml(const struct cfg_spec *spec, const void *conf, buf_t *out);

/* cfg_render_yaml() with "  # <origin>" after each value (origins from cfg_load_ex, in table
 * order; NULL: no comments). */
int cfg_render_yaml_origins(const struct cfg_spec *spec, const void *conf,
                            const struct cfg_origin *origins, buf_t *out);

/* Appends the --help text (usage, summary, then every option with its flag, run-file key,
 * environment variable, type, range and default) to `out`. Returns ERR_OK or buf's error. */
int cfg_help(const struct cfg_spec *spec, buf_t *out);

/* Levenshtein distance with adjacent transpositions (optimal string alignment) between a and b;
 * used for "did you mean" suggestions. Strings longer than 255 bytes give SIZE_MAX. */
size_t cfg_edit_distance(const char *a, const char *b);

#endif /* CFG_H */
