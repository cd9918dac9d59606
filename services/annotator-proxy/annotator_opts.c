/* annotator_opts.c - see annotator_opts.h. */
#include "annotator_opts.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"

#ifndef OAIF_JUDGE_TEMPLATE_DIR /* annotator.template_dir's default: CMake's OAIF_TEMPLATE_DIR */
#error "OAIF_JUDGE_TEMPLATE_DIR is not defined (services/annotator-proxy/CMakeLists.txt sets it)"
#endif

#define STR_(x) #x
#define STR(x)  STR_(x) /* the text of a macro's value, for help texts */

static const struct cfg_choice cache_names[] = {{"auto", ANNOTATOR_CACHE_AUTO},
                                                {"on", ANNOTATOR_CACHE_ON},
                                                {"off", ANNOTATOR_CACHE_OFF},
                                                {NULL, 0}};

#define O struct annotator_opts
static const struct cfg_option options[] = {
    /* the judge */
    CFG_ENUM_OPT(O, judge.backend, .key = "annotator.backend", .def = "rules",
                 .choices = annotator_backend_names, .env = "ANNOTATOR_BACKEND",
                 .flag = "--backend",
                 .help = "The judge: openai (any chat-completions server), anthropic, rules (the "
                         "built-in task's simulated annotator) or reward-model (the score "
                         "service)."),
    CFG_STRING_OPT(O, judge.name, .key = "annotator.name", .env = "ANNOTATOR_NAME",
                   .flag = "--name",
                   .help = "Judge id in labels, metrics and the cache key (default: derived, e.g. "
                           "openai/MODEL/TEMPLATE); for reward-model put the ensemble version "
                           "in it."),
    CFG_STRING_OPT(O, judge.base_url, .key = "annotator.base_url", .env = "ANNOTATOR_BASE_URL",
                   .flag = "--base-url",
                   .help = "API base URL (default " ANNOTATOR_OPENAI_URL
                           ", or " ANNOTATOR_ANTHROPIC_URL " for anthropic)."),
    CFG_STRING_OPT(O, judge.model, .key = "annotator.model", .env = "ANNOTATOR_MODEL",
                   .flag = "--model", .help = "Judge model name (openai, anthropic)."),
    CFG_STRING_OPT(O, judge.api_key, .key = "annotator.api_key", .env = "ANNOTATOR_API_KEY",
                   .flag = "--api-key", .flags = CFG_SECRET,
                   .help = "API key; better given as a file (api_key_file, ANNOTATOR_API_KEY_FILE, "
                           "--api-key-file)."),
    CFG_STRING_OPT(O, judge.api_key_env, .key = "annotator.api_key_env",
                   .env = "ANNOTATOR_API_KEY_ENV", .flag = "--api-key-env",
                   .help = "Name of an environment variable holding the API key (e.g. "
                           "OPENAI_API_KEY), used when api_key is not set."),
    CFG_STRING_OPT(O, judge.template_name, .key = "annotator.template", .def = "helpful",
                   .env = "ANNOTATOR_TEMPLATE", .flag = "--template",
                   .help = "Prompt template: a file path, or the name of one in template_dir "
                           "(helpful, helpful_short, helpful_cot, helpful_json, alpaca_eval, "
                           "alpaca_eval_cot)."),
    CFG_STRING_OPT(O, judge.template_dir, .key = "annotator.template_dir",
                   .def = OAIF_JUDGE_TEMPLATE_DIR, .env = "ANNOTATOR_TEMPLATE_DIR",
                   .flag = "--template-dir", .help = "Where template names are looked up."),
    CFG_STRING_OPT(O, instruction, .key = "annotator.instruction", .env = "ANNOTATOR_INSTRUCTION",
                   .flag = "--instruction",
                   .help = "Instruction for the judge when a request carries none (e.g. \"prefer "
                           "shorter responses\")."),
    CFG_ENUM_OPT(O, judge.orders, .key = "annotator.orders", .def = "both",
                 .choices = annotator_orders_names, .env = "ANNOTATOR_ORDERS", .flag = "--orders",
                 .help = "both: judge (A,B) and (B,A) and combine; random: one order (half the "
                         "cost, position bias uncorrected)."),
    CFG_DOUBLE_OPT(O, judge.tie_band, .key = "annotator.tie_band", .def = "0", .dmin = 0,
                   .dmax = 0.5, .env = "ANNOTATOR_TIE_BAND", .flag = "--tie-band",
                   .help = "tau: p within 1/2 +- tau is a tie."),
    CFG_DOUBLE_OPT(O, judge.temperature, .key = "annotator.temperature", .def = "0", .dmin = 0,
                   .dmax = 2, .env = "ANNOTATOR_TEMPERATURE", .flag = "--temperature",
                   .help = "Sampling temperature of the judge."),
    CFG_INT_OPT(O, judge.max_tokens, .key = "annotator.max_tokens", .def = "16", .min = 1,
                .max = 100000, .env = "ANNOTATOR_MAX_TOKENS", .flag = "--max-tokens",
                .help = "Completion tokens per judge call."),
    CFG_ENUM_OPT(O, judge.limit_field, .key = "annotator.max_tokens_field", .def = "auto",
                 .choices = annotator_limit_field_names, .env = "ANNOTATOR_MAX_TOKENS_FIELD",
                 .flag = "--max-tokens-field",
                 .help = "openai: the field carrying max_tokens: max_tokens, "
                         "max_completion_tokens (OpenAI's o-series and gpt-5 take only this), or "
                         "auto (max_completion_tokens for api.openai.com and reasoning models, "
                         "max_tokens for other servers)."),
    CFG_BOOL_OPT(O, judge.reasoning_model, .key = "annotator.reasoning_model", .def = "false",
                 .env = "ANNOTATOR_REASONING_MODEL", .flag = "--reasoning-model",
                 .help = "The judge is a reasoning model: send no temperature and no log-probs "
                         "(such models reject them), and max_completion_tokens by default. Give "
                         "it a max_tokens that leaves room for the reasoning."),
    CFG_STRING_OPT(O, judge.reasoning_effort, .key = "annotator.reasoning_effort",
                   .env = "ANNOTATOR_REASONING_EFFORT", .flag = "--reasoning-effort",
                   .help = "openai: reasoning_effort sent to a reasoning model (e.g. low, "
                           "medium, high); unset: not sent."),
    CFG_INT_OPT(O, judge.thinking_budget, .key = "annotator.thinking_budget", .def = "0", .min = 0,
                .max = 100000, .env = "ANNOTATOR_THINKING_BUDGET", .flag = "--thinking-budget",
                .help = "anthropic: extended thinking's budget_tokens (>= 1024, below "
                        "max_tokens); 0: off."),
    CFG_BOOL_OPT(O, judge.json_mode, .key = "annotator.json_mode", .def = "true",
                 .env = "ANNOTATOR_JSON_MODE", .flag = "--json-mode",
                 .help = "openai, with a template whose verdict is json: ask the server for a "
                         "JSON object (response_format json_object)."),
    CFG_BOOL_OPT(O, judge.retry_unparseable, .key = "annotator.retry_unparseable", .def = "false",
                 .env = "ANNOTATOR_RETRY_UNPARSEABLE", .flag = "--retry-unparseable",
                 .help = "Ask again after a refusal, an answer without a verdict in the "
                         "template's place, or one cut off at max_tokens. Off: such a judgement "
                         "fails for good, since a judge at temperature 0 gives the same answer "
                         "again (and bills it); turn it on for a sampled judge."),
    CFG_BOOL_OPT(O, judge.logprobs, .key = "annotator.logprobs", .def = "true",
                 .env = "ANNOTATOR_LOGPROBS", .flag = "--logprobs",
                 .help = "openai: ask for log-probs (a soft probability from the two answer "
                         "tokens); an answer without them falls back to the parsed verdict."),
    CFG_INT_OPT(O, judge.top_logprobs, .key = "annotator.top_logprobs", .def = "5", .min = 1,
                .max = 20, .env = "ANNOTATOR_TOP_LOGPROBS", .flag = "--top-logprobs",
                .help = "openai: alternatives per token position."),
    CFG_BOOL_OPT(O, judge.strip_special_tokens, .key = "annotator.strip_special_tokens",
                 .def = "true", .env = "ANNOTATOR_STRIP_SPECIAL_TOKENS",
                 .flag = "--strip-special-tokens",
                 .help = "Remove chat special-token markup from the texts shown to the judge."),
    CFG_STRING_OPT(O, judge.anthropic_version, .key = "annotator.anthropic_version",
                   .def = "2023-06-01", .env = "ANNOTATOR_ANTHROPIC_VERSION",
                   .flag = "--anthropic-version",
                   .help = "anthropic: the anthropic-version header."),
    CFG_STRLIST_OPT(O, judge.extra_headers, .key = "annotator.extra_headers",
                    .env = "ANNOTATOR_EXTRA_HEADERS", .flag = "--extra-header",
                    .help = "More 'Name: value' headers for every call (not secret: logged)."),
    CFG_DOUBLE_OPT(O, judge.price_input_per_mtok, .key = "annotator.price_input_per_mtok",
                   .def = "0", .dmin = 0, .dmax = 1e9, .env = "ANNOTATOR_PRICE_INPUT_PER_MTOK",
                   .flag = "--price-input",
                   .help = "Cost of a million prompt tokens (the cost unit is yours)."),
    CFG_DOUBLE_OPT(O, judge.price_cached_input_per_mtok,
                   .key = "annotator.price_cached_input_per_mtok", .def = "-1", .dmin = -1,
                   .dmax = 1e9, .env = "ANNOTATOR_PRICE_CACHED_INPUT_PER_MTOK",
                   .flag = "--price-cached-input",
                   .help = "Cost of a million prompt tokens read from the provider's prompt "
                           "cache (OpenAI cached_tokens, Anthropic cache_read_input_tokens); -1: "
                           "the input price."),
    CFG_DOUBLE_OPT(O, judge.price_cache_write_per_mtok,
                   .key = "annotator.price_cache_write_per_mtok", .def = "-1", .dmin = -1,
                   .dmax = 1e9, .env = "ANNOTATOR_PRICE_CACHE_WRITE_PER_MTOK",
                   .flag = "--price-cache-write",
                   .help = "Cost of a million prompt tokens written to the prompt cache "
                           "(Anthropic cache_creation_input_tokens); -1: the input price."),
    CFG_DOUBLE_OPT(O, judge.price_output_per_mtok, .key = "annotator.price_output_per_mtok",
                   .def = "0", .dmin = 0, .dmax = 1e9, .env = "ANNOTATOR_PRICE_OUTPUT_PER_MTOK",
                   .flag = "--price-output", .help = "Cost of a million completion tokens."),
    /* the HTTP client: the same rows as the sampler's remote backend (httpopts.h) */
    HTTP_OPTS(O, judge.http, "annotator.http", "ANNOTATOR", "judge"),
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
    CFG_ENUM_OPT(O, cache, .key = "annotator.cache", .def = "auto", .choices = cache_names,
                 .env = "ANNOTATOR_CACHE", .flag = "--cache",
                 .help = "Answer identical requests from the ledger: auto (on except for "
                         "rules), on, off."),
    CFG_INT_OPT(O, credit, .key = "annotator.credit", .def = "0", .min = 0, .max = 65536,
                .env = "ANNOTATOR_CREDIT", .flag = "--credit",
                .help = "Requests taken from the ledger at once (0: K/2 with both orders, K with "
                        "one; " STR(ANNOTATOR_CREDIT_RULES) " for rules, " STR(
                            ANNOTATOR_CREDIT_REWARD_MODEL) " for reward-model)."),
    CFG_STRING_OPT(O, service, .key = "annotator.service", .def = "annotate",
                   .env = "ANNOTATOR_SERVICE", .flag = "--service",
                   .help = "The service it serves: annotate (training's judge), or another name "
                           "for a second judge, e.g. annotate-eval for the evaluator's."),
    CFG_STRING_OPT(O, worker_name, .key = "annotator.worker_name", .env = "ANNOTATOR_WORKER_NAME",
                   .flag = "--worker-name", .help = "Name in `oaif status` (default host:pid)."),
    CFG_STRING_OPT(O, metrics_bind, .key = "annotator.metrics_bind", .def = "127.0.0.1",
                   .env = "ANNOTATOR_METRICS_BIND", .flag = "--metrics-bind",
                   .help = "Address of the HTTP server for /metrics and /healthz."),
    CFG_INT_OPT(O, metrics_port, .key = "annotator.metrics_port", .def = "-1", .min = -1,
                .max = 65535, .env = "ANNOTATOR_METRICS_PORT", .flag = "--metrics-port",
                .help = "Its port (0: any free one, -1: no HTTP server)."),
    /* the bus: the same keys, variables, flags and defaults in every service (busopts.h) */
    BUS_OPT_CURVE_SECRET(O, bus.curve_secret_key, "annotator", "ANNOTATOR"),
    BUS_OPT_CLIENTS(O, bus.clients_endpoint),
    BUS_OPT_WORKERS(O, bus.workers_endpoint),
    BUS_OPT_LEDGER_KEY(O, bus.ledger_public_key),
    BUS_OPT_HEARTBEAT(O, bus.heartbeat_ms),
    BUS_OPT_MAX_MESSAGE(O, bus.max_message),
};
#undef O

