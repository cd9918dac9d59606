/* sampler.h - the logic of the `sample` service, without sockets: n responses per prompt from a
 * policy version, with the built-in engine (common/nn) or a remote OpenAI-compatible
 * /v1/completions server (sampler_remote.h).
 *
 * Policies (built-in backend). Version v lives in the checkpoint store (ckpt.h) at
 * <checkpoint_dir>/sft-v000000 for v = 0 and <checkpoint_dir>/policy-v<v, 6 digits> otherwise:
 * config.json + model.safetensors, and tokenizer.json when the model is not byte-level (else the
 * byte tokenizer). sampler_load() reads one (verifying the sha256 of model.safetensors when the
 * ledger's record gives one) and keeps it in an LRU of at most `max_loaded` versions; the
 * newest loaded version is never evicted, nor one in use. Loading happens outside the lock, so a
 * background thread can load the next version while requests run on the current one; the swap
 * is the insertion, under the lock.
 *
 * Requests. sampler_run() answers one SampleRequest: it picks the version (the pinned one, or
 * the newest loaded), checks every field (errors name it: "sampling.top_p: 1.5 is out of range
 * [0, 1]"), renders each prompt through the template (the configured one, else the
 * checkpoint's, else TOK_DEFAULT_TEMPLATE), generates n samples of every prompt in one engine call
 * (nn_sample with B = prompts x n, row i * n + j is sample j of prompt i), scores each response
 * under the policy (one teacher-forced forward: the sum of log p(token | prefix) at temperature 1,
 * untruncated, EOS included), and builds the SampleReply and one Pair record per prompt.
 *
 * Zero means "the default" for every SamplingParams field (a proto3 field cannot be absent):
 * temperature 0 is the configured temperature, top_p 0 the configured top_p, seed 0 a seed
 * derived from the configured seed and the request id (a redelivered request gets the same
 * samples, two requests different ones). Greedy decoding is top_k 1.
 *
 * Determinism: the same seed, version and request give the same tokens (row b of the batch draws
 * from its own stream (seed, b)).
 *
 * Texts: the decoded response without special tokens, cut before the first stop string when the
 * finish reason is STOP, with bytes that are not UTF-8 (and NUL) replaced by U+FFFD so the
 * record's string field stays valid; token_ids keep every generated id (EOS and the tokens of
 * the stop string included).
 *
 * Thread-safety: sampler_load, sampler_newest, sampler_has, sampler_loaded may be called from
 * any thread; sampler_run from one thread at a time (the remote backend's HTTP client and a
 * model's activations are single-threaded).
 *
 * Not here: sockets, the ledger, events (sampler_service.h), options (sampler_opts.h). */
#ifndef SAMPLER_H
#define SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "busopts.h"
#include "http.h"
#include "httpopts.h"
#include "oaif.pb-c.h"

typedef struct sampler sampler_t;

enum sampler_backend { SAMPLER_BACKEND_BUILTIN = 0, SAMPLER_BACKEND_REMOTE = 1 };

/* Bounds shared by the option table and the checks of configs and requests. */
#define SAMPLER_TEMPERATURE_MAX 5.0
#define SAMPLER_TOP_K_MAX       1000000

/* The remote backend: POST <base_url>/completions, one call per response (n = 1, so usage is
 * per response and servers without n > 1 work), seeds derived per response. The HTTP client runs
 * with http_config_default() but for the fields below. */
struct sampler_remote_config {
    char *base_url;    /* e.g. http://vllm:8000/v1 (no trailing /completions) */
    char *model;       /* the "model" field */
    char *api_key;     /* NULL or "": api_key_env's variable, else no Authorization header */
    char *api_key_env; /* the environment variable holding the key when api_key is unset */
    int version;       /* >= 0: the policy version reported for what the server serves */
    bool logprobs;     /* ask for log-probs ("logprobs": 1) and sum them */
    /* the HTTP client (sampler.remote.*, httpopts.h): K in flight, retries (408/409/429/5xx with
     * back-off), limits */
    struct http_opts http;
};

/* The sampler's whole configuration, one struct: the option table (sampler_opts.c) fills it and
 * holds every default (sampler_config_defaults() in sampler_opts.h gives them alone). The logic
 * (sampler_new) reads the fields down to `remote` and copies what it keeps; the service
 * (sampler_service.h) reads the rest too. Counts are ints because the table's integer options
 * are; sampler_new checks their ranges. */
struct sampler_config {
    enum sampler_backend backend;
    char *checkpoint_dir;  /* built-in: the checkpoint store's root */
    char *prompt_template; /* with "{prompt}" once; NULL or "": TOK_DEFAULT_TEMPLATE */
    int max_loaded;        /* K >= 1: versions kept in memory */
    /* what a zero field of a request means */
    int n;
    float temperature, top_p;
    int top_k, max_new_tokens;
    uint64_t seed;
    /* limits of one request */
    int max_prompts;   /* prompts per request */
    int max_n;         /* responses per prompt */
    int max_responses; /* prompts x n */
    int max_new_tokens_limit;
    struct sampler_remote_config remote;
    /* the service */
    bool reload_on_publish; /* load each policy the ledger announces */
    int threads;            /* OpenMP threads of the engine; 0: OMP_NUM_THREADS or every core */
    int64_t rescan_ms;      /* read the ledger's checkpoints this often even without an event */
    char *worker_name;      /* NULL or "": host:pid */
    char *metrics_bind;
    int metrics_port; /* 0: any free one, -1: no HTTP server */
    struct bus_opts bus;
};

