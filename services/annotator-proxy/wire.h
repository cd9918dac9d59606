/* wire.h - the judge APIs' wire formats: building an OpenAI chat-completions or an Anthropic
 * Messages request body, and reading the answer (text, refusal, usage, and for OpenAI the
 * log-probabilities of the two answer tokens). Also the forced-choice verdict parser and the
 * log-prob to probability rule. Pure functions on strings: no I/O. */
#ifndef WIRE_H
#define WIRE_H

#include <stdbool.h>
#include <stddef.h>

enum wire_format {
    WIRE_OPENAI = 1, /* POST {base}/chat/completions */
    WIRE_ANTHROPIC,  /* POST {base}/messages */
};

struct wire_params {
    const char *model;
    double temperature;
    unsigned max_tokens;
    bool logprobs;         /* OpenAI only: ask for log-probs of the answer */
    unsigned top_logprobs; /* with logprobs: 1..20 */
};

/* Builds the request body (JSON) for one judge call; system may be NULL. On ERR_OK *body is
 * malloc'd (caller frees). ERR_INVAL for a NULL model or user, ERR_NOMEM. */
int wire_build(enum wire_format f, const struct wire_params *p, const char *system,
               const char *user, char **body);

/* One parsed answer. */
struct wire_answer {
    char *text;             /* the model's text ("" if none); malloc'd */
    char *refusal;          /* non-NULL: the model refused (OpenAI refusal text, content
                               filter, or Anthropic stop_reason "refusal"); malloc'd */
    bool has_logprobs;      /* lp[] is meaningful */
    double lp[2];           /* log-probs of answer tokens [0] and [1] at the answer position
                               (a token absent from top_logprobs gets an upper bound) */
    unsigned prompt_tokens; /* usage; 0 if the server sent none */
    unsigned completion_tokens;
};

/* Parses a 2xx response body. answers are the template's two answer tokens (for locating them in
 * the log-probs). On ERR_OK fills out (release with wire_answer_free()); on ERR_PROTO writes the
 * reason (what is missing or malformed, never the body itself) to why. */
int wire_parse(enum wire_format f, const char *body, size_t len, const char answers[2][16],
               struct wire_answer *out, char *why, size_t whylen);

/* Frees the strings of a; leaves it zeroed. Accepts a zeroed answer. */
void wire_answer_free(struct wire_answer *a);

/* The forced-choice verdict in a judge's text: 0 (the first answer token), 1 (the second), -1
 * none. Accepts the token alone at the start (after spaces, quotes, '*', '(' or '['), and
 * "Preferred Response=<token>" / "Preferred Response: <token>" anywhere (the last one wins).
 * Tokens match case-sensitively and must end at a non-alphanumeric character. */
int wire_verdict(const char *text, const char answers[2][16]);

/* P(answer 0) = softmax over the two log-probs: 1 / (1 + exp(lp1 - lp0)). */
double wire_prob_first(const double lp[2]);

/* A short, printable, one-line excerpt of s (at most outlen - 1 bytes) for error messages. */
void wire_excerpt(char *out, size_t outlen, const char *s);

#endif /* WIRE_H */
