/* cli.c - see cli.h. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "buf.h"
#include "err.h"

struct cli_conn_only {
    struct cli_conn conn;
};

static const struct cfg_option conn_options[] = {
    CLI_CONN_OPTIONS(struct cli_conn_only, conn),
};

const struct cfg_spec cli_conn_spec = {
    .name = "oaif",
    .summary = "The oaif command's connection to the ledger (every verb that talks to it).",
    .options = conn_options,
    .n_options = sizeof conn_options / sizeof conn_options[0],
    .conf_size = sizeof(struct cli_conn_only),
};

void cli_error(const char *verb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", verb);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- splitting argv ----------------------------------------------------------------------- */

/* Whether `arg` (a word of argv, without "=value") names option o: its flag, its old flag, or a
 * secret's "-file" form of either. */
static bool names_option(const struct cfg_option *o, const char *arg, size_t len)
{
    const char *names[2] = {o->flag, o->old_flag};
    for (int i = 0; i < 2; i++) {
        size_t fl = names[i] ? strlen(names[i]) : 0;
        if (!fl || strncmp(arg, names[i], fl) != 0)
            continue;
        if (len == fl)
            return true;
        if ((o->flags & CFG_SECRET) && len == fl + 5 && strncmp(arg + fl, "-file", 5) == 0)
            return true;
    }
    return false;
}

enum flag_kind { FLAG_NONE, FLAG_ALONE, FLAG_VALUE };

/* How `spec` takes argv word `arg`: not at all, as a flag alone (--help, a bool, any --x=value),
 * or as a flag followed by its value. */
static enum flag_kind flag_kind(const struct cfg_spec *spec, const char *arg)
{
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
        return FLAG_ALONE;
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
        return FLAG_NONE;
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    if (len == 8 && !strncmp(arg, "--config", 8))
        return eq ? FLAG_ALONE : FLAG_VALUE;
    for (size_t i = 0; i < spec->n_options; i++) {
        const struct cfg_option *o = &spec->options[i];
        if (!names_option(o, arg, len))
            continue;
        bool is_file = o->flags & CFG_SECRET && len > 5 && !strncmp(arg + len - 5, "-file", 5);
        return eq || (o->type == CFG_BOOL && !is_file) ? FLAG_ALONE : FLAG_VALUE;
    }
    return FLAG_NONE;
}

int cli_mark_flags(const struct cfg_spec *spec, int argc, char *const *argv, bool *mine)
{
    int n = 0;
    for (int i = 0; i < argc; i++) {
        mine[i] = false;
        if (!strcmp(argv[i], "--")) {
            for (i++; i < argc; i++)
                mine[i] = false;
            break;
        }
        enum flag_kind k = flag_kind(spec, argv[i]);
        if (k == FLAG_NONE)
            continue;
        mine[i] = true;
        n++;
        if (k == FLAG_VALUE && i + 1 < argc) {
            mine[++i] = true;
            n++;
        }
    }
    return n;
}

const char *cli_config_path(int argc, char *const *argv)
{
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (!strncmp(argv[i], "--config=", 9))
            return argv[i] + 9;
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            return argv[i + 1];
    }
    const char *env = getenv("OAIF_CONFIG");
    return env && *env ? env : NULL;
}

/* ---- loading ------------------------------------------------------------------------------ */

#define CLI_ARG_MAX 48 /* room for a rewritten argument ("--timeout-ms=" 18 digits "ms") */

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* Whether `value` is a bare number of milliseconds given to an old duration flag named "...-ms"
 * (--timeout-ms 300): the duration parser wants a unit, so the caller appends "ms". */
static bool bare_ms(const struct cfg_spec *spec, const char *flag, size_t flen, const char *value)
{
    if (flen < 3 || strncmp(flag + flen - 3, "-ms", 3) != 0 || !all_digits(value) ||
        strlen(value) > 18)
        return false;
    for (size_t i = 0; i < spec->n_options; i++) {
        const struct cfg_option *o = &spec->options[i];
        if (o->type == CFG_DURATION && o->old_flag && strlen(o->old_flag) == flen &&
            !strncmp(o->old_flag, flag, flen))
            return true;
    }
    return false;
}

