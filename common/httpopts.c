/* httpopts.c - see httpopts.h. */
#include "httpopts.h"

#include <limits.h>

static unsigned to_unsigned(int64_t v)
{
    return v < 0 ? 0 : v > UINT_MAX ? UINT_MAX : (unsigned)v;
}

static long to_long(int64_t v)
{
    return v < 0 ? 0 : v > LONG_MAX ? LONG_MAX : (long)v;
}

struct http_config http_opts_config(const struct http_opts *o)
{
    struct http_config c = http_config_default();
    c.max_in_flight = to_unsigned(o->max_in_flight);
    c.connect_timeout_ms = to_long(o->connect_timeout_ms);
    c.total_timeout_ms = to_long(o->timeout_ms);
    c.max_attempts = to_unsigned(o->max_attempts);
    c.backoff_base_ms = to_unsigned(o->backoff_base_ms);
    c.backoff_max_ms = to_unsigned(o->backoff_max_ms);
    c.retry_after_max_ms = to_unsigned(o->retry_after_max_ms);
    c.requests_per_minute = o->requests_per_minute;
    c.tokens_per_minute = o->tokens_per_minute;
    c.max_response_bytes = o->max_response_bytes;
    if (o->burst_seconds > 0)
        c.burst_seconds = o->burst_seconds;
    if (o->seed)
        c.seed = o->seed;
    return c;
}
