/* cmd_health.c - `oaif health [URL]`: GET a service's /healthz once and exit 0 when it answers 200,
 * 1 otherwise (the reason on stderr). It is the container image's HEALTHCHECK: the image carries no
 * curl or shell tricks, and a check needs nothing but the binary every service image has. */
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "err.h"
#include "http.h"

struct health_opts {
    char *url;
    int64_t timeout_ms;
};

static const struct cfg_option options[] = {
    CFG_STRING_OPT(struct health_opts, url, .key = "oaif.health.url", .env = "OAIF_HEALTH_URL",
                   .def = "http://127.0.0.1:9100/healthz",
                   .help = "What to check when no URL is given (the default is the ledger's)."),
    CFG_DURATION_OPT(struct health_opts, timeout_ms, .key = "oaif.health.timeout",
                     .flag = "--timeout", .def = "3s", .min = 10, .max = 600000,
                     .help = "Give up after this long (connect and answer together)."),
};

static const struct cfg_spec spec = {
    .name = "oaif health [URL]",
    .summary = "GETs a service's /healthz once: exit 0 on 200, 1 otherwise (the reason on stderr).",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct health_opts),
};

struct health_result {
    int done, rc;
    long status;
    char why[256];
};

static void on_done(void *user, const struct http_response *resp)
{
    struct health_result *r = user;
    r->done = 1;
    r->rc = resp->rc;
    r->status = resp->status;
    snprintf(r->why, sizeof r->why, "%s", resp->error ? resp->error : "");
}

int cmd_health(int argc, char **argv)
{
    static const char verb[] = "oaif health";
    struct health_opts o = {0};
    int npos, rc = cli_load(verb, &spec, &o, argc, argv, 1, &npos);
    if (rc)
        return cli_exit_status(rc);
    const char *url = npos == 1 ? argv[0] : o.url;
    int status = 1;
    http_client_t *c = NULL;
    struct http_config hc = http_config_default();
    hc.max_attempts = 1; /* the container runtime retries (HEALTHCHECK --retries) */
    hc.connect_timeout_ms = o.timeout_ms;
    hc.total_timeout_ms = o.timeout_ms;
    struct http_request req = {.method = "GET", .url = url};
    struct health_result r = {0};
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cli_error(verb, "curl_global_init failed");
    } else {
        if (http_client_new(&c, &hc) || http_client_submit(c, &req, on_done, &r)) {
            cli_error(verb, "%s: cannot start the request", url);
        } else {
            while (!r.done && http_client_poll(c, 100, NULL, 0) == ERR_OK)
                ;
            if (!r.done)
                cli_error(verb, "%s: the HTTP client failed", url);
            else if (r.rc != ERR_OK)
                cli_error(verb, "%s: unhealthy (HTTP %ld%s%s)", url, r.status, r.why[0] ? ": " : "",
                          r.why);
            else
                status = 0;
        }
        http_client_destroy(&c);
        curl_global_cleanup();
    }
    cfg_release(&spec, &o);
    return status;
}
