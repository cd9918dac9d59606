/* skip.c - see skip.h. */
#include "skip.h"

static const char *const names[TRAINER_SKIP_COUNT] = {
    [TRAINER_SKIP_EMPTY_RESPONSE] = "empty response",
    [TRAINER_SKIP_PROMPT_TOKENIZE] = "prompt does not tokenize",
    [TRAINER_SKIP_TOO_LONG] = "longer than the context",
    [TRAINER_SKIP_REFERENCE_FAILED] = "reference failed",
    [TRAINER_SKIP_NOMEM] = "out of memory",
    [TRAINER_SKIP_NOT_SUBMITTED] = "not submitted",
    [TRAINER_SKIP_FAILED] = "failed",
    [TRAINER_SKIP_TIE] = "tie",
    [TRAINER_SKIP_NO_VERDICT] = "no verdict",
    [TRAINER_SKIP_STALE] = "stale",
    [TRAINER_SKIP_STRENGTH_DROP] = "strength drop",
    [TRAINER_SKIP_STRENGTH_FAILED] = "strength failed",
};

const char *trainer_skip_name(enum trainer_skip s)
{
    return (unsigned)s < TRAINER_SKIP_COUNT && names[s] ? names[s] : "unknown";
}
