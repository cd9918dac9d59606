/* annotator_opts.c - see annotator_opts.h. */
#include "annotator_opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#ifndef OAIF_JUDGE_TEMPLATE_DIR
#define OAIF_JUDGE_TEMPLATE_DIR "/usr/local/share/oaif/templates"
#endif

#define KEY_MAX 4096 /* the longest API key annotator_new() reads */

static const struct cfg_choice backends[] = {
    {"openai", 0}, {"anthropic", 1}, {"rules", 2}, {"reward-model", 3}, {NULL, 0}};
static const struct cfg_choice orders_choices[] = {{"both", 0}, {"random", 1}, {NULL, 0}};
static const struct cfg_choice cache_choices[] = {{"auto", 0}, {"on", 1}, {"off", 2}, {NULL, 0}};

#define O struct annotator_opts
static const struct cfg_option options[] = {
    /* the judge */
    CFG_ENUM_OPT(O, backend, .key = "annotator.backend", .def = "rules", .choices = backends,
                 .env = "ANNOTATOR_BACKEND", .flag = "--backend",
                 .help = "The judge: openai (any chat-completions server), anthropic, rules (the "
                         "built-in task's simulated annotator) or reward-model (the score "
                         "service)."),
    CFG_STRING_OPT(O, name, .key = "annotator.name", .env = "ANNOTATOR_NAME", .flag = "--name",
                   .help = "Judge id in labels, metrics and the cache key (default: derived, e.g. "
                           "openai/MODEL/TEMPLATE); for reward-model put the ensemble version "
                           "in it."),
    CFG_STRING_OPT(O, base_url, .key = "annotator.base_url", .env = "ANNOTATOR_BASE_URL",
                   .flag = "--base-url",
                   .help = "API base URL (default https://api.openai.com/v1, or "
                           "https://api.anthropic.com/v1 for anthropic)."),
    CFG_STRING_OPT(O, model, .key = "annotator.model", .env = "ANNOTATOR_MODEL", .flag = "--model",
                   .help = "Judge model name (openai, anthropic)."),
    CFG_STRING_OPT(O, api_key, .key = "annotator.api_key", .env = "ANNOTATOR_API_KEY",
                   .flag = "--api-key", .flags = CFG_SECRET,
                   .help = "API key; better given as a file (api_key_file, ANNOTATOR_API_KEY_FILE, "
                           "--api-key-file)."),
    CFG_STRING_OPT(O, api_key_env, .key = "annotator.api_key_env", .env = "ANNOTATOR_API_KEY_ENV",
                   .flag = "--api-key-env",
                   .help = "Name of an environment variable holding the API key (e.g. "
                           "OPENAI_API_KEY), used when api_key is not set."),
    CFG_STRING_OPT(O, template_name, .key = "annotator.template", .def = "helpful",
                   .env = "ANNOTATOR_TEMPLATE", .flag = "--template",
                   .help = "Prompt template: a file path, or the name of one in template_dir "
                           "(helpful, helpful_short, alpaca_eval)."),
    CFG_STRING_OPT(O, template_dir, .key = "annotator.template_dir", .def = OAIF_JUDGE_TEMPLATE_DIR,
                   .env = "ANNOTATOR_TEMPLATE_DIR", .flag = "--template-dir",
                   .help = "Where template names are looked up."),
    CFG_STRING_OPT(O, instruction, .key = "annotator.instruction", .env = "ANNOTATOR_INSTRUCTION",
                   .flag = "--instruction",
                   .help = "Instruction for the judge when a request carries none (e.g. \"prefer "
                           "shorter responses\")."),
    CFG_ENUM_OPT(O, orders, .key = "annotator.orders", .def = "both", .choices = orders_choices,
                 .env = "ANNOTATOR_ORDERS", .flag = "--orders",
                 .help = "both: judge (A,B) and (B,A) and combine; random: one order (half the "
                         "cost, position bias uncorrected)."),
    CFG_DOUBLE_OPT(O, tie_band, .key = "annotator.tie_band", .def = "0", .dmin = 0, .dmax = 0.5,
                   .env = "ANNOTATOR_TIE_BAND", .flag = "--tie-band",
                   .help = "tau: p within 1/2 +- tau is a tie."),
    CFG_DOUBLE_OPT(O, temperature, .key = "annotator.temperature", .def = "0", .dmin = 0, .dmax = 2,
                   .env = "ANNOTATOR_TEMPERATURE", .flag = "--temperature",
                   .help = "Sampling temperature of the judge."),
    CFG_INT_OPT(O, max_tokens, .key = "annotator.max_tokens", .def = "16", .min = 1, .max = 100000,
                .env = "ANNOTATOR_MAX_TOKENS", .flag = "--max-tokens",
                .help = "Completion tokens per judge call."),
    CFG_BOOL_OPT(O, logprobs, .key = "annotator.logprobs", .def = "true",
                 .env = "ANNOTATOR_LOGPROBS", .flag = "--logprobs",
                 .help = "openai: ask for log-probs (a soft probability from the two answer "
                         "tokens); an answer without them falls back to the parsed verdict."),
    CFG_INT_OPT(O, top_logprobs, .key = "annotator.top_logprobs", .def = "5", .min = 1, .max = 20,
                .env = "ANNOTATOR_TOP_LOGPROBS", .flag = "--top-logprobs",
                .help = "openai: alternatives per token position."),
    CFG_BOOL_OPT(O, strip_special, .key = "annotator.strip_special_tokens", .def = "true",
                 .env = "ANNOTATOR_STRIP_SPECIAL_TOKENS", .flag = "--strip-special-tokens",
                 .help = "Remove chat special-token markup from the texts shown to the judge."),
    CFG_STRING_OPT(O, anthropic_version, .key = "annotator.anthropic_version", .def = "2023-06-01",
                   .env = "ANNOTATOR_ANTHROPIC_VERSION", .flag = "--anthropic-version",
                   .help = "anthropic: the anthropic-version header."),
    CFG_STRLIST_OPT(O, extra_headers, .key = "annotator.extra_headers",
                    .env = "ANNOTATOR_EXTRA_HEADERS", .flag = "--extra-header",
                    .help = "More 'Name: value' headers for every call (not secret: logged)."),
    CFG_DOUBLE_OPT(O, price_in, .key = "annotator.price_input_per_mtok", .def = "0", .dmin = 0,
                   .dmax = 1e9, .env = "ANNOTATOR_PRICE_INPUT_PER_MTOK", .flag = "--price-input",
                   .help = "Cost of a million prompt tokens (the cost unit is yours)."),
    CFG_DOUBLE_OPT(O, price_out, .key = "annotator.price_output_per_mtok", .def = "0", .dmin = 0,
                   .dmax = 1e9, .env = "ANNOTATOR_PRICE_OUTPUT_PER_MTOK", .flag = "--price-output",
                   .help = "Cost of a million completion tokens."),
    /* http */
    CFG_INT_OPT(O, max_in_flight, .key = "annotator.http.max_in_flight", .def = "16", .min = 1,
                .max = 4096, .env = "ANNOTATOR_MAX_IN_FLIGHT", .flag = "--max-in-flight",
                .help = "K: judge calls in flight per replica (also its connection pool)."),
    CFG_DURATION_OPT(O, connect_timeout_ms, .key = "annotator.http.connect_timeout", .def = "10s",
                     .min = 1, .max = 600000, .env = "ANNOTATOR_CONNECT_TIMEOUT",
                     .flag = "--connect-timeout", .help = "Per attempt: TCP and TLS connect."),
    CFG_DURATION_OPT(O, timeout_ms, .key = "annotator.http.timeout", .def = "120s", .min = 1,
                     .max = 3600000, .env = "ANNOTATOR_TIMEOUT", .flag = "--timeout",
                     .help = "Per attempt: the whole call."),
    CFG_INT_OPT(O, max_attempts, .key = "annotator.http.max_attempts", .def = "5", .min = 1,
                .max = 100, .env = "ANNOTATOR_MAX_ATTEMPTS", .flag = "--max-attempts",
                .help = "Attempts per call (retries on 408, 409, 429, 5xx, 529 and transport "
                        "errors)."),
    CFG_DURATION_OPT(O, backoff_base_ms, .key = "annotator.http.backoff_base", .def = "500ms",
                     .min = 1, .max = 600000, .env = "ANNOTATOR_BACKOFF_BASE",
                     .flag = "--backoff-base",
                     .help = "First retry delay; doubled each retry, jittered."),
    CFG_DURATION_OPT(O, backoff_max_ms, .key = "annotator.http.backoff_max", .def = "30s", .min = 1,
                     .max = 3600000, .env = "ANNOTATOR_BACKOFF_MAX", .flag = "--backoff-max",
                     .help = "Longest retry delay."),
    CFG_DURATION_OPT(O, retry_after_max_ms, .key = "annotator.http.retry_after_max", .def = "120s",
                     .min = 0, .max = 3600000, .env = "ANNOTATOR_RETRY_AFTER_MAX",
                     .flag = "--retry-after-max",
                     .help = "A longer Retry-After fails the call instead of waiting."),
    CFG_DOUBLE_OPT(O, rpm, .key = "annotator.http.requests_per_minute", .def = "0", .dmin = 0,
                   .dmax = 1e9, .env = "ANNOTATOR_REQUESTS_PER_MINUTE", .flag = "--rpm",
                   .help = "Client-side limit on calls per minute per replica (0: none)."),
    CFG_DOUBLE_OPT(O, tpm, .key = "annotator.http.tokens_per_minute", .def = "0", .dmin = 0,
                   .dmax = 1e12, .env = "ANNOTATOR_TOKENS_PER_MINUTE", .flag = "--tpm",
                   .help = "Client-side limit on tokens per minute per replica (0: none)."),
    CFG_SIZE_OPT(O, max_response, .key = "annotator.http.max_response_size", .def = "8MiB",
                 .min = 1024, .max = 1LL << 30, .env = "ANNOTATOR_MAX_RESPONSE_SIZE",
                 .flag = "--max-response-size", .help = "Larger answers fail the call."),
    /* rules */
    CFG_DOUBLE_OPT(O, noise, .key = "annotator.rules.noise", .def = "0", .dmin = 0, .dmax = 1,
                   .env = "ANNOTATOR_RULES_NOISE", .flag = "--noise",
                   .help = "rules: probability of flipping a label (AlpacaFarm used 0.25)."),
    CFG_INT_OPT(O, noise_seed, .key = "annotator.rules.seed", .def = "1", .min = 0,
                .max = 2147483647, .env = "ANNOTATOR_RULES_SEED", .flag = "--noise-seed",
                .help = "rules: with the pair id it fixes every flip."),
    /* reward-model */
    CFG_DURATION_OPT(O, score_timeout_ms, .key = "annotator.score_timeout", .def = "60s", .min = 10,
                     .max = 3600000, .env = "ANNOTATOR_SCORE_TIMEOUT", .flag = "--score-timeout",
                     .help = "reward-model: how long to wait for the score service."),
    /* the service */
    CFG_ENUM_OPT(O, cache, .key = "annotator.cache", .def = "auto", .choices = cache_choices,
                 .env = "ANNOTATOR_CACHE", .flag = "--cache",
                 .help = "Answer identical requests from the ledger: auto (on except for "
                         "rules), on, off."),
    CFG_INT_OPT(O, credit, .key = "annotator.credit", .def = "0", .min = 0, .max = 65536,
                .env = "ANNOTATOR_CREDIT", .flag = "--credit",
                .help = "Requests taken from the ledger at once (0: K/2 with both orders, K with "
                        "one; 16 for rules, 8 for reward-model)."),
    CFG_STRING_OPT(O, worker_name, .key = "annotator.worker_name", .env = "ANNOTATOR_WORKER_NAME",
                   .flag = "--worker-name", .help = "Name in `oaif status` (default host:pid)."),
    CFG_STRING_OPT(O, metrics_bind, .key = "annotator.metrics_bind", .def = "127.0.0.1",
                   .env = "ANNOTATOR_METRICS_BIND", .flag = "--metrics-bind",
                   .help = "Address of the HTTP server for /metrics and /healthz."),
    CFG_INT_OPT(O, metrics_port, .key = "annotator.metrics_port", .def = "-1", .min = -1,
                .max = 65535, .env = "ANNOTATOR_METRICS_PORT", .flag = "--metrics-port",
                .help = "Its port (0: any free one, -1: no HTTP server)."),
    CFG_STRING_OPT(O, curve_secret_key, .key = "annotator.curve_secret_key",
                   .env = "ANNOTATOR_CURVE_SECRET_KEY", .flag = "--curve-secret",
                   .help = "This service's CURVE key pair file (oaif keys); turns CURVE on."),
    /* where the ledger is (shared with the other services) */
    CFG_STRING_OPT(O, clients_endpoint, .key = "bus.clients_endpoint",
                   .def = "tcp://127.0.0.1:5555", .env = "BUS_CLIENTS_ENDPOINT",
                   .flag = "--clients",
                   .help = "The ledger's client endpoint (cache look-ups, score requests)."),
    CFG_STRING_OPT(O, workers_endpoint, .key = "bus.workers_endpoint",
                   .def = "tcp://127.0.0.1:5556", .env = "BUS_WORKERS_ENDPOINT",
                   .flag = "--workers", .help = "The ledger's worker endpoint."),
    CFG_STRING_OPT(O, ledger_public_key, .key = "bus.ledger_public_key",
                   .env = "BUS_LEDGER_PUBLIC_KEY", .flag = "--ledger-key",
                   .help = "The ledger's CURVE public key: Z85 text or a file (ledger.key.pub)."),
    CFG_DURATION_OPT(O, heartbeat_ms, .key = "ledger.heartbeat_interval", .def = "1s", .min = 10,
                     .max = 600000, .env = "LEDGER_HEARTBEAT_INTERVAL", .flag = "--heartbeat",
                     .help = "Heartbeat interval (the ledger's)."),
};
#undef O

