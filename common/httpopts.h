/* httpopts.h - the options of an HTTP client (http.h), written once: the rows every service that
 * calls an HTTP API puts in its option table, each with the same name under the service's own
 * key and variable prefixes, the same flag, range and help, and its default from http.h
 * (HTTP_DEFAULT_*, which http_config_default() reads too); and http_opts_config(), which turns
 * what the rows filled into the client's struct http_config.
 *
 *   static const struct cfg_option options[] = {
 *       ...
 *       HTTP_OPTS(struct annotator_opts, judge.http, "annotator.http", "ANNOTATOR", "judge"),
 *   };
 *
 * gives, for key prefix P and variable prefix E:
 *   P.max_in_flight       $E_MAX_IN_FLIGHT        --max-in-flight
 *   P.connect_timeout     $E_CONNECT_TIMEOUT      --connect-timeout
 *   P.timeout             $E_TIMEOUT              --timeout
 *   P.max_attempts        $E_MAX_ATTEMPTS         --max-attempts
 *   P.backoff_base        $E_BACKOFF_BASE         --backoff-base
 *   P.backoff_max         $E_BACKOFF_MAX          --backoff-max
 *   P.retry_after_max     $E_RETRY_AFTER_MAX      --retry-after-max
 *   P.requests_per_minute $E_REQUESTS_PER_MINUTE  --rpm
 *   P.tokens_per_minute   $E_TOKENS_PER_MINUTE    --tpm
 *   P.max_response_size   $E_MAX_RESPONSE_SIZE    --max-response-size
 * The annotator-proxy: P annotator.http, E ANNOTATOR. The sampler: P sampler.remote,
 * E SAMPLER_REMOTE.
 *
 * Not here: the client itself (http.h), a service's other options. */
#ifndef HTTPOPTS_H
#define HTTPOPTS_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "http.h"

/* The fields the rows fill; a service embeds one. Types are the option types' (cfg.h). */
struct http_opts {
    int max_in_flight;                      /* K: calls in flight, also the connection pool */
    int max_attempts;                       /* first try included */
    int64_t connect_timeout_ms, timeout_ms; /* per attempt */
    int64_t backoff_base_ms, backoff_max_ms, retry_after_max_ms;
    double requests_per_minute, tokens_per_minute; /* client-side limits; 0: none */
    size_t max_response_bytes;
    /* not options (no row fills them): 0 keeps http_config_default()'s; tests pin them */
    double burst_seconds;
    uint64_t seed;
};

/* The text of a macro's value: HTTP_OPTS_STR(HTTP_DEFAULT_TIMEOUT_S) is "120". */
#define HTTP_OPTS_STR_(x) #x
#define HTTP_OPTS_STR(x)  HTTP_OPTS_STR_(x)

/* The option rows, filling the struct http_opts at member m of T. P: the run-file key prefix
 * ("annotator.http"); E: the environment variable prefix ("ANNOTATOR"); what: the help texts'
 * first word ("judge", "remote"). */
