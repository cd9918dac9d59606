/* judge_conformance_server.h - an in-process HTTP server (libmicrohttpd) that answers judge and
 * completion calls the way the providers' published API references show them: OpenAI's
 * POST /v1/chat/completions and /v1/completions, Anthropic's POST /v1/messages, and what vLLM and
 * llama.cpp's OpenAI-compatible servers send on the same routes. It does not judge: it replays
 * scripted replies (status, one extra header, a body read from tests/fixtures/judge-replies/)
 * and checks each request as the real APIs do (the route, Anthropic's headers and required
 * max_tokens, OpenAI reasoning models' refusal of max_tokens, temperature and logprobs,
 * extended thinking's refusal of a temperature), answering a bad one with the provider's error.
 * Kept apart from tests/fake_judge.c, which judges by markers and shortcuts the formats.
 *
 * Scripts: one queue for requests that show the first response ("ALPHA") before the second
 * ("BETA") and one for the others (the swapped order, and completion calls), so that both orders
 * of a judgement get their own replies whatever order they arrive in. Each request takes the
 * next reply of its queue; the last one repeats. */
#ifndef JUDGE_CONFORMANCE_SERVER_H
#define JUDGE_CONFORMANCE_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#define JCS_MAX_REPLIES 4

/* One scripted reply. */
struct jcs_reply {
    unsigned status;     /* 0: 200 */
    const char *fixture; /* a file of the fixture directory: the body */
    const char *header;  /* one more "Name: value" header, or NULL */
    bool chunked;        /* sent with Transfer-Encoding: chunked */
    bool gzip;           /* sent with Content-Encoding: gzip when the request accepts it */
};

typedef struct jcs jcs_t;

/* Starts the server on an ephemeral port of 127.0.0.1, replaying files of fixture_dir. Returns 0,
 * or -1 (with the reason on stderr). */
int jcs_start(jcs_t **out, const char *fixture_dir);

/* Stops and frees; sets *s to NULL. */
void jcs_stop(jcs_t **s);

/* "http://127.0.0.1:PORT/v1". */
const char *jcs_base_url(const jcs_t *s);

/* Sets the replies: ab for requests showing ALPHA before BETA, ba for the others (NULL: ab's);
 * n of each (1..JCS_MAX_REPLIES). Resets the request counters and the last body. */
void jcs_script(jcs_t *s, const struct jcs_reply *ab, size_t nab, const struct jcs_reply *ba,
                size_t nba);

/* Requests answered since the last jcs_script(). */
unsigned jcs_requests(jcs_t *s);

/* Replies sent gzip'd since the last jcs_script() (the client accepted gzip). */
unsigned jcs_gzipped(jcs_t *s);

/* A copy of the last request's body (malloc'd; "" if none). */
char *jcs_last_body(jcs_t *s);

#endif /* JUDGE_CONFORMANCE_SERVER_H */
