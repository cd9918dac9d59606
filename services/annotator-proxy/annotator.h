/* annotator.h - the judge of the annotator-proxy: given a prompt and two responses, which one is
 * better, and how sure. Backends, chosen by configuration:
 *   openai        an OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp server,
 *                 Ollama, LiteLLM ...); with log-probs, p(first) is the softmax over the two answer
 *                 tokens at the position of the token that wrote the verdict, else the parsed
 *                 verdict gives p in {0, 1/2, 1}
 *   anthropic     the Messages API (parsed verdict)
 * The verdict is found by the template's grammar (template.h, wire.h): an answer without one in
 * its place, or cut off at the token limit, fails; reasoning text is never parsed.
 *   rules         a function supplied by the caller (the built-in task's simulated annotator)
 *   reward-model  a function supplied by the caller that scores both responses (the `score`
 *                 service); p = sigmoid(r_first - r_second)
 * For the HTTP backends both orders are judged by default and combined, p = 1/2 [p_AB + 1 - p_BA],
 * with the disagreement |p_AB - (1 - p_BA)| recorded; a single random order is an option. The
 * winner is first if p > 1/2 + tau, second if p < 1/2 - tau, else a tie.
 *
 * A judgement that fails (transport, HTTP error after the retries, unparseable answer, refusal,
 * backend error) is reported as an error with its reason, never as a label.
 *
 * Not here: ZeroMQ, the ledger, caching itself (annotator_cache_key() gives the key; the caller
 * stores and looks up answers), reading the configuration (annotator_opts.h: its option table
 * fills struct annotator_config and holds the defaults).
 *
 * Threading: an annotator_t is driven by one thread (submit + poll). curl_global_init() must have
 * been called by main() first (see http.h). Secrets: the API key is read once by annotator_new()
 * and never appears in a log line, an error string, the totals or a label. */
#ifndef ANNOTATOR_H
#define ANNOTATOR_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "http.h"
#include "httpopts.h"
#include "oaif.pb-c.h"
#include "sha256.h"

typedef struct annotator annotator_t; /* opaque: the fields live in annotator.c */

enum annotator_backend {
    ANNOTATOR_BACKEND_OPENAI = 1,
    ANNOTATOR_BACKEND_ANTHROPIC,
    ANNOTATOR_BACKEND_RULES,
    ANNOTATOR_BACKEND_REWARD_MODEL,
};

enum annotator_orders {
    ANNOTATOR_ORDERS_BOTH = 0,   /* judge (A, B) and (B, A), combine */
    ANNOTATOR_ORDERS_RANDOM_ONE, /* one order, chosen from the request's seed and the pair */
};

enum annotator_winner { /* same values as Oaif__V1__Winner */
                        ANNOTATOR_WINNER_FIRST = 1,
                        ANNOTATOR_WINNER_SECOND = 2,
                        ANNOTATOR_WINNER_TIE = 3,
};

/* Why a judgement failed. */
enum annotator_failure {
    ANNOTATOR_FAIL_NONE = 0,
    ANNOTATOR_FAIL_TRANSPORT, /* connect, timeout, connection closed (after the retries) */
    ANNOTATOR_FAIL_HTTP,      /* an HTTP error status (after the retries for retryable ones) */
    ANNOTATOR_FAIL_PARSE,     /* the answer is not the wire format, has no verdict in the
                                 template's place, or was cut off at the token limit */
    ANNOTATOR_FAIL_REFUSAL,   /* the model refused */
    ANNOTATOR_FAIL_BACKEND,   /* the rules / reward-model function reported an error */
    ANNOTATOR_FAIL_LOCAL,     /* out of memory, bad request fields */
};

/* One judgement to make. Strings are read during annotator_submit() only (copied as needed). */
struct annotator_request {
    const char *pair_id;      /* copied into the label; may be NULL */
    const char *prompt;       /* required */
    const char *responses[2]; /* required; "first" in the outcome means responses[0] */
    const char *instruction;  /* optional extra instruction for the judge ("prefer shorter") */
    const char *reference;    /* the checkable answer, for the rules backend; may be NULL */
    uint64_t seed;            /* picks the order in RANDOM_ONE mode; passed to rules */
    int64_t deadline_ms;      /* http_now_ms() clock; 0: none. No HTTP attempt starts after it */
};

