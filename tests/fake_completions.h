/* fake_completions.h - a tiny OpenAI-compatible /v1/completions server for the sampler's tests,
 * run in the test's own process (libmicrohttpd, one thread) on 127.0.0.1 with an ephemeral port.
 *
 * POST <anything>/completions with {"prompt", "max_tokens", "seed", "stop"?, "logprobs"?}
 * answers with one choice whose text is a pure function of the prompt and the seed:
 *   text = "r<seed % 100000>:" followed by the prompt's bytes reversed, one "token" per byte,
 *   cut at max_tokens bytes (finish_reason "length"), or before the first stop string
 *   (finish_reason "stop", stop_reason the string), else finish_reason "stop", stop_reason null;
 *   logprobs.token_logprobs = -0.25 per token when asked; usage.completion_tokens = tokens.
 * The first `fail_first` requests fail with `fail_status` (a JSON error body); a request whose
 * prompt contains "REJECT" gets 400. Counters say what arrived. */
#ifndef FAKE_COMPLETIONS_H
#define FAKE_COMPLETIONS_H

#include <stdatomic.h>

struct fake_completions {
    struct MHD_Daemon *d;
    int port;
    char base_url[64]; /* "http://127.0.0.1:<port>/v1" */
    atomic_int requests;
    atomic_int fail_first; /* set before the requests it should fail */
    int fail_status;       /* default 503 */
    char last_auth[256];   /* the last Authorization header (tests check the key is sent) */
};

/* Start on an ephemeral port. 0 or -1. */
int fake_completions_start(struct fake_completions *f);
void fake_completions_stop(struct fake_completions *f);

#endif /* FAKE_COMPLETIONS_H */
