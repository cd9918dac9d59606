/* rules.h - the simulated annotator (the `rules` judge) for the built-in task.
 *
 * What it is for: the default judge of the embedded run. It knows the truth, so every label it
 * gives can be checked: the annotator-proxy calls it like any other judge, and evaluation reads
 * which labels it flipped on purpose. What it is not: a judge of open-ended text (it only reads
 * answers that task.h can check) and not an HTTP client.
 *
 * The rules, in order:
 *  1. A correct response beats an incorrect one (task_check decides).
 *  2. Both correct or both incorrect: with RULES_PREFER_SHORTER the shorter response wins, with
 *     RULES_PREFER_LONGER the longer one; length is counted in bytes after trimming leading and
 *     trailing whitespace. Equal lengths, or RULES_PREFER_NONE, give a tie.
 *  3. Label noise: with probability p_noise the label is flipped (first <-> second); a tie stays
 *     a tie and does not count as flipped. Whether a pair is flipped depends only on
 *     (seed, pair id), never on the order of the two responses or of the calls, so judging a
 *     pair in both orders gives p_AB = 1 - p_BA exactly (the two orders always agree and
 *     combining them keeps the noise) and judging it again gives the same answer. `flipped` is
 *     for evaluation only (Label.noise_flipped); training must never read it.
 *
 * Recognised instructions (rules_instruction_parse): matched as whole words, case-insensitive.
 *  - NULL, empty or only whitespace: RULES_PREFER_NONE.
 *  - a brevity word: "short", "shorter", "shortest", "concise", "brief", "briefer", "terse",
 *    "succinct", "brevity" -> RULES_PREFER_SHORTER ("Prefer shorter responses.").
 *  - a length word: "long", "longer", "longest", "detailed", "verbose", "thorough",
 *    "elaborate" -> RULES_PREFER_LONGER (a control for length-bias experiments).
 *  - both kinds, or neither in a non-empty instruction: ERR_INVAL. An instruction the rules cannot
 *    follow is a configuration error, not something to ignore quietly. Negations ("do not prefer
 *    shorter") are not understood: say what to prefer.
 */
#ifndef RULES_H
#define RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "task.h"

enum rules_pref { RULES_PREFER_NONE = 0, RULES_PREFER_SHORTER, RULES_PREFER_LONGER };

struct rules_config {
    double p_noise; /* probability of flipping a label, [0, 1]; AlpacaFarm used 0.25 */
    uint64_t seed;  /* noise seed: with the pair id it fixes every flip */
};

enum rules_winner { RULES_TIE = 0, RULES_FIRST = 1, RULES_SECOND = 2 };

/* Which rule decided the label before noise. */
enum rules_reason { RULES_BY_CORRECTNESS = 0, RULES_BY_LENGTH, RULES_BY_TIE };

struct rules_verdict {
    double p_first;           /* P(first better), after noise: 0, 0.5 or 1 */
    enum rules_winner winner; /* after noise; agrees with p_first */
    enum rules_reason reason; /* the rule that decided, before noise */
    bool first_correct;       /* task_check() of each response */
    bool second_correct;
    size_t first_len; /* trimmed byte lengths compared by the length rule */
    size_t second_len;
    bool flipped; /* the label was flipped by noise: for evaluation only */
};

/* Parses an instruction as described above into *out. Returns ERR_OK, or ERR_INVAL for an
 * instruction with no recognised preference or with both (out NULL is ERR_INVAL too). */
int rules_instruction_parse(const char *instruction, enum rules_pref *out);

/* "none", "shorter" or "longer". */
const char *rules_pref_name(enum rules_pref pref);

/* Checks a configuration: p_noise in [0, 1] (not NaN). Returns ERR_OK or ERR_INVAL. */
int rules_config_check(const struct rules_config *cfg);

/* Judges two responses (first_len and second_len bytes; any bytes; NULL only with length 0) to
 * prompt p by the rules above, into *out. pair_id names the pair (Pair.id): it must be non-empty
 * when cfg->p_noise > 0, and the same for both orders of one pair. Returns ERR_OK, or ERR_INVAL
 * (bad config, pref or prompt record, NULL arguments, missing pair id). */
int rules_judge(const struct rules_config *cfg, const struct task_prompt *p, enum rules_pref pref,
                const char *pair_id, const char *first, size_t first_len, const char *second,
                size_t second_len, struct rules_verdict *out);

/* rules_judge() from what an AnnotateRequest carries: the prompt text, the reference answer
 * (NULL or "" to recompute it from a built-in prompt) and the instruction text (NULL or "" for
 * none). With a reference, the answer kind comes from the prompt's family when the text is a
 * built-in prompt, else from the reference's shape (a number, a list, a word), so imported
 * prompts with checkable answers work too. Returns ERR_OK, ERR_INVAL (an unrecognised
 * instruction, a reference of no known shape, bad arguments) or ERR_NOTFOUND (no reference and
 * the text is not a built-in prompt). */
int rules_judge_text(const struct rules_config *cfg, const char *prompt_text, const char *reference,
                     const char *instruction, const char *pair_id, const char *first,
                     size_t first_len, const char *second, size_t second_len,
                     struct rules_verdict *out);

#endif /* RULES_H */
