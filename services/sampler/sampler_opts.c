/* sampler_opts.c - see sampler_opts.h. */
#include "sampler_opts.h"

#include <string.h>

#include "busopts.h"
#include "ckpt.h"
#include "httpopts.h"
#include "nn_threads.h"

static const struct cfg_choice backends[] = {
    {"builtin", SAMPLER_BACKEND_BUILTIN}, {"remote", SAMPLER_BACKEND_REMOTE}, {NULL, 0}};

#define O struct sampler_config
static const struct cfg_option options[] = {
    CFG_ENUM_OPT(O, backend, .key = "sampler.backend", .def = "builtin", .choices = backends,
                 .env = "SAMPLER_BACKEND", .flag = "--backend",
                 .help = "builtin: the engine on checkpoints from checkpoint_dir; remote: an "
                         "OpenAI-compatible /v1/completions server (vLLM, llama.cpp)."),
    CFG_STRING_OPT(O, checkpoint_dir, .key = "sampler.checkpoint_dir", .def = CKPT_DEFAULT_ROOT,
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
                   .help = "Prompt template with {prompt} once (unset: the checkpoint's "
                           "oaif_prompt_template, else the tokenizer's Human/Assistant one; "
                           "\"{prompt}\" for none)."),
    CFG_INT_OPT(O, n, .key = "sampler.responses_per_prompt", .def = "2", .min = 1, .max = 1024,
                .env = "SAMPLER_RESPONSES_PER_PROMPT", .flag = "--n",
                .help = "Responses per prompt when a request says 0."),
    CFG_FLOAT_OPT(O, temperature, .key = "sampler.temperature", .def = "0.9", .dmin = 0.0001,
                  .dmax = SAMPLER_TEMPERATURE_MAX, .env = "SAMPLER_TEMPERATURE",
                  .flag = "--temperature",
                  .help = "Temperature when a request says 0 (greedy is top_k 1)."),
    CFG_FLOAT_OPT(O, top_p, .key = "sampler.top_p", .def = "1", .dmin = 0.0001, .dmax = 1,
                  .env = "SAMPLER_TOP_P", .flag = "--top-p",
                  .help = "Nucleus mass when a request says 0 (1: off)."),
    CFG_INT_OPT(O, top_k, .key = "sampler.top_k", .def = "0", .min = 0, .max = SAMPLER_TOP_K_MAX,
                .env = "SAMPLER_TOP_K", .flag = "--top-k",
                .help = "Top-k when a request says 0 (0: off)."),
    CFG_INT_OPT(O, max_new_tokens, .key = "sampler.max_new_tokens", .def = "128", .min = 1,
                .max = 1000000, .env = "SAMPLER_MAX_NEW_TOKENS", .flag = "--max-new-tokens",
                .help = "New tokens per response when a request says 0."),
    CFG_UINT64_OPT(O, seed, .key = "sampler.seed", .def = "1", .env = "SAMPLER_SEED",
                   .flag = "--seed",
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
    NN_OPT_THREADS(O, threads, "sampler.threads", "SAMPLER_THREADS"),
    CFG_DURATION_OPT(O, rescan_ms, .key = "sampler.rescan_interval", .def = "10s", .min = 50,
                     .max = 86400000, .env = "SAMPLER_RESCAN_INTERVAL", .flag = "--rescan",
                     .help = "How often the ledger's checkpoints are read even without an event "
                             "(events are hints)."),
    /* remote */
    CFG_STRING_OPT(O, remote.base_url, .key = "sampler.remote.base_url",
                   .env = "SAMPLER_REMOTE_BASE_URL", .flag = "--base-url",
                   .help = "remote: the API base, e.g. http://vllm:8000/v1 (POST "
                           "<base_url>/completions)."),
    CFG_STRING_OPT(O, remote.model, .key = "sampler.remote.model", .env = "SAMPLER_REMOTE_MODEL",
                   .flag = "--model", .help = "remote: the model name the server serves."),
    CFG_STRING_OPT(O, remote.api_key, .key = "sampler.remote.api_key",
                   .env = "SAMPLER_REMOTE_API_KEY", .flag = "--api-key", .flags = CFG_SECRET,
                   .help = "remote: API key; better given as a file (api_key_file, "
                           "SAMPLER_REMOTE_API_KEY_FILE, --api-key-file)."),
    CFG_STRING_OPT(O, remote.api_key_env, .key = "sampler.remote.api_key_env",
                   .env = "SAMPLER_REMOTE_API_KEY_ENV", .flag = "--api-key-env",
                   .help = "remote: the environment variable holding the API key, used when "
                           "api_key is not set."),
    CFG_INT_OPT(O, remote.version, .key = "sampler.remote.version", .def = "0", .min = 0,
                .max = 2147483647, .env = "SAMPLER_REMOTE_VERSION", .flag = "--remote-version",
                .help = "remote: the policy version reported for what the server serves."),
    CFG_BOOL_OPT(O, remote.logprobs, .key = "sampler.remote.logprobs", .def = "true",
                 .env = "SAMPLER_REMOTE_LOGPROBS", .flag = "--remote-logprobs",
                 .help = "remote: ask for log-probs and report their sum."),
    /* its HTTP client: the same rows as the annotator's (httpopts.h) */
    HTTP_OPTS(O, remote.http, "sampler.remote", "SAMPLER_REMOTE", "remote"),
    /* the service */
    CFG_STRING_OPT(O, worker_name, .key = "sampler.worker_name", .env = "SAMPLER_WORKER_NAME",
                   .flag = "--worker-name", .help = "Name in `oaif status` (default host:pid)."),
    CFG_STRING_OPT(O, metrics_bind, .key = "sampler.metrics_bind", .def = "127.0.0.1",
                   .env = "SAMPLER_METRICS_BIND", .flag = "--metrics-bind",
                   .help = "Address of the HTTP server for /metrics and /healthz."),
    CFG_INT_OPT(O, metrics_port, .key = "sampler.metrics_port", .def = "-1", .min = -1,
                .max = 65535, .env = "SAMPLER_METRICS_PORT", .flag = "--metrics-port",
                .help = "Its port (0: any free one, -1: no HTTP server)."),
    /* where the ledger is, and how to talk to it: the bus options of every service */
    BUS_OPT_CLIENTS(O, bus.clients_endpoint),
    BUS_OPT_WORKERS(O, bus.workers_endpoint),
    BUS_OPT_EVENTS(O, bus.events_endpoint),
    BUS_OPT_LEDGER_KEY(O, bus.ledger_public_key),
    BUS_OPT_CURVE_SECRET(O, bus.curve_secret_key, "sampler", "SAMPLER"),
    BUS_OPT_HEARTBEAT(O, bus.heartbeat_ms),
    BUS_OPT_MAX_MESSAGE(O, bus.max_message),
};
#undef O

static const char *const sections[] = {"sampler", NULL};
const struct cfg_spec sampler_opts_spec = {
    .name = "sampler",
    .summary = "The sample service: n responses per prompt from a policy version.",
    .sections = sections,
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct sampler_config),
};

int sampler_config_load(struct sampler_config *c, int argc, char *const *argv, buf_t *errs)
{
    memset(c, 0, sizeof *c);
    return cfg_load(&sampler_opts_spec, c, argc, argv, errs);
}

int sampler_config_defaults(struct sampler_config *c)
{
    memset(c, 0, sizeof *c);
    return cfg_defaults(&sampler_opts_spec, c);
}

void sampler_config_release(struct sampler_config *c)
{
    cfg_release(&sampler_opts_spec, c);
}