void cli_print_lines(const char *prefix, const buf_t *b)
{
    const char *p = b->data ? b->data : "";
    while (*p) {
        size_t n = strcspn(p, "\n");
        fprintf(stderr, "%s%.*s\n", prefix, (int)n, p);
        p += n + (p[n] == '\n');
    }
}

int cli_load(const char *verb, const struct cfg_spec *spec, void *conf, int argc, char **argv,
             int max_pos, int *npos)
{
    *npos = 0;
    /* Flags for cfg: argv[0] is the program's name there, and rewritten values need room. */
    char **flags = calloc((size_t)argc + 2, sizeof *flags);
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    char(*tmp)[CLI_ARG_MAX] = calloc((size_t)argc + 1, sizeof *tmp);
    bool *mine = calloc((size_t)argc + 1, sizeof *mine);
    if (!flags || !rest || !tmp || !mine) {
        free(flags);
        free(rest);
        free(tmp);
        free(mine);
        cli_error(verb, "out of memory");
        return ERR_NOMEM;
    }
    cli_mark_flags(spec, argc, argv, mine);
    int nf = 0, nr = 0;
    flags[nf++] = (char *)verb;
    bool positional_only = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!positional_only && !strcmp(a, "--")) {
            positional_only = true;
        } else if (mine[i] && flag_kind(spec, a) == FLAG_VALUE && i + 1 < argc && mine[i + 1]) {
            flags[nf++] = argv[i];
            const char *v = argv[++i];
            if (bare_ms(spec, a, strlen(a), v) && snprintf(tmp[i], CLI_ARG_MAX, "%sms", v) > 0)
                v = tmp[i];
            flags[nf++] = (char *)v;
        } else if (mine[i]) {
            const char *eq = strchr(a, '=');
            if (eq && bare_ms(spec, a, (size_t)(eq - a), eq + 1) && strlen(a) + 3 < CLI_ARG_MAX &&
                snprintf(tmp[i], CLI_ARG_MAX, "%sms", a) > 0)
                a = tmp[i];
            flags[nf++] = (char *)a;
        } else if (!positional_only && a[0] == '-' && a[1] != '\0') {
            flags[nf++] = argv[i]; /* not the spec's: cfg names it ("flag --x: unknown; did you
                                    * mean --y?") */
        } else {
            rest[nr++] = argv[i];
        }
    }
    buf_t errs, warnings;
    buf_init(&errs, 0);
    buf_init(&warnings, 0);
    struct cfg_trace trace = {.warnings = &warnings};
    int rc = cfg_load_ex(spec, conf, nf, flags, &errs, &trace);
    if (!rc && max_pos >= 0 && nr > max_pos) {
        buf_printf(&errs, "unexpected argument '%s'", rest[max_pos]);
        cfg_release(spec, conf);
        rc = ERR_INVAL;
    }
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s: warning: ", verb);
    cli_print_lines(prefix, &warnings);
    if (rc == ERR_INVAL || rc == ERR_NOMEM) {
        snprintf(prefix, sizeof prefix, "%s: ", verb);
        cli_print_lines(prefix, &errs);
        fprintf(stderr, "%s: see %s --help\n", verb, verb);
    }
    buf_free(&errs);
    buf_free(&warnings);
    if (!rc) {
        memcpy(argv, rest, (size_t)nr * sizeof *rest);
        *npos = nr;
    }
    free(flags);
    free(rest);
    free(tmp);
    free(mine);
    return rc;
}

int cli_exit_status(int rc)
{
    return rc == CFG_HELP ? 0 : rc == ERR_NOMEM ? 1 : 2;
}

/* ---- the ledger --------------------------------------------------------------------------- */

int cli_ledger_open(struct cli_ledger *l, const char *verb, const struct cli_conn *conn)
{
    memset(l, 0, sizeof *l);
    l->verb = verb;
    l->conn = conn;
    l->timeout_ms = conn->timeout_ms > 0x7fffffff ? 0x7fffffff : (int)conn->timeout_ms;
    struct bus_curve curve;
    char why[600];
    if (bus_curve_client(&curve, conn->curve_secret_key, conn->ledger_public_key,
                         "--curve-secret (oaif.curve_secret_key)", why, sizeof why)) {
        cli_error(verb, "%s", why);
        return 2;
    }
    l->zctx = zmq_ctx_new();
    struct bus_client_opts o = {.endpoint = conn->clients_endpoint, .curve = &curve};
    if (!l->zctx || bus_client_new(&l->client, l->zctx, &o)) {
        cli_error(verb, "cannot connect to %s", conn->clients_endpoint);
        return 1;
    }
    return 0;
}

