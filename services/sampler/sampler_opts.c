/* sampler_opts.c - see sampler_opts.h. */
#include "sampler_opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static const struct cfg_choice backends[] = {{"builtin", 0}, {"remote", 1}, {NULL, 0}};

#define O struct sampler_opts
static const struct cfg_option options[] = {
    CFG_ENUM_OPT(O, backend, .key = "sampler.backend", .def = "builtin", .choices = backends,
                 .env = "SAMPLER_BACKEND", .flag = "--backend",
                 .help = "builtin: the engine on checkpoints from checkpoint_dir; remote: an "
                         "OpenAI-compatible /v1/completions server (vLLM, llama.cpp)."),
    CFG_STRING_OPT(O, checkpoint_dir, .key = "sampler.checkpoint_dir", .def = "./data/checkpoints",
                   .env = "SAMPLER_CHECKPOINT_DIR", .flag = "--checkpoint-dir",
                   .help = "The checkpoint store's root (<kind>-v<version>/ directories)."),
    CFG_BOOL_OPT(O, reload_on_publish, .key = "sampler.reload_on_publish", .def = "true",
                 .env = "SAMPLER_RELOAD_ON_PUBLISH", .flag = "--reload-on-publish",
                 .help = "Load each new policy checkpoint the ledger announces (in the "
                         "background) and serve it once loaded."),
    CFG_INT_OPT(O, max_loaded, .key = "sampler.max_loaded", .def = "2", .min = 1, .max = 64,
                .env = "SAMPLER_MAX_LOADED", .flag = "--max-loaded",
                .help = "Policy versions kept in memory (the newest and the most recently used; "
                        "the evaluator needs SFT and the latest)."),
    CFG_STRING_OPT(O, prompt_template, .key = "sampler.template", .env = "SAMPLER_TEMPLATE",
                   .flag = "--template",
                   .help = "Prompt template with {prompt} once (default \"Human: "
                           "{prompt}\\n\\nAssistant:\"; \"{prompt}\" for none)."),
    CFG_INT_OPT(O, n, .key = "sampler.responses_per_prompt", .def = "2", .min = 1, .max = 1024,
                .env = "SAMPLER_RESPONSES_PER_PROMPT", .flag = "--n",
                .help = "Responses per prompt when a request says 0."),
    CFG_DOUBLE_OPT(O, temperature, .key = "sampler.temperature", .def = "0.9", .dmin = 0.0001,
                   .dmax = 5, .env = "SAMPLER_TEMPERATURE", .flag = "--temperature",
                   .help = "Temperature when a request says 0 (greedy is top_k 1)."),
    CFG_DOUBLE_OPT(O, top_p, .key = "sampler.top_p", .def = "1", .dmin = 0.0001, .dmax = 1,
                   .env = "SAMPLER_TOP_P", .flag = "--top-p",
                   .help = "Nucleus mass when a request says 0 (1: off)."),
    CFG_INT_OPT(O, top_k, .key = "sampler.top_k", .def = "0", .min = 0, .max = 1000000,
                .env = "SAMPLER_TOP_K", .flag = "--top-k",
                .help = "Top-k when a request says 0 (0: off)."),
    CFG_INT_OPT(O, max_new_tokens, .key = "sampler.max_new_tokens", .def = "128", .min = 1,
                .max = 1000000, .env = "SAMPLER_MAX_NEW_TOKENS", .flag = "--max-new-tokens",
                .help = "New tokens per response when a request says 0."),
    CFG_INT_OPT(O, seed, .key = "sampler.seed", .def = "1", .min = 0, .max = 2147483647,
                .env = "SAMPLER_SEED", .flag = "--seed",
                .help = "With the request id, the seed of requests that give none."),
    CFG_INT_OPT(O, max_prompts, .key = "sampler.max_prompts", .def = "256", .min = 1,
                .max = 1000000, .env = "SAMPLER_MAX_PROMPTS", .flag = "--max-prompts",
                .help = "Prompts per request (more: a bad request)."),
    CFG_INT_OPT(O, max_n, .key = "sampler.max_responses_per_prompt", .def = "16", .min = 1,
                .max = 1024, .env = "SAMPLER_MAX_RESPONSES_PER_PROMPT",
                .flag = "--max-responses-per-prompt", .help = "The largest n a request may ask."),
    CFG_INT_OPT(O, max_responses, .key = "sampler.max_responses", .def = "512", .min = 1,
                .max = 1000000, .env = "SAMPLER_MAX_RESPONSES", .flag = "--max-responses",
                .help = "Prompts x n per request (the engine's batch: memory grows with it)."),
    CFG_INT_OPT(O, max_new_tokens_limit, .key = "sampler.max_new_tokens_limit", .def = "1024",
                .min = 1, .max = 1000000, .env = "SAMPLER_MAX_NEW_TOKENS_LIMIT",
                .flag = "--max-new-tokens-limit",
                .help = "The largest max_new_tokens a request "
                        "may ask."),
    CFG_INT_OPT(O, threads, .key = "sampler.threads", .def = "0", .min = 0, .max = 1024,
                .env = "SAMPLER_THREADS", .flag = "--threads",
                .help = "OpenMP threads of the engine (0: OMP_NUM_THREADS or every core)."),
    CFG_DURATION_OPT(O, rescan_ms, .key = "sampler.rescan_interval", .def = "10s", .min = 50,
                     .max = 86400000, .env = "SAMPLER_RESCAN_INTERVAL", .flag = "--rescan",
                     .help = "How often the ledger's checkpoints are read even without an event "
                             "(events are hints)."),
    /* remote */
    CFG_STRING_OPT(O, base_url, .key = "sampler.remote.base_url", .env = "SAMPLER_REMOTE_BASE_URL",
                   .flag = "--base-url",
                   .help = "remote: the API base, e.g. http://vllm:8000/v1 (POST "
                           "<base_url>/completions)."),
    CFG_STRING_OPT(O, model, .key = "sampler.remote.model", .env = "SAMPLER_REMOTE_MODEL",
                   .flag = "--model", .help = "remote: the model name the server serves."),
    CFG_STRING_OPT(O, api_key, .key = "sampler.remote.api_key", .env = "SAMPLER_REMOTE_API_KEY",
                   .flag = "--api-key", .flags = CFG_SECRET,
                   .help = "remote: API key; better given as a file (api_key_file, "
                           "SAMPLER_REMOTE_API_KEY_FILE, --api-key-file)."),
    CFG_STRING_OPT(O, api_key_env, .key = "sampler.remote.api_key_env",
                   .env = "SAMPLER_REMOTE_API_KEY_ENV", .flag = "--api-key-env",
                   .help = "remote: the environment variable holding the API key, used when "
                           "api_key is not set."),
    CFG_INT_OPT(O, remote_version, .key = "sampler.remote.version", .def = "0", .min = 0,
                .max = 2147483647, .env = "SAMPLER_REMOTE_VERSION", .flag = "--remote-version",
                .help = "remote: the policy version reported for what the server serves."),
    CFG_BOOL_OPT(O, remote_logprobs, .key = "sampler.remote.logprobs", .def = "true",
                 .env = "SAMPLER_REMOTE_LOGPROBS", .flag = "--remote-logprobs",
                 .help = "remote: ask for log-probs and report their sum."),
    CFG_INT_OPT(O, max_in_flight, .key = "sampler.remote.max_in_flight", .def = "16", .min = 1,
                .max = 4096, .env = "SAMPLER_REMOTE_MAX_IN_FLIGHT", .flag = "--max-in-flight",
                .help = "remote: calls at once (one call per response)."),
    CFG_DURATION_OPT(O, connect_timeout_ms, .key = "sampler.remote.connect_timeout", .def = "10s",
                     .min = 1, .max = 600000, .env = "SAMPLER_REMOTE_CONNECT_TIMEOUT",
                     .flag = "--connect-timeout", .help = "remote: per attempt, the connect."),
    CFG_DURATION_OPT(O, timeout_ms, .key = "sampler.remote.timeout", .def = "120s", .min = 1,
                     .max = 3600000, .env = "SAMPLER_REMOTE_TIMEOUT", .flag = "--timeout",
                     .help = "remote: per attempt, the whole call."),
    CFG_INT_OPT(O, max_attempts, .key = "sampler.remote.max_attempts", .def = "5", .min = 1,
                .max = 100, .env = "SAMPLER_REMOTE_MAX_ATTEMPTS", .flag = "--max-attempts",
                .help = "remote: attempts per call (retries on 408, 409, 429, 5xx, 529 and "
                        "transport errors)."),
    CFG_DURATION_OPT(O, backoff_base_ms, .key = "sampler.remote.backoff_base", .def = "500ms",
                     .min = 1, .max = 600000, .env = "SAMPLER_REMOTE_BACKOFF_BASE",
                     .flag = "--backoff-base",
                     .help = "remote: first retry delay; doubled each retry, jittered."),
    CFG_DURATION_OPT(O, backoff_max_ms, .key = "sampler.remote.backoff_max", .def = "30s", .min = 1,
                     .max = 3600000, .env = "SAMPLER_REMOTE_BACKOFF_MAX", .flag = "--backoff-max",
                     .help = "remote: longest retry delay."),
    CFG_DURATION_OPT(O, retry_after_max_ms, .key = "sampler.remote.retry_after_max", .def = "120s",
                     .min = 0, .max = 3600000, .env = "SAMPLER_REMOTE_RETRY_AFTER_MAX",
                     .flag = "--retry-after-max",
                     .help = "remote: a longer Retry-After fails the call instead of waiting."),
    /* the service */
    CFG_STRING_OPT(O, worker_name, .key = "sampler.worker_name", .env = "SAMPLER_WORKER_NAME",
                   .flag = "--worker-name", .help = "Name in `oaif status` (default host:pid)."),
    CFG_STRING_OPT(O, metrics_bind, .key = "sampler.metrics_bind", .def = "127.0.0.1",
                   .env = "SAMPLER_METRICS_BIND", .flag = "--metrics-bind",
                   .help = "Address of the HTTP server for /metrics and /healthz."),
    CFG_INT_OPT(O, metrics_port, .key = "sampler.metrics_port", .def = "-1", .min = -1,
                .max = 65535, .env = "SAMPLER_METRICS_PORT", .flag = "--metrics-port",
                .help = "Its port (0: any free one, -1: no HTTP server)."),
    CFG_STRING_OPT(O, curve_secret_key, .key = "sampler.curve_secret_key",
                   .env = "SAMPLER_CURVE_SECRET_KEY", .flag = "--curve-secret",
                   .help = "This service's CURVE key pair file (oaif keys); turns CURVE on."),
    /* where the ledger is (shared with the other services) */
    CFG_STRING_OPT(O, clients_endpoint, .key = "bus.clients_endpoint",
                   .def = "tcp://127.0.0.1:5555", .env = "BUS_CLIENTS_ENDPOINT",
                   .flag = "--clients",
                   .help = "The ledger's client endpoint (checkpoint records)."),
    CFG_STRING_OPT(O, workers_endpoint, .key = "bus.workers_endpoint",
                   .def = "tcp://127.0.0.1:5556", .env = "BUS_WORKERS_ENDPOINT",
                   .flag = "--workers", .help = "The ledger's worker endpoint."),
    CFG_STRING_OPT(O, events_endpoint, .key = "bus.events_endpoint", .def = "tcp://127.0.0.1:5557",
                   .env = "BUS_EVENTS_ENDPOINT", .flag = "--events",
                   .help = "The ledger's PUB endpoint (checkpoint events; empty: none, rely on "
                           "rescan_interval)."),
    CFG_STRING_OPT(O, ledger_public_key, .key = "bus.ledger_public_key",
                   .env = "BUS_LEDGER_PUBLIC_KEY", .flag = "--ledger-key",
                   .help = "The ledger's CURVE public key: Z85 text or a file (ledger.key.pub)."),
    CFG_DURATION_OPT(O, heartbeat_ms, .key = "ledger.heartbeat_interval", .def = "1s", .min = 10,
                     .max = 600000, .env = "LEDGER_HEARTBEAT_INTERVAL", .flag = "--heartbeat",
                     .help = "Heartbeat interval (the ledger's)."),
};
#undef O