static const char *const sections[] = {"annotator", NULL};
const struct cfg_spec annotator_opts_spec = {
    .name = "annotator-proxy",
    .summary = "The annotate service: which of two responses is better, asked of a judge.",
    .sections = sections,
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct annotator_opts),
};

int annotator_opts_load(struct annotator_opts *o, int argc, char *const *argv, buf_t *errs)
{
    memset(o, 0, sizeof *o);
    return cfg_load(&annotator_opts_spec, o, argc, argv, errs);
}

int annotator_opts_defaults(struct annotator_opts *o)
{
    memset(o, 0, sizeof *o);
    return cfg_defaults(&annotator_opts_spec, o);
}

void annotator_opts_release(struct annotator_opts *o)
{
    cfg_release(&annotator_opts_spec, o);
}

static bool http_backend(const struct annotator_opts *o)
{
    return o->judge.backend == ANNOTATOR_BACKEND_OPENAI ||
           o->judge.backend == ANNOTATOR_BACKEND_ANTHROPIC;
}

bool annotator_opts_cache(const struct annotator_opts *o)
{
    if (o->cache == ANNOTATOR_CACHE_AUTO)
        return o->judge.backend != ANNOTATOR_BACKEND_RULES;
    return o->cache == ANNOTATOR_CACHE_ON;
}

