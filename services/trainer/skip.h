/* skip.h - why the online loop set a sampled pair aside instead of training on it.
 *
 * Each reason is an enum value; trainer_skip_name gives the string that goes into a TrainStep
 * record's skip_reasons and into the logs. Those strings are stored data (`oaif audit`, exports
 * and the tests read them): a name never changes, a new reason gets a new one.
 * Not for: the pairs themselves or the step records (online.c). */
#ifndef TRAINER_SKIP_H
#define TRAINER_SKIP_H

enum trainer_skip {
    TRAINER_SKIP_EMPTY_RESPONSE,   /* "empty response": not two responses, or one without tokens */
    TRAINER_SKIP_PROMPT_TOKENIZE,  /* "prompt does not tokenize" */
    TRAINER_SKIP_TOO_LONG,         /* "longer than the context": prompt + a response */
    TRAINER_SKIP_REFERENCE_FAILED, /* "reference failed": the SFT model's log-probs */
    TRAINER_SKIP_NOMEM,            /* "out of memory" */
    TRAINER_SKIP_NOT_SUBMITTED,    /* "not submitted": the annotate request did not go out */
    TRAINER_SKIP_FAILED,           /* "failed": the judge failed (the ledger's reason is logged) */
    TRAINER_SKIP_TIE,              /* "tie": the judge saw no winner */
    TRAINER_SKIP_NO_VERDICT,       /* "no verdict": a reply without a winner */
    TRAINER_SKIP_STALE,            /* "stale": sampled more than max_staleness versions ago */
    TRAINER_SKIP_STRENGTH_DROP,    /* "strength drop": the strength estimator said DROP */
    TRAINER_SKIP_STRENGTH_FAILED,  /* "strength failed": no usable estimate, strength required */
    TRAINER_SKIP_COUNT
};

/* The reason's name as records and logs carry it ("tie", "stale", ...); a static string,
 * "unknown" for a value outside the enum. Never NULL. */
const char *trainer_skip_name(enum trainer_skip s);

#endif /* TRAINER_SKIP_H */
