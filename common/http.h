/* http.h - asynchronous HTTP client over libcurl's multi interface, for calling judge APIs.
 *
 * One http_client_t is one "handle-set": a curl multi handle with its connection pool, at most
 * `max_in_flight` transfers at once (K), a FIFO of waiting requests, retries with exponential
 * back-off and jitter, `Retry-After` honoured, and client-side rate limits (requests and tokens
 * per minute, token buckets). It is single-threaded: one thread submits and polls. Use one client
 * per thread (or per replica process).
 *
 * Not here: JSON, judge wire formats (annotator.c), TLS settings beyond libcurl's defaults.
 *
 * curl_global_init(CURL_GLOBAL_DEFAULT) must have been called once by main(), before any thread
 * starts and before http_client_new(); curl_global_cleanup() once at exit, after every client is
 * destroyed. This module never calls either.
 *
 * Secrets: the caller lists secret strings (API keys) per request. Header values are never
 * logged by this module (curl's verbose mode is never enabled), and every error string it makes
 * has each listed secret replaced by "[REDACTED]" (a server may echo the key in its error body). */
#ifndef HTTP_H
#define HTTP_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct http_client http_client_t; /* opaque: the fields live in http.c */

/* The defaults of struct http_config, written once: http_config_default() and the HTTP option
 * rows of every service (httpopts.h) read them. Each name carries its unit. */
#define HTTP_DEFAULT_MAX_IN_FLIGHT       16
#define HTTP_DEFAULT_CONNECT_TIMEOUT_S   10
#define HTTP_DEFAULT_TIMEOUT_S           120
#define HTTP_DEFAULT_MAX_ATTEMPTS        5
#define HTTP_DEFAULT_BACKOFF_BASE_MS     500
#define HTTP_DEFAULT_BACKOFF_MAX_S       30
#define HTTP_DEFAULT_RETRY_AFTER_MAX_S   120
#define HTTP_DEFAULT_REQUESTS_PER_MINUTE 0 /* no limit */
#define HTTP_DEFAULT_TOKENS_PER_MINUTE   0 /* no limit */
#define HTTP_DEFAULT_BURST_S             1
#define HTTP_DEFAULT_MAX_RESPONSE_MIB    8

/* Settings of one client. Start from http_config_default() and change what you need. */
struct http_config {
    unsigned max_in_flight;      /* K: transfers at once (>= 1); also the connection pool size */
    long connect_timeout_ms;     /* per attempt: TCP + TLS connect */
    long total_timeout_ms;       /* per attempt: whole transfer */
    unsigned max_attempts;       /* >= 1: first try included */
    unsigned backoff_base_ms;    /* delay before retry n is base * 2^(n-1), capped ... */
    unsigned backoff_max_ms;     /* ... at this, then jittered uniformly in [delay/2, delay] */
    unsigned retry_after_max_ms; /* a longer Retry-After fails the request (ERR_AGAIN) */
    double requests_per_minute;  /* client-side limit; 0: none */
    double tokens_per_minute;    /* client-side limit on http_request.tokens; 0: none */
    double burst_seconds;        /* bucket capacity = this many seconds of the rate (>= 1/rate) */
    size_t max_response_bytes;   /* larger bodies fail with ERR_TOOBIG (not retried) */
    uint64_t seed;               /* jitter; 0: from time and pid */
};

/* The defaults: HTTP_DEFAULT_* above (no rate limits), and seed 0. */
struct http_config http_config_default(void);

/* Checks a configuration; on ERR_INVAL writes the reason (naming the field) to why. */
int http_config_validate(const struct http_config *cfg, char *why, size_t whylen);

/* Says whether an error answer (status, body) is final although its status is one that is
 * retried (408, 409, 429, 5xx): e.g. a 429 whose body says the credits are spent. */
typedef bool (*http_permanent_fn)(long status, const char *body, size_t len);

/* One request. Everything is copied by http_client_submit(); nothing is borrowed after. */
struct http_request {
    const char *method;         /* "POST" (default when NULL or body != NULL) or "GET" */
    const char *url;            /* required */
    const char *const *headers; /* "Name: value" strings, nheaders of them */
    size_t nheaders;
    const char *body; /* may be NULL (GET) */
    size_t body_len;
    const char *const *secrets; /* strings never to appear in an error (API keys) */
    size_t nsecrets;
    double tokens;               /* estimated tokens, charged to the tokens-per-minute bucket */
    int64_t deadline_ms;         /* absolute, http_now_ms() clock; 0: none. No attempt starts
                                    after it; the request then fails with ERR_TIMEOUT */
    http_permanent_fn permanent; /* NULL: the status alone decides */
};