/* What the rules function answers. */
struct annotator_verdict {
    double prob_first;  /* P(responses[0] better): 1, 0 or 1/2 for a tie */
    bool noise_flipped; /* the simulated label noise flipped it (evaluation reads it) */
    char verdict[32];   /* short human-readable verdict ("correct beats wrong") */
};

/* The rules backend: judge req synchronously. Returns ERR_OK and fills out, or an error code and
 * writes the reason to why (the judgement then fails with ANNOTATOR_FAIL_BACKEND). */
typedef int (*annotator_rules_fn)(void *user, const struct annotator_request *req,
                                  struct annotator_verdict *out, char *why, size_t whylen);

/* The reward-model backend: start scoring both responses of req (asynchronously, e.g. a bus
 * request) and later, exactly once, call annotator_scored(a, ticket, ...) from the thread that
 * drives a (also allowed from inside this function). req's strings are valid only during the call.
 * Returning an error code instead fails the judgement at once (annotator_scored() must then not be
 * called for this ticket). */
typedef int (*annotator_score_fn)(void *user, annotator_t *a, uint64_t ticket,
                                  const struct annotator_request *req);

/* Which request field carries the completion limit (openai backend). */
enum annotator_limit_field {
    ANNOTATOR_LIMIT_AUTO = 0, /* max_completion_tokens for api.openai.com and for reasoning
                                 models, max_tokens for other servers (vLLM, llama.cpp, Ollama) */
    ANNOTATOR_LIMIT_MAX_TOKENS,
    ANNOTATOR_LIMIT_MAX_COMPLETION_TOKENS,
};

/* The public endpoints the HTTP backends use when annotator.base_url is not set. */
#define ANNOTATOR_OPENAI_URL    "https://api.openai.com/v1"
#define ANNOTATOR_ANTHROPIC_URL "https://api.anthropic.com/v1"

/* The judge's configuration: the `annotator.*` options that describe the judge. The option table
 * in annotator_opts.c fills it (inside struct annotator_opts) and holds every default: start from
 * annotator_opts_defaults(), never from zeroes. Strings are read during annotator_new() only
 * (copied as needed). */
struct annotator_config {
    enum annotator_backend backend;
    char *name; /* the judge id in labels and totals; NULL or "": derived ("openai/<model>/
                   <template file>", "anthropic/...", "rules", "reward-model"). For rules and
                   reward-model put into it whatever changes their answers (noise rate, ensemble
                   version): it is part of the cache key */
    /* openai, anthropic */
    char *base_url;      /* "/chat/completions" or "/messages" is appended; NULL or "": the
                            backend's ANNOTATOR_OPENAI_URL / ANNOTATOR_ANTHROPIC_URL */
    char *model;         /* required */
    char *api_key;       /* the key itself; NULL or "": then */
    char *api_key_env;   /* the environment variable holding it; NULL or "": no key sent */
    char *template_name; /* required: a path (has a '/' or ends in .txt), or NAME, which is
                            template_dir/NAME.txt; see template.h */
    char *template_dir;
    double temperature;
    int max_tokens;
    enum annotator_limit_field limit_field; /* openai: which field carries max_tokens */
    bool reasoning_model;   /* a reasoning model (OpenAI o-series, gpt-5, DeepSeek-R1 ...): no
                               temperature and no log-probs are sent, and the auto limit field is
                               max_completion_tokens */
    char *reasoning_effort; /* openai: sent as reasoning_effort when set */
    int thinking_budget;    /* anthropic: extended thinking's budget_tokens; 0: off */
    bool json_mode;         /* openai, with a `json` verdict template: ask for a JSON object */
    bool retry_unparseable; /* a refusal, an answer without a verdict or one cut off is a
                               transient failure (asked again) instead of a permanent one */
    bool logprobs;    /* openai: ask for log-probs; an answer without them at the verdict's token
                         falls back to the parsed verdict */
    int top_logprobs; /* 1..20 */
    char *anthropic_version;
    struct cfg_strlist extra_headers;   /* "Name: value" sent with every call (not secret) */
    bool strip_special_tokens;          /* remove <|...|>, <s>, [INST] from inserted texts */
    double price_input_per_mtok;        /* cost of a million prompt tokens */
    double price_cached_input_per_mtok; /* ... of those read from the prompt cache; < 0: the
                                           input price */
    double price_cache_write_per_mtok;  /* ... of those written to it; < 0: the input price */
    double price_output_per_mtok;       /* cost of a million completion tokens */
    struct http_opts http;              /* annotator.http.*: the HTTP client (httpopts.h) */
    /* all */
    enum annotator_orders orders; /* openai, anthropic; rules and reward-model have no position
                                     bias and make one call */
    double tie_band;              /* tau in [0, 1/2]: only p within 1/2 +- tau is a tie */
    /* not options: the caller sets these */
    annotator_rules_fn rules; /* rules: required */
    void *rules_user;
    annotator_score_fn score; /* reward-model: required */
    void *score_user;
};