/* clang-format off */
#define HTTP_OPTS(T, m, P, E, what)                                                                \
    CFG_INT_OPT(T, m.max_in_flight, .key = P ".max_in_flight",                                     \
                .def = HTTP_OPTS_STR(HTTP_DEFAULT_MAX_IN_FLIGHT), .min = 1, .max = 4096,           \
                .env = E "_MAX_IN_FLIGHT", .flag = "--max-in-flight",                              \
                .help = what ": K, the calls in flight at once per replica (also its connection "  \
                        "pool)."),                                                                 \
    CFG_DURATION_OPT(T, m.connect_timeout_ms, .key = P ".connect_timeout",                         \
                     .def = HTTP_OPTS_STR(HTTP_DEFAULT_CONNECT_TIMEOUT_S) "s", .min = 1,           \
                     .max = 600000, .env = E "_CONNECT_TIMEOUT", .flag = "--connect-timeout",      \
                     .help = what ": per attempt, the TCP and TLS connect."),                      \
    CFG_DURATION_OPT(T, m.timeout_ms, .key = P ".timeout",                                         \
                     .def = HTTP_OPTS_STR(HTTP_DEFAULT_TIMEOUT_S) "s", .min = 1, .max = 3600000,   \
                     .env = E "_TIMEOUT", .flag = "--timeout",                                     \
                     .help = what ": per attempt, the whole call."),                               \
    CFG_INT_OPT(T, m.max_attempts, .key = P ".max_attempts",                                       \
                .def = HTTP_OPTS_STR(HTTP_DEFAULT_MAX_ATTEMPTS), .min = 1, .max = 100,             \
                .env = E "_MAX_ATTEMPTS", .flag = "--max-attempts",                                \
                .help = what ": attempts per call (retries on 408, 409, 429, 5xx, 529 and "        \
                        "transport errors)."),                                                     \
    CFG_DURATION_OPT(T, m.backoff_base_ms, .key = P ".backoff_base",                               \
                     .def = HTTP_OPTS_STR(HTTP_DEFAULT_BACKOFF_BASE_MS) "ms", .min = 1,            \
                     .max = 600000, .env = E "_BACKOFF_BASE", .flag = "--backoff-base",            \
                     .help = what ": first retry delay; doubled each retry, jittered."),           \
    CFG_DURATION_OPT(T, m.backoff_max_ms, .key = P ".backoff_max",                                 \
                     .def = HTTP_OPTS_STR(HTTP_DEFAULT_BACKOFF_MAX_S) "s", .min = 1,               \
                     .max = 3600000, .env = E "_BACKOFF_MAX", .flag = "--backoff-max",             \
                     .help = what ": longest retry delay."),                                       \
    CFG_DURATION_OPT(T, m.retry_after_max_ms, .key = P ".retry_after_max",                         \
                     .def = HTTP_OPTS_STR(HTTP_DEFAULT_RETRY_AFTER_MAX_S) "s", .min = 0,           \
                     .max = 3600000, .env = E "_RETRY_AFTER_MAX", .flag = "--retry-after-max",     \
                     .help = what ": a longer Retry-After fails the call instead of waiting."),    \
    CFG_DOUBLE_OPT(T, m.requests_per_minute, .key = P ".requests_per_minute",                      \
                   .def = HTTP_OPTS_STR(HTTP_DEFAULT_REQUESTS_PER_MINUTE), .dmin = 0, .dmax = 1e9, \
                   .env = E "_REQUESTS_PER_MINUTE", .flag = "--rpm",                               \
                   .help = what ": client-side limit on calls per minute per replica (0: none)."), \
    CFG_DOUBLE_OPT(T, m.tokens_per_minute, .key = P ".tokens_per_minute",                          \
                   .def = HTTP_OPTS_STR(HTTP_DEFAULT_TOKENS_PER_MINUTE), .dmin = 0, .dmax = 1e12,  \
                   .env = E "_TOKENS_PER_MINUTE", .flag = "--tpm",                                 \
                   .help = what ": client-side limit on tokens per minute per replica (0: "        \
                           "none)."),                                                              \
    CFG_SIZE_OPT(T, m.max_response_bytes, .key = P ".max_response_size",                           \
                 .def = HTTP_OPTS_STR(HTTP_DEFAULT_MAX_RESPONSE_MIB) "MiB", .min = 1024,           \
                 .max = 1LL << 30, .env = E "_MAX_RESPONSE_SIZE", .flag = "--max-response-size",   \
                 .help = what ": larger answers fail the call.")
/* clang-format on */

/* The client configuration the options describe: http_config_default() with every option field
 * of o, and burst_seconds and seed where they are not 0. A value out of the client's range (a
 * count or duration below 0, as a zeroed struct gives for K) becomes 0, which
 * http_config_validate() refuses, naming the field; a duration over UINT_MAX ms is capped. */
struct http_config http_opts_config(const struct http_opts *o);

#endif /* HTTPOPTS_H */
