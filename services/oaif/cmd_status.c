/* cmd_status.c - `oaif status`: the ledger's view of the deployment: workers per service, queues,
 * in-flight requests, dead letters, rates, and the records of each kind. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>

#include "buf.h"
#include "cli.h"
#include "cmd.h"
#include "kinds.h"
#include "pbjson.h"

struct status_opts {
    struct cli_conn conn;
    bool json;
};

static const struct cfg_option options[] = {
    CLI_CONN_OPTIONS(struct status_opts, conn),
    CFG_BOOL_OPT(struct status_opts, json, .key = "oaif.status.json", .flag = "--json",
                 .help = "The ledger's Status message as one line of JSON."),
};

static const struct cfg_spec spec = {
    .name = "oaif status",
    .summary = "Workers per service, queues, in-flight requests, dead letters, rates, records.",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct status_opts),
};

static void print_table(const char *endpoint, const Oaif__V1__Status *s)
{
    printf("ledger %s   up %.0f s   requests %" PRIu64 "   dead letters %" PRIu64
           "   bad messages %" PRIu64 "   commit p50 %.2f ms p99 %.2f ms\n",
           endpoint, (double)s->uptime_ms / 1000.0, s->requests_total, s->dead_letters,
           s->dropped_messages, s->commit_p50_ms, s->commit_p99_ms);
    printf("\n%-18s %7s %7s %8s %9s %10s %7s %11s %9s\n", "service", "workers", "credit", "queued",
           "in-flight", "completed", "failed", "redelivered", "rate/s");
    for (size_t i = 0; i < s->n_services; i++) {
        const Oaif__V1__ServiceStatus *v = s->services[i];
        printf("%-18s %7u %7u %8" PRIu64 " %9" PRIu64 " %10" PRIu64 " %7" PRIu64 " %11" PRIu64
               " %9.1f\n",
               v->name, v->workers, v->credit, v->queued, v->in_flight, v->completed, v->failed,
               v->redelivered, v->rate);
    }
    if (!s->n_services)
        printf("(no service has been asked for or offered yet)\n");
    printf("\n%-12s %10s %10s\n", "records", "count", "last seq");
    for (size_t i = 0; i < s->n_records; i++) {
        const Oaif__V1__RecordCount *r = s->records[i];
        const char *name = kinds_name(r->kind);
        printf("%-12s %10" PRIu64 " %10" PRIu64 "\n", name ? name : "?", r->count, r->last_seq);
    }
}

int cmd_status(int argc, char **argv)
{
    struct status_opts o = {0};
    int npos, rc = cli_load("oaif status", &spec, &o, argc, argv, 0, &npos);
    if (rc)
        return cli_exit_status(rc);
    struct cli_ledger l = {0};
    Oaif__V1__Envelope *env = NULL;
    int status = cli_ledger_open(&l, "oaif status", &o.conn);
    if (!status && (rc = bus_client_status(l.client, l.timeout_ms, &env)))
        status = cli_ledger_failed(&l, rc);
    if (!status && o.json) {
        buf_t b;
        buf_init(&b, 0);
        pbjson_append(&b, &env->status->base);
        printf("%s\n", b.data);
        buf_free(&b);
    } else if (!status) {
        print_table(o.conn.clients_endpoint, env->status);
    }
    if (env)
        oaif__v1__envelope__free_unpacked(env, NULL);
    cli_ledger_close(&l);
    cfg_release(&spec, &o);
    return status;
}
