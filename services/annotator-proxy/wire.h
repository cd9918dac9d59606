/* wire.h - the judge APIs' wire formats: building an OpenAI chat-completions or an Anthropic
 * Messages request body, reading the answer (text, refusal, finish reason, usage with its cached
 * tokens, the OpenAI-style log-probs of every generated token), classifying error bodies, and
 * finding the verdict in the answer by the template's verdict grammar, with the log-probs of the
 * one token that wrote it. Pure functions on strings: no I/O.
 *
 * Verdict grammars (a template's `@verdict` line, see template.h):
 *   alone             the whole answer is one answer token ("1", "**2**", "\"m\"", "1.")
 *   last-line PREFIX  the last non-empty line is "PREFIX <token>" (or the token alone, for
 *                     templates whose prompt ends in PREFIX); reasoning may come before it
 *   marker PREFIX     "PREFIX <token>" anywhere; the last one wins
 *   json KEY          the answer is a JSON object (a ```json fence allowed) whose KEY holds the
 *                     token (a string or a number)
 * PREFIX matches case-insensitively, ignoring blanks; markdown emphasis, quotes and brackets may
 * surround the token. Reasoning is never parsed: an answer's `<think>...</think>` part is skipped
 * (one left open is a failure: the answer ended while reasoning), and the providers' reasoning
 * fields (OpenAI-style `reasoning_content` / `reasoning`, Anthropic `thinking` and
 * `redacted_thinking` blocks) are not the text. */
#ifndef WIRE_H
#define WIRE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

enum wire_format {
    WIRE_OPENAI = 1, /* POST {base}/chat/completions */
    WIRE_ANTHROPIC,  /* POST {base}/messages */
};

/* Which field carries the completion limit (OpenAI-style servers). */
enum wire_limit_field {
    WIRE_LIMIT_MAX_TOKENS = 0,       /* "max_tokens": vLLM, llama.cpp, Ollama, older OpenAI */
    WIRE_LIMIT_MAX_COMPLETION_TOKENS /* "max_completion_tokens": OpenAI (required by o-series
                                        and gpt-5) */
};

struct wire_params {
    const char *model;
    double temperature;
    bool send_temperature; /* false: no "temperature" (reasoning models take only the default) */
    unsigned max_tokens;
    enum wire_limit_field limit_field; /* OpenAI only; Anthropic always sends max_tokens */
    bool logprobs;                     /* OpenAI only: ask for log-probs of the answer */
    unsigned top_logprobs;             /* with logprobs: 1..20 */
    const char *reasoning_effort;      /* OpenAI: "low" "medium" "high"...; NULL/"": not sent */
    unsigned thinking_budget;          /* Anthropic: extended thinking's budget_tokens; 0: off */
    bool json_object;                  /* OpenAI: response_format {"type":"json_object"} */
};

/* Builds the request body (JSON) for one judge call; system may be NULL. On ERR_OK *body is
 * malloc'd (caller frees). ERR_INVAL for a NULL model or user, ERR_NOMEM. */
int wire_build(enum wire_format f, const struct wire_params *p, const char *system,
               const char *user, char **body);

/* One parsed answer. */
struct wire_answer {
    char *text;             /* the model's text ("" if none), reasoning fields excluded */
    char *refusal;          /* non-NULL: the model refused (OpenAI refusal text, content
                               filter, or Anthropic stop_reason "refusal"); malloc'd */
    bool truncated;         /* cut off at the token limit (finish_reason "length",
                               stop_reason "max_tokens") */
    char finish[32];        /* the finish / stop reason as sent ("" if none) */
    bool reasoning;         /* the answer carried reasoning (a field, block or <think>) */
    json_t *lp_content;     /* OpenAI-style choices[0].logprobs.content (a reference), or NULL */
    unsigned prompt_tokens; /* usage, input tokens of every kind; 0 if the server sent none */
    unsigned cached_tokens; /* ... of which read from the provider's prompt cache */
    unsigned cache_write_tokens; /* ... of which written to it (Anthropic) */
    unsigned completion_tokens;
};

/* Parses a 2xx response body. On ERR_OK fills out (release with wire_answer_free()); on ERR_PROTO
 * writes the reason (what is missing or malformed, or the error the body carries, never the
 * body itself) to why, and *permanent (may be NULL) says whether an error inside the 200 is one
 * a retry cannot fix (see wire_error_permanent()). */
int wire_parse(enum wire_format f, const char *body, size_t len, struct wire_answer *out,
               bool *permanent, char *why, size_t whylen);

/* Frees the strings of a; leaves it zeroed. Accepts a zeroed answer. */
void wire_answer_free(struct wire_answer *a);

/* Does an error body (any status) say the call can never succeed as it is: the credits are spent
 * (OpenAI `insufficient_quota`, billing errors), the key is wrong or lacks the right
 * (`invalid_api_key`, Anthropic `authentication_error` / `permission_error`)? Writes the error's
 * type or code to kind (may be NULL) when it is. A 429 saying `insufficient_quota` must not be
 * retried like a rate limit. */
bool wire_error_permanent(const char *body, size_t len, char *kind, size_t kindlen);

enum wire_verdict_mode {
    WIRE_VERDICT_ALONE = 0,
    WIRE_VERDICT_LAST_LINE,
    WIRE_VERDICT_MARKER,
    WIRE_VERDICT_JSON,
};

#define WIRE_VERDICT_KEY_MAX 64

/* Where a template's judge must write its verdict. */
struct wire_grammar {
    enum wire_verdict_mode mode;
    char key[WIRE_VERDICT_KEY_MAX]; /* the PREFIX, or the JSON KEY; "" for alone */
};

/* Parses the argument of a `@verdict` line ("last-line Preferred:") into g. ERR_INVAL with the
 * reason in why. */
int wire_grammar_parse(const char *spec, struct wire_grammar *g, char *why, size_t whylen);

/* Writes g as a `@verdict` argument ("last-line Preferred:"). */
void wire_grammar_str(const struct wire_grammar *g, char *out, size_t outlen);

/* The verdict found in an answer. */
struct wire_verdict {
    int choice;        /* 0: answers[0], 1: answers[1] */
    size_t offset;     /* byte offset of the token in the answer's text */
    unsigned line;     /* 1-based line and ... */
    unsigned column;   /* ... 1-based byte column of it */
    bool has_logprobs; /* lp[] is meaningful: read at the verdict token's own position */
    double lp[2];      /* log-probs of answers[0] and [1] there (one absent from top_logprobs
                          gets an upper bound) */
    int lp_index;      /* the position in logprobs.content; -1 without log-probs */
    char lp_token[32]; /* the token generated there, as sent */
    char lp_note[128]; /* without log-probs although the answer had some: why */
};

/* Finds the verdict of a in its text by grammar g. Returns ERR_OK and fills v; ERR_PROTO with the
 * reason in why (no verdict in the required place, a <think> never closed). Log-probs are read
 * only at the token that wrote the verdict: the one whose bytes cover v->offset when the tokens
 * spell the text; otherwise v->has_logprobs is false and lp_note says why. */
int wire_find_verdict(const struct wire_answer *a, const struct wire_grammar *g,
                      const char answers[2][16], struct wire_verdict *v, char *why, size_t whylen);

/* P(answer 0) = softmax over the two log-probs: 1 / (1 + exp(lp1 - lp0)). */
double wire_prob_first(const double lp[2]);

/* A short, printable, one-line excerpt of s (at most outlen - 1 bytes) for error messages. */
void wire_excerpt(char *out, size_t outlen, const char *s);

#endif /* WIRE_H */
