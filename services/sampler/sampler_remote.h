/* sampler_remote.h - the sampler's remote backend: responses from an OpenAI-compatible
 * /v1/completions server (vLLM, llama.cpp server, TGI's OpenAI route) over common/http.h.
 *
 * One HTTP call per response (n = 1), so every server works and the usage is per response;
 * calls run K at a time (max_in_flight), with the HTTP client's retry rules (408, 409, 429,
 * 5xx, 529 and transport errors, exponential back-off with jitter, Retry-After). What a choice
 * gives: text, finish_reason ("length" -> LENGTH; "stop" -> STOP when the server says a stop
 * string ended it: vLLM's stop_reason as a string, llama.cpp's stopped_word; else EOS), the sum
 * of the token log-probs when offered (the legacy logprobs.token_logprobs of OpenAI and vLLM,
 * or llama.cpp's logprobs.content[].logprob; has_logprob false when none came, so that the
 * Response says its log-prob is unknown), and usage.completion_tokens (else the number of
 * log-prob tokens).
 *
 * Not here: prompt templates and request checks (sampler.c). */
#ifndef SAMPLER_REMOTE_H
#define SAMPLER_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "sampler.h"

typedef struct sampler_remote sampler_remote_t;

/* One completion to ask for. Strings are borrowed for the call. */
struct sampler_remote_call {
    const char *prompt; /* the rendered prompt */
    unsigned max_tokens;
    float temperature; /* sent as 0 when top_k == 1 (greedy) */
    float top_p;
    unsigned top_k; /* sent only when > 0 (a vLLM / llama.cpp extension) */
    uint64_t seed;
    const char *const *stop;
    size_t nstop;
};

/* Starts the HTTP client (http_opts_config() of cfg->http). The API key is api_key,
 * else the variable api_key_env names (copied). ERR_INVAL (no base_url or model, api_key_env's
 * variable unset, a bad HTTP setting: why names the option), ERR_NOMEM. cfg is borrowed for the
 * remote's life. */
int sampler_remote_new(sampler_remote_t **out, const struct sampler_remote_config *cfg, char *why,
                       size_t whylen);
/* Drops calls in flight. Sets *r to NULL; accepts NULL. */
void sampler_remote_destroy(sampler_remote_t **r);

/* The JSON body of one call; *out is malloc'd (free). ERR_NOMEM. */
int sampler_remote_body(const struct sampler_remote_config *cfg,
                        const struct sampler_remote_call *call, char **out);

/* Parse a 2xx answer into *out (text malloc'd; token_ids NULL). ERR_PROTO with why saying what
 * is missing or malformed (not JSON, no choices, no text). */
int sampler_remote_parse(const char *body, size_t len, struct sampler_response *out, char *why,
                         size_t whylen);

/* Run n calls (K at a time) and wait for all of them; out[i] answers calls[i]. deadline_ms: an
 * absolute http_now_ms() time after which no attempt starts (0: none). On an error every out[i]
 * is released (zeroed) and why names the call, the status and the server's message (the API
 * key never appears). ERR_OK; ERR_REMOTE (a final answer no retry can change: 4xx, a body too
 * large); ERR_AGAIN (retryable failures, attempts spent); ERR_TIMEOUT; ERR_IO; ERR_PROTO (an
 * answer we cannot parse); ERR_NOMEM. Single-threaded. */
int sampler_remote_run(sampler_remote_t *r, const struct sampler_remote_call *calls, size_t n,
                       int64_t deadline_ms, struct sampler_response *out, char *why, size_t whylen);

#endif /* SAMPLER_REMOTE_H */