void cli_ledger_close(struct cli_ledger *l)
{
    bus_client_destroy(&l->client);
    if (l->zctx)
        zmq_ctx_term(l->zctx);
    l->zctx = NULL;
}

int cli_ledger_failed(const struct cli_ledger *l, int rc)
{
    if (rc == ERR_TIMEOUT)
        cli_error(l->verb, "no answer from the ledger at %s within %d ms (is it running?)",
                  l->conn->clients_endpoint, l->timeout_ms);
    else if (rc == ERR_REMOTE)
        cli_error(l->verb, "the ledger says: %s", bus_client_last_error(l->client));
    else
        cli_error(l->verb, "%s", err_str(rc));
    return 1;
}

int cli_ledger_scan(struct cli_ledger *l, Oaif__V1__RecordKind kind,
                    void (*fn)(void *ctx, const Oaif__V1__Record *rec), void *ctx)
{
    uint64_t after = 0;
    return cli_ledger_scan_from(l, kind, &after, fn, ctx);
}

int cli_ledger_scan_from(struct cli_ledger *l, Oaif__V1__RecordKind kind, uint64_t *after,
                         void (*fn)(void *ctx, const Oaif__V1__Record *rec), void *ctx)
{
    for (bool more = true; more;) {
        Oaif__V1__Envelope *env = NULL;
        int rc = bus_client_scan(l->client, kind, *after, 1000, l->timeout_ms, &env);
        if (rc)
            return cli_ledger_failed(l, rc);
        const Oaif__V1__Records *r = env->records;
        for (size_t i = 0; i < r->n_records; i++)
            fn(ctx, r->records[i]);
        more = r->more;
        if (r->next_seq > *after)
            *after = r->next_seq;
        oaif__v1__envelope__free_unpacked(env, NULL);
    }
    return 0;
}

/* ---- input files -------------------------------------------------------------------------- */

int cli_packed_add(struct cli_packed_list *l, const char *id, const ProtobufCMessage *m)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct cli_packed *items = realloc(l->items, cap * sizeof *items);
        if (!items)
            return ERR_NOMEM;
        l->items = items;
        l->cap = cap;
    }
    size_t len = protobuf_c_message_get_packed_size(m);
    struct cli_packed p = {.id = strdup(id), .data = malloc(len ? len : 1), .len = len};
    if (!p.id || !p.data) {
        free(p.id);
        free(p.data);
        return ERR_NOMEM;
    }
    protobuf_c_message_pack(m, p.data);
    l->items[l->n++] = p;
    return ERR_OK;
}

void cli_packed_free(struct cli_packed_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].id);
        free(l->items[i].data);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

int cli_jsonl_read(const char *path, cli_jsonl_fn fn, void *ctx, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return ERR_NOTFOUND;
    }
    char *line = NULL, where[1100];
    size_t lcap = 0;
    ssize_t len;
    int lineno = 0, rc = ERR_OK;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: is a directory, not a JSONL file", path);
        if (f != stdin)
            fclose(f);
        return ERR_INVAL;
    }
    while (!rc && (len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (line[strspn(line, " \t")] == '\0')
            continue;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, 0, &je);
        if (!o) {
            snprintf(err, errlen, "%s:%d: not valid JSON: %s", where, je.column, je.text);
            rc = ERR_INVAL;
        } else if (!json_is_object(o)) {
            snprintf(err, errlen, "%s: expected a JSON object per line", where);
            rc = ERR_INVAL;
        } else {
            rc = fn(ctx, o, where, err, errlen);
        }
        json_decref(o);
    }
    /* getline's -1 is also a read error: not the end of the file. */
    if (!rc && ferror(f)) {
        snprintf(err, errlen, "%s: read error after line %d: %s", path, lineno, strerror(errno));
        rc = ERR_IO;
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return rc;
}

void cli_hex(char *out, const uint8_t *bytes, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}