/* The names of the backends and of the orders modes, as the option table and the logs write
 * them; {NULL, 0}-ended. */
extern const struct cfg_choice annotator_backend_names[];
extern const struct cfg_choice annotator_orders_names[];
extern const struct cfg_choice annotator_limit_field_names[];

/* Parses "openai" "anthropic" "rules" "reward-model"; ERR_INVAL for anything else. */
int annotator_backend_parse(const char *s, enum annotator_backend *out);
/* The configuration name of a backend ("openai", ...); "?" if unknown. */
const char *annotator_backend_name(enum annotator_backend b);
/* The configuration name of an orders mode ("both", "random"); "?" if unknown. */
const char *annotator_orders_name(enum annotator_orders o);

/* One order's result (HTTP backends), or the single call of rules / reward-model. */
struct annotator_order_result {
    bool swapped;      /* responses[1] was shown first */
    double prob_first; /* P(the response shown first is better) */
    bool has_logprobs;
    char verdict[32]; /* the answer token parsed ("1", "M"), the rules verdict, or the
                         reward difference ("+0.73") */
    unsigned verdict_line, verdict_column; /* HTTP backends: where the verdict stood in the
                                              answer (1-based); 0 when none was found */
    char lp_token[32]; /* the token whose log-probs gave prob_first ("" without) ... */
    int lp_index;      /* ... its position in the answer's log-probs (-1 without) */
    char lp_note[128]; /* log-probs came but were not usable at the verdict: why */
    unsigned prompt_tokens, completion_tokens;
    unsigned cached_tokens, cache_write_tokens; /* of prompt_tokens */
    double cost;
    double latency_ms;
    unsigned attempts; /* HTTP attempts */
};

/* The outcome of one judgement; borrowed until the callback returns. */
struct annotator_outcome {
    int rc;                         /* ERR_OK: a judgement; else the failure */
    enum annotator_failure failure; /* ANNOTATOR_FAIL_NONE when rc == ERR_OK */
    const char *error;              /* why (never NULL on failure; no secrets), else NULL */
    bool permanent;                 /* failed for a reason a retry cannot fix: a bad request,
                                       4xx other than 408/409/429, a 429 or error saying the
                                       credits are spent or the key is invalid; a refusal, no
                                       verdict or a cut-off answer unless retry_unparseable */
    const char *judge;              /* the judge id */
    const char *pair_id;            /* from the request ("" if none) */
    enum annotator_winner winner;
    double prob_first;   /* P(responses[0] better), orders combined */
    double disagreement; /* |p_AB - (1 - p_BA)|; 0 with one order */
    bool noise_flipped;  /* rules only */
    unsigned norders;    /* entries of orders[] filled (also on failure) */
    struct annotator_order_result orders[2];
    unsigned prompt_tokens, completion_tokens; /* summed over orders, also on failure */
    double cost;                               /* summed over orders, also on failure */
    double latency_ms;                         /* submit to completion */
};

/* Called once per submitted judgement, from inside annotator_poll(). It may submit; it must not
 * destroy the annotator. */
typedef void (*annotator_done_fn)(void *user, const struct annotator_outcome *out);

/* Creates an annotator: validates cfg, finds and loads the template, takes the API key (api_key,
 * else the variable api_key_env names). On ERR_OK *out owns it (annotator_destroy()); cfg is not
 * referenced after the call. On ERR_INVAL / ERR_IO writes the reason (the option or file, never a
 * key) to why. ERR_NOMEM. */