static const char *const sections[] = {"annotator", NULL};
const struct cfg_spec annotator_opts_spec = {
    .name = "annotator-proxy",
    .summary = "The annotate service: which of two responses is better, asked of a judge.",
    .sections = sections,
    .options = options,
    .n_options = sizeof options / sizeof options[0],
};

int annotator_opts_load(struct annotator_opts *o, int argc, char *const *argv, buf_t *errs)
{
    memset(o, 0, sizeof *o);
    return cfg_load(&annotator_opts_spec, o, argc, argv, errs);
}

void annotator_opts_release(struct annotator_opts *o)
{
    cfg_release(&annotator_opts_spec, o);
}

enum annotator_backend annotator_opts_backend(const struct annotator_opts *o)
{
    return (enum annotator_backend)(o->backend + ANNOTATOR_BACKEND_OPENAI);
}

static bool http_backend(const struct annotator_opts *o)
{
    enum annotator_backend b = annotator_opts_backend(o);
    return b == ANNOTATOR_BACKEND_OPENAI || b == ANNOTATOR_BACKEND_ANTHROPIC;
}

bool annotator_opts_cache(const struct annotator_opts *o)
{
    if (o->cache == 0)
        return annotator_opts_backend(o) != ANNOTATOR_BACKEND_RULES;
    return o->cache == 1;
}