/* Check the configuration and create a sampler with nothing loaded (the remote backend starts
 * its HTTP client; curl_global_init must have run). The strings the sampler needs are copied:
 * nothing of cfg is borrowed after the call. The remote API key is remote.api_key, else the
 * variable remote.api_key_env names (read here, with getenv). ERR_INVAL with `why` naming the
 * field (an api_key_env whose variable is unset included), ERR_NOMEM. */
int sampler_new(sampler_t **out, const struct sampler_config *cfg, char *why, size_t whylen);
/* Frees every loaded policy. Sets *s to NULL; accepts NULL. No call may be running. */
void sampler_destroy(sampler_t **s);

/* The backend's kind. */
enum sampler_backend sampler_backend(const sampler_t *s);

/* Load policy `version` (built-in backend): from `dir` when non-NULL and non-empty, else from
 * the store's <kind>-v<version> directory (kind sft for 0, policy otherwise). With `sha256`
 * (64 hex digits) the model.safetensors file must hash to it. Already loaded: ERR_OK at once.
 * Evicts down to max_loaded. ERR_NOTFOUND (no such checkpoint), ERR_INVAL (sha256 mismatch,
 * bad config, a tokenizer that does not fit the model), ERR_PROTO (corrupt file), ERR_IO,
 * ERR_NOMEM; `why` names the version, the file and the reason. The remote backend: ERR_INVAL. */
int sampler_load(sampler_t *s, uint32_t version, const char *dir, const char *sha256, char *why,
                 size_t whylen);

/* The newest loaded version (the remote backend: its configured version), or -1 if none. */
int64_t sampler_newest(sampler_t *s);
/* Whether `version` is loaded (the remote backend: is its version). */
bool sampler_has(sampler_t *s, uint32_t version);
/* Up to cap loaded versions, most recently used first; returns how many are loaded. */
size_t sampler_loaded(sampler_t *s, uint32_t *versions, size_t cap);

/* One response as generated. */
struct sampler_response {
    char *text;     /* valid UTF-8, NUL-terminated (see the header comment) */
    int *token_ids; /* [num_tokens] the generated ids (built-in); NULL for remote */
    uint32_t num_tokens;
    double logprob; /* sum under the policy; 0 when a remote server gives none */
    bool has_logprob;
    Oaif__V1__FinishReason finish;
};

/* The answer to one request. The reply and the records borrow strings from the request
 * (prompt ids and texts, run, stop strings): free the result before the request. */
struct sampler_result {
    uint32_t version; /* the policy version used */
    size_t n_prompts;
    unsigned n;                         /* responses per prompt */
    struct sampler_response *responses; /* [n_prompts * n], prompt-major */
    Oaif__V1__SamplingParams sampling;  /* the effective parameters (seed resolved) */
    Oaif__V1__SampleReply reply;        /* pairs[i] for prompts[i] */
    uint8_t *packed;                    /* the reply, packed */
    size_t packed_len;
    Oaif__V1__Record **records; /* n_prompts records, kind PAIR, id = the pair id, data = Pair */
    size_t n_records;
    uint64_t tokens;      /* generated tokens over all responses */
    double gen_seconds;   /* generation (engine call or remote calls) */
    double score_seconds; /* a score request's teacher-forced forward (built-in; sampling takes
                             the log-probs from the decoder's logits: 0) */
    /* storage behind the fields above */
    Oaif__V1__Pair *pair_store;
    Oaif__V1__Pair **pair_ptrs;
    Oaif__V1__Response *resp_store;
    Oaif__V1__Response **resp_ptrs;
    Oaif__V1__Record *rec_store;
    char **pair_ids;
};

/* The pair id of prompt `index` of request `request_id`: "<request_id>/<index>". */
int sampler_pair_id(char *out, size_t outlen, const char *request_id, size_t index);

/* Answer `req` (request id `request_id`, which seeds seed-0 requests and names the pairs).
 * deadline_ms: an absolute http_now_ms() time after which no remote call starts (0: none).
 * On ERR_OK *out is the result (sampler_result_free). Errors, with `why` naming the field or
 * the version and the reason:
 *   ERR_INVAL    a bad request (a field out of range, an empty prompt, a prompt longer than the
 *                context); retrying cannot help
 *   ERR_NOTFOUND the pinned version is not loaded (sampler_load it first)
 *   ERR_AGAIN    no version loaded yet, or the remote server failed in a way worth retrying
 *   ERR_REMOTE   the remote server refused the request (4xx): retrying cannot help
 *   ERR_TIMEOUT, ERR_IO, ERR_NOMEM, ERR_PROTO (a remote answer we cannot parse) */
int sampler_run(sampler_t *s, const char *request_id, const Oaif__V1__SampleRequest *req,
                int64_t deadline_ms, struct sampler_result **out, char *why, size_t whylen);
/* Sets *r to NULL; accepts NULL. */
void sampler_result_free(struct sampler_result **r);

/* Whether an error code of sampler_run means retrying cannot help (a permanent failure). */
bool sampler_error_permanent(int rc);

#endif /* SAMPLER_H */