static const char *const sections[] = {"sampler", NULL};
const struct cfg_spec sampler_opts_spec = {
    .name = "sampler",
    .summary = "The sample service: n responses per prompt from a policy version.",
    .sections = sections,
    .options = options,
    .n_options = sizeof options / sizeof options[0],
};

int sampler_opts_load(struct sampler_opts *o, int argc, char *const *argv, buf_t *errs)
{
    memset(o, 0, sizeof *o);
    return cfg_load(&sampler_opts_spec, o, argc, argv, errs);
}

void sampler_opts_release(struct sampler_opts *o)
{
    cfg_release(&sampler_opts_spec, o);
}

int sampler_opts_config(const struct sampler_opts *o, struct sampler_config *c, char *why,
                        size_t whylen)
{
    sampler_config_default(c);
    c->backend = o->backend == 1 ? SAMPLER_BACKEND_REMOTE : SAMPLER_BACKEND_BUILTIN;
    c->checkpoint_dir = o->checkpoint_dir;
    c->prompt_template = o->prompt_template;
    c->max_loaded = (unsigned)o->max_loaded;
    c->n = (unsigned)o->n;
    c->temperature = (float)o->temperature;
    c->top_p = (float)o->top_p;
    c->top_k = (unsigned)o->top_k;
    c->max_new_tokens = (unsigned)o->max_new_tokens;
    c->seed = (uint64_t)o->seed;
    c->max_prompts = (unsigned)o->max_prompts;
    c->max_n = (unsigned)o->max_n;
    c->max_responses = (unsigned)o->max_responses;
    c->max_new_tokens_limit = (unsigned)o->max_new_tokens_limit;
    struct sampler_remote_config *r = &c->remote;
    r->base_url = o->base_url;
    r->model = o->model;
    r->api_key = o->api_key && *o->api_key ? o->api_key : NULL;
    if (!r->api_key && o->api_key_env && *o->api_key_env) {
        r->api_key = getenv(o->api_key_env);
        if (!r->api_key || !*r->api_key) {
            snprintf(why, whylen, "sampler.remote.api_key_env: the variable %s is not set",
                     o->api_key_env);
            return ERR_INVAL;
        }
    }
    r->version = (uint32_t)o->remote_version;
    r->logprobs = o->remote_logprobs;
    r->http.max_in_flight = (unsigned)o->max_in_flight;
    r->http.max_attempts = (unsigned)o->max_attempts;
    r->http.connect_timeout_ms = (long)o->connect_timeout_ms;
    r->http.total_timeout_ms = (long)o->timeout_ms;
    r->http.backoff_base_ms = (unsigned)o->backoff_base_ms;
    r->http.backoff_max_ms = (unsigned)o->backoff_max_ms;
    r->http.retry_after_max_ms = (unsigned)o->retry_after_max_ms;
    return ERR_OK;
}

int sampler_opts_curve(const struct sampler_opts *o, struct bus_curve *out, char *why,
                       size_t whylen)
{
    return bus_curve_client(out, o->curve_secret_key, o->ledger_public_key,
                            "sampler.curve_secret_key", why, whylen);
}