unsigned annotator_opts_credit(const struct annotator_opts *o)
{
    if (o->credit > 0)
        return (unsigned)o->credit;
    if (http_backend(o)) {
        unsigned k = (unsigned)o->max_in_flight;
        unsigned c = o->orders == 0 ? k / 2 : k;
        return c ? c : 1;
    }
    return annotator_opts_backend(o) == ANNOTATOR_BACKEND_RULES ? 16 : 8;
}

int annotator_opts_curve(const struct annotator_opts *o, struct bus_curve *out, char *why,
                         size_t whylen)
{
    return bus_curve_client(out, o->curve_secret_key, o->ledger_public_key,
                            "annotator.curve_secret_key", why, whylen);
}

/* ---- the rules backend ------------------------------------------------------------------- */

static const char *rules_verdict_text(const struct rules_verdict *v, enum rules_pref pref)
{
    if (v->reason == RULES_BY_CORRECTNESS)
        return "correct beats wrong";
    if (v->reason == RULES_BY_LENGTH)
        return pref == RULES_PREFER_LONGER ? "longer wins" : "shorter wins";
    return "tie";
}

int annotator_opts_rules(void *user, const struct annotator_request *req,
                         struct annotator_verdict *out, char *why, size_t whylen)
{
    const struct rules_config *rc = user;
    enum rules_pref pref = RULES_PREFER_NONE;
    if (rules_instruction_parse(req->instruction, &pref)) {
        snprintf(why, whylen,
                 "instruction '%.80s' names no preference the rules judge follows (say "
                 "shorter or longer, not both)",
                 req->instruction ? req->instruction : "");
        return ERR_INVAL;
    }
    const char *pair_id = req->pair_id ? req->pair_id : "";
    if (rc->p_noise > 0 && !*pair_id) {
        snprintf(why, whylen, "the pair has no id, and label noise needs one");
        return ERR_INVAL;
    }
    struct rules_verdict v;
    int rc2 = rules_judge_text(rc, req->prompt, req->reference, req->instruction, pair_id,
                               req->responses[0], strlen(req->responses[0]), req->responses[1],
                               strlen(req->responses[1]), &v);
    if (rc2 == ERR_NOTFOUND) {
        snprintf(why, whylen,
                 "no reference answer, and the prompt is not one of the built-in "
                 "task's");
        return rc2;
    }
    if (rc2) {
        snprintf(why, whylen, "the reference answer '%.60s' has no shape the rules can check",
                 req->reference ? req->reference : "");
        return rc2;
    }
    out->prob_first = v.p_first;
    out->noise_flipped = v.flipped;
    snprintf(out->verdict, sizeof out->verdict, "%s", rules_verdict_text(&v, pref));
    return ERR_OK;
}