int annotator_new(annotator_t **out, const struct annotator_config *cfg, char *why, size_t whylen);

/* Destroys; judgements in progress are dropped without callbacks. Wipes the key from memory.
 * Sets *a to NULL; accepts a == NULL and *a == NULL. */
void annotator_destroy(annotator_t **a);

/* Starts a judgement. Returns ERR_OK (done is called exactly once, from a later annotator_poll()),
 * ERR_INVAL (missing prompt/response, NULL done; nothing is called), ERR_NOMEM. */
int annotator_submit(annotator_t *a, const struct annotator_request *req, annotator_done_fn done,
                     void *user);

/* Reward-model backend: the scores of `ticket` (see annotator_score_fn). rc != ERR_OK fails the
 * judgement with why. Returns ERR_OK, or ERR_NOTFOUND for an unknown or already scored ticket. */
int annotator_scored(annotator_t *a, uint64_t ticket, int rc, double reward_first,
                     double reward_second, const char *why);

/* Drives the annotator: like http_client_poll() (same arguments, same outer-loop integration),
 * plus the completions of the rules and reward-model backends. Returns ERR_OK or a local fault. */
int annotator_poll(annotator_t *a, int timeout_ms, struct pollfd *extra, size_t nextra);

/* As http_client_pollfds() / http_client_timeout_ms(), for an outer poll loop; the timeout is 0
 * while completions wait for annotator_poll(). */
size_t annotator_pollfds(annotator_t *a, struct pollfd *fds, size_t cap);
int annotator_timeout_ms(annotator_t *a);

/* Judgements submitted and not yet completed. */
size_t annotator_pending(const annotator_t *a);

/* The judge id (borrowed, valid until annotator_destroy()). */
const char *annotator_judge_id(const annotator_t *a);

/* The cache key of req for this judge: sha256 over the judge's identity (backend, id, base URL,
 * model, sampling parameters, orders, tie band, template bytes), the instruction, the prompt and
 * both responses (and the reference and seed where the backend depends on them), as 64 hex digits
 * + NUL. Equal keys mean the judge would be asked the same question. */
void annotator_cache_key(const annotator_t *a, const struct annotator_request *req,
                         char out[SHA256_HEX_LEN + 1]);

/* Totals of one annotator since it was created. */
struct annotator_totals {
    uint64_t judgements; /* completed (ok + failed) */
    uint64_t ok, failed;
    uint64_t failed_by[ANNOTATOR_FAIL_LOCAL + 1]; /* indexed by enum annotator_failure */
    uint64_t wins_first, wins_second, ties;
    uint64_t calls; /* judge API calls completed (orders) */
    uint64_t http_attempts, http_retries, rate_waits;
    uint64_t prompt_tokens, completion_tokens;
    double cost;
    double latency_ms_sum;   /* over ok judgements */
    double disagreement_sum; /* over ok two-order judgements ... */
    uint64_t disagreement_n; /* ... of which there are this many */
};
void annotator_totals(const annotator_t *a, struct annotator_totals *out);

/* A one-line description of the configuration for the start-up log: every setting, the key
 * shown only as "set from annotator.api_key" / "set from env NAME" / "none". Writes at most len
 * bytes. */
void annotator_describe(const annotator_t *a, char *out, size_t len);

/* Borrows an AnnotateRequest's fields into req (no copies: valid while pb lives). Returns
 * ERR_INVAL with the reason in why if the pair is missing or has not exactly two responses. */
int annotator_request_from_pb(const Oaif__V1__AnnotateRequest *pb, struct annotator_request *req,
                              char *why, size_t whylen);

/* Storage for a Label made from an outcome: the Label and its OrderResults, on the stack. */
struct annotator_label {
    Oaif__V1__Label label;
    Oaif__V1__OrderResult orders[2];
    Oaif__V1__OrderResult *order_ptrs[2];
};

/* Fills out->label from a successful outcome (label.id is left "" for the caller; pair_id, judge,
 * winner, prob_first, orders, latency, tokens, cost, disagreement, noise_flipped are set). The
 * strings are borrowed from o: pack the label before the callback returns. Returns ERR_INVAL for a
 * failed outcome (a failure is never a label). */
int annotator_fill_label(const struct annotator_outcome *o, struct annotator_label *out);

#endif /* ANNOTATOR_H */