unsigned annotator_opts_credit(const struct annotator_opts *o)
{
    if (o->credit > 0)
        return (unsigned)o->credit;
    if (http_backend(o)) {
        unsigned k = o->judge.http.max_in_flight > 0 ? (unsigned)o->judge.http.max_in_flight : 1;
        unsigned c = o->judge.orders == ANNOTATOR_ORDERS_BOTH ? k / 2 : k;
        return c ? c : 1;
    }
    return o->judge.backend == ANNOTATOR_BACKEND_RULES ? ANNOTATOR_CREDIT_RULES
                                                       : ANNOTATOR_CREDIT_REWARD_MODEL;
}

int annotator_opts_curve(const struct annotator_opts *o, struct bus_curve *out, char *why,
                         size_t whylen)
{
    return bus_curve_client(out, o->bus.curve_secret_key, o->bus.ledger_public_key,
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

int annotator_opts_judge(const struct annotator_opts *o, struct annotator_judge_ctx *ctx,
                         annotator_score_fn score, void *score_user, annotator_t **out, char *why,
                         size_t whylen)
{
    *out = NULL;
    struct annotator_config c = o->judge; /* borrows o's strings for the call */
    char name[96];
    memset(ctx, 0, sizeof *ctx);
    if (c.backend == ANNOTATOR_BACKEND_RULES) {
        ctx->rules.p_noise = o->noise;
        ctx->rules.seed = (uint64_t)o->noise_seed;
        c.rules = annotator_opts_rules;
        c.rules_user = &ctx->rules;
        if (!c.name || !*c.name) {
            /* the noise changes the answers: it belongs in the judge id (and so the cache key) */
            snprintf(name, sizeof name, "rules/noise=%g/seed=%d", o->noise, o->noise_seed);
            c.name = name;
        }
    } else if (c.backend == ANNOTATOR_BACKEND_REWARD_MODEL) {
        if (!score) {
            snprintf(why, whylen, "annotator.backend: reward-model needs the score service");
            return ERR_INVAL;
        }
        c.score = score;
        c.score_user = score_user;
    }
    return annotator_new(out, &c, why, whylen);
}