/* ---- the judge ---------------------------------------------------------------------------- */

/* A template option: a path as is; a bare name ("helpful") is TEMPLATE_DIR/NAME.txt. */
static int template_path(const struct annotator_opts *o, char *out, size_t outlen, char *why,
                         size_t whylen)
{
    const char *t = o->template_name ? o->template_name : "";
    size_t n = strlen(t);
    int w;
    if (!*t) {
        snprintf(why, whylen, "annotator.template: required for the %s backend",
                 backends[o->backend].name);
        return ERR_INVAL;
    }
    if (strchr(t, '/') || (n > 4 && strcmp(t + n - 4, ".txt") == 0))
        w = snprintf(out, outlen, "%s", t);
    else
        w = snprintf(out, outlen, "%s/%s.txt", o->template_dir ? o->template_dir : ".", t);
    if (w < 0 || (size_t)w >= outlen) {
        snprintf(why, whylen, "annotator.template: path too long");
        return ERR_INVAL;
    }
    if (access(out, R_OK) != 0) {
        snprintf(why, whylen, "annotator.template: %s: %s%s", out, strerror(errno),
                 strchr(t, '/') ? "" : " (a name is looked up in annotator.template_dir)");
        return ERR_IO;
    }
    return ERR_OK;
}

int annotator_opts_judge(const struct annotator_opts *o, struct annotator_judge_ctx *ctx,
                         annotator_score_fn score, void *score_user, annotator_t **out, char *why,
                         size_t whylen)
{
    *out = NULL;
    struct annotator_config c;
    char tpl[4096];
    int rc;
    int key_fd[2] = {-1, -1};
    char key_path[64], name[96];
    annotator_config_default(&c);
    c.backend = annotator_opts_backend(o);
    c.name = o->name && *o->name ? o->name : NULL;
    if (!c.name && c.backend == ANNOTATOR_BACKEND_RULES) {
        /* the noise changes the answers: it belongs in the judge id (and so the cache key) */
        snprintf(name, sizeof name, "rules/noise=%g/seed=%d", o->noise, o->noise_seed);
        c.name = name;
    }
    c.orders = o->orders == 0 ? ANNOTATOR_ORDERS_BOTH : ANNOTATOR_ORDERS_RANDOM_ONE;
    c.tie_band = o->tie_band;
    memset(ctx, 0, sizeof *ctx);
    if (c.backend == ANNOTATOR_BACKEND_RULES) {
        ctx->rules.p_noise = o->noise;
        ctx->rules.seed = (uint64_t)o->noise_seed;
        c.rules = annotator_opts_rules;
        c.rules_user = &ctx->rules;
    } else if (c.backend == ANNOTATOR_BACKEND_REWARD_MODEL) {
        if (!score) {
            snprintf(why, whylen, "annotator.backend: reward-model needs the score service");
            return ERR_INVAL;
        }
        c.score = score;
        c.score_user = score_user;
    } else {
        rc = template_path(o, tpl, sizeof tpl, why, whylen);
        if (rc)
            return rc;
        c.template_path = tpl;
        if (o->base_url && *o->base_url)
            c.base_url = o->base_url;
        else if (c.backend == ANNOTATOR_BACKEND_ANTHROPIC)
            c.base_url = "https://api.anthropic.com/v1";
        c.model = o->model;
        c.temperature = o->temperature;
        c.max_tokens = (unsigned)o->max_tokens;
        c.logprobs = o->logprobs;
        c.top_logprobs = (unsigned)o->top_logprobs;
        c.anthropic_version = o->anthropic_version;
        c.strip_special_tokens = o->strip_special;
        c.extra_headers = (const char *const *)o->extra_headers.items;
        c.nextra_headers = o->extra_headers.n;
        c.price_input_per_mtok = o->price_in;
        c.price_output_per_mtok = o->price_out;
        c.http.max_in_flight = (unsigned)o->max_in_flight;
        c.http.connect_timeout_ms = (long)o->connect_timeout_ms;
        c.http.total_timeout_ms = (long)o->timeout_ms;
        c.http.max_attempts = (unsigned)o->max_attempts;
        c.http.backoff_base_ms = (unsigned)o->backoff_base_ms;
        c.http.backoff_max_ms = (unsigned)o->backoff_max_ms;
        c.http.retry_after_max_ms = (unsigned)o->retry_after_max_ms;
        c.http.requests_per_minute = o->rpm;
        c.http.tokens_per_minute = o->tpm;
        c.http.max_response_bytes = o->max_response;
        if (o->api_key && *o->api_key) {
            /* annotator_new() reads a key from a variable or a file; a pipe holding it is a file
             * that never touches the disk or the environment (and so never reaches a child) */
            size_t kl = strlen(o->api_key);
            if (kl > KEY_MAX || strpbrk(o->api_key, "\r\n")) {
                snprintf(why, whylen, "annotator.api_key: must be one line of at most %d bytes",
                         KEY_MAX);
                return ERR_INVAL;
            }
            if (pipe(key_fd) != 0) {
                snprintf(why, whylen, "annotator.api_key: pipe: %s", strerror(errno));
                return ERR_IO;
            }
            ssize_t wr = write(key_fd[1], o->api_key, kl);
            close(key_fd[1]);
            if (wr != (ssize_t)kl) {
                close(key_fd[0]);
                snprintf(why, whylen, "annotator.api_key: could not hand the key over");
                return ERR_IO;
            }
            snprintf(key_path, sizeof key_path, "/dev/fd/%d", key_fd[0]);
            c.api_key_file = key_path;
        } else if (o->api_key_env && *o->api_key_env) {
            c.api_key_env = o->api_key_env;
        }
    }
    rc = annotator_new(out, &c, why, whylen);
    if (key_fd[0] >= 0)
        close(key_fd[0]);
    return rc;
}

void annotator_opts_describe(const struct annotator_opts *o, const annotator_t *a, char *out,
                             size_t len)
{
    annotator_describe(a, out, len);
    static const char pipe_src[] = "set from file /dev/fd/";
    char *p = len ? strstr(out, pipe_src) : NULL;
    if (!p || !o->api_key || !*o->api_key)
        return;
    const char *rest = p + strlen(pipe_src);
    rest += strspn(rest, "0123456789");
    char *tmp = malloc(len);
    if (!tmp)
        return;
    /* may grow the text a little: snprintf truncates at len like annotator_describe() */
    snprintf(tmp, len, "%.*sset from annotator.api_key%s", (int)(p - out), out, rest);
    memcpy(out, tmp, strlen(tmp) + 1);
    free(tmp);
}