/* What a finished request reports. Everything is borrowed until the callback returns. */
struct http_response {
    int rc;           /* ERR_OK: a 2xx answer. ERR_REMOTE: a non-2xx final answer (see status).
                         ERR_AGAIN: retryable status or Retry-After over the limit, attempts
                         spent. ERR_TIMEOUT, ERR_IO: transport (after retries). ERR_TOOBIG:
                         body over the cap. ERR_INVAL: bad URL or request. ERR_NOMEM. */
    long status;      /* HTTP status of the last attempt; 0 if none arrived */
    const char *body; /* the last attempt's body, NUL-terminated (never NULL; may be "") */
    size_t body_len;
    unsigned attempts; /* attempts made */
    double latency_ms; /* submit to completion, queueing and back-off included */
    const char *error; /* NULL when rc == ERR_OK; else why, secrets redacted */
    bool permanent;    /* failed for a reason retrying cannot fix (4xx other than the retryable,
                          bad URL, body too big) */
};

/* Called once per submitted request, from inside http_client_poll() (never from submit).
 * It may submit new requests; it must not destroy the client. */
typedef void (*http_done_fn)(void *user, const struct http_response *resp);

/* Creates a client. On ERR_OK *out owns it (free with http_client_destroy()). Returns ERR_INVAL
 * for a bad configuration (logged, with the field), ERR_NOMEM. */
int http_client_new(http_client_t **out, const struct http_config *cfg);

/* Destroys the client; every request still queued or in flight is dropped without its callback.
 * Sets *c to NULL. Accepts c == NULL and *c == NULL. */
void http_client_destroy(http_client_t **c);

/* Queues a request. Returns ERR_OK (the callback will be called exactly once, from a later
 * http_client_poll()), ERR_INVAL (no url, or done is NULL: no callback), ERR_NOMEM. */
int http_client_submit(http_client_t *c, const struct http_request *req, http_done_fn done,
                       void *user);

/* Runs the client: starts queued requests as K and the rate limits allow, waits up to timeout_ms
 * (0: not at all; < 0: until something happens) for network activity, a timer, or one of the
 * `nextra` caller's fds (may be NULL/0; their revents are filled in), then completes what
 * finished (callbacks) and starts what can start. Returns ERR_OK (also on timeout), or ERR_IO /
 * ERR_NOMEM on a local fault of the multi handle. Integrate with an outer loop either by passing
 * its fds here (for ZeroMQ: the socket's ZMQ_FD, then drain while ZMQ_EVENTS has ZMQ_POLLIN), or
 * by polling http_client_pollfds() yourself and then calling http_client_poll(c, 0, NULL, 0). */
int http_client_poll(http_client_t *c, int timeout_ms, struct pollfd *extra, size_t nextra);

/* The sockets the client waits on now: writes up to cap entries to fds and returns how many there
 * are (may exceed cap: call again with more room). Valid until the next http_client_poll().
 * Built on curl_multi_fdset(): sockets numbered FD_SETSIZE (1024) or more are not reported, so
 * prefer the `extra` fds of http_client_poll() in processes with many descriptors. */
size_t http_client_pollfds(http_client_t *c, struct pollfd *fds, size_t cap);

/* Milliseconds until the client needs http_client_poll() even without socket activity
 * (curl's timers, back-off, rate-limit refill): 0 now, -1 never (idle). */
int http_client_timeout_ms(http_client_t *c);

/* Corrects the tokens-per-minute bucket once the true size of a request is known (usage field):
 * charges `delta` more tokens (negative refunds). No-op without a token limit. */
void http_client_charge_tokens(http_client_t *c, double delta);

/* Counters of one client since it was created. */
struct http_stats {
    uint64_t submitted, completed, succeeded, failed;
    uint64_t attempts;   /* transfers started */
    uint64_t retries;    /* attempts after the first */
    uint64_t rate_waits; /* times a start was held back by a rate limit */
    unsigned in_flight;  /* now */
    size_t queued;       /* now: waiting for a slot, back-off or the rate limit */
};
void http_client_stats(const http_client_t *c, struct http_stats *out);

/* Requests not yet completed (queued + in flight). */
size_t http_client_pending(const http_client_t *c);

/* Monotonic clock in milliseconds (for deadlines). */
int64_t http_now_ms(void);

/* Parses a Retry-After value: delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015
 * 07:28:00 GMT", compared with now_unix). Returns the delay in ms (>= 0; a past date is 0), or
 * -1 if it is neither. */
long http_parse_retry_after(const char *value, int64_t now_unix);

/* Replaces, in place, every occurrence in the NUL-terminated s of each non-empty secret: by
 * "[REDACTED]" when the secret is at least that long, else by as many '*' (s never grows). */
void http_redact(char *s, const char *const *secrets, size_t nsecrets);

#endif /* HTTP_H */
