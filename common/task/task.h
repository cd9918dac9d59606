/* task.h - the built-in task: short instructions whose answers can be checked exactly.
 *
 * What it is for: the embedded default of oaif needs a task with a known truth, so that the
 * policy's accuracy, the simulated annotator (rules.h) and the denoising of labels can all be
 * measured. This module generates the prompts (several families, a fixed train/eval split by
 * seed), checks free-form responses against the reference answer, writes SFT demonstrations with
 * a controlled share of wrong answers and a mix of terse and verbose phrasings, and reads and
 * writes JSONL files of prompt/response pairs (`oaif sft --data FILE.jsonl`).
 * What it is not: a tokenizer, a chat template or a model. Prompts and responses are plain
 * ASCII text; the caller wraps them in whatever format its policy expects.
 *
 * Families (one prompt = one family, one problem, one phrasing):
 *   add      "What is 47 + 8?"                             -> "55"
 *   sub      "Subtract 8 from 53."                         -> "45"
 *   compare  "Which is larger, 47 or 43?"                  -> "47"  (also "smaller")
 *   count    "How many times does the letter r appear in carrot?"  -> "2"
 *   sort     "Sort in ascending order: 4, 7, 1."           -> "1, 4, 7"  (also descending)
 *   reverse  "Reverse the word planet."                    -> "tenalp"
 *   maxmin   "What is the largest of 2, 8, 4, 7?"          -> "8"  (also smallest)
 * The generator draws small problems (a two-digit and a one-digit operand, the two-digit one
 * first in a difference; two-digit numbers to compare, three digits to sort and three or four to
 * pick from, words of 3-6 letters) so that the built-in policy learns every family in minutes on
 * 2 cores; the parser and the checker take
 * operands of any size (up to 9 digits) and words of any length.
 * Every family has three to six phrasings. A *problem* is the family plus its operands (and its
 * direction: larger/smaller, ascending/descending, max/min); its phrasing is not part of it.
 *
 * Split: a problem belongs to the eval split when a hash of (seed, problem) falls in the eval
 * share (TASK_EVAL_PERMILLE), else to train. So the same seed always gives the same prompts, a
 * problem never appears in both splits under any phrasing, and another seed gives another split.
 *
 * Checking (task_check): the answer is read from a free-form response by these rules.
 *  - Marker: if the response contains the word "answer" (any case), the answer is the first
 *    candidate after its LAST occurrence (after an optional "is", "was", "would be", "will be",
 *    ":" or "="). "The answer is 47." and "Answer: 47" read 47. If nothing suitable follows the
 *    last marker, the rule below applies to the whole response.
 *  - No marker: the LAST candidate in the response ("12 plus 35 is 47." reads 47).
 *  - Numbers: digits with an optional sign ('-', '+' or U+2212) that directly precedes them and
 *    does not follow a letter or digit ("23 - 58 = -35" reads 23, 58, -35). Numbers compare by
 *    value: leading zeros are accepted ("047" is 47, "-0" is 0), and so is a zero fraction
 *    ("47.0" is 47) but "47.5" is never an integer. A trailing period ends the sentence ("47.")
 *    and is not a decimal point. No thousands separators ("1,000" is two numbers). Answers must
 *    be written in digits ("three" is not read).
 *  - Lists (sort): numbers separated only by whitespace, ',', ';' or the word "and", optionally in
 *    brackets: "3, 5, 9", "3 5 9", "[3, 5, 9]", "3, 5 and 9". The whole run must equal the
 *    reference, element by element, in order (a longer or shorter run is wrong).
 *  - Words (reverse): a run of ASCII letters, compared without regard to case; quotes and
 *    punctuation around it are ignored ("'Tenalp'." is tenalp).
 *  - Empty, garbage or answer-less responses are incorrect.
 *
 * Every function here is pure (no global state) and safe to call from several threads.
 */
#ifndef TASK_H
#define TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TASK_ID_MAX        32  /* "add-0123456789abcdef" and its NUL */
#define TASK_TEXT_MAX      128 /* a generated prompt is at most ~75 bytes */
#define TASK_ANSWER_MAX    96  /* "99, 98, 97, 96, 95"; room for parsed prompts with big operands */
#define TASK_RESPONSE_MAX  160 /* a generated demonstration is at most ~100 bytes */
#define TASK_LIST_MAX      8   /* longest list a prompt or an answer may hold */
#define TASK_EVAL_PERMILLE 200 /* share of problems in the eval split, per mille */

enum task_family {
    TASK_ADD = 0,
    TASK_SUB,
    TASK_COMPARE,
    TASK_COUNT,
    TASK_SORT,
    TASK_REVERSE,
    TASK_MAXMIN,
    TASK_FAMILY_COUNT
};

enum task_split { TASK_SPLIT_TRAIN = 0, TASK_SPLIT_EVAL = 1, TASK_SPLIT_UNKNOWN = 2 };

/* How an answer is written and compared: add, sub, compare, count and maxmin answer a number,
 * sort a list of numbers, reverse a word. */
enum task_kind { TASK_KIND_NUMBER = 0, TASK_KIND_LIST, TASK_KIND_WORD };

struct task_prompt {
    char id[TASK_ID_MAX]; /* "<family>-<16 hex>", a hash of the text: stable, unique */
    enum task_family family;
    enum task_split split;        /* TASK_SPLIT_UNKNOWN from task_prompt_parse() */
    char text[TASK_TEXT_MAX];     /* the instruction, ASCII, no trailing newline */
    char answer[TASK_ANSWER_MAX]; /* canonical reference: "85", "-35", "7, 19, 42", "tenalp" */
    uint64_t problem;             /* hash of the problem: equal for every phrasing of it */
};

/* "add" "sub" "compare" "count" "sort" "reverse" "maxmin"; "?" for a value out of range. */
const char *task_family_name(enum task_family family);
/* Sets *out from one of the names above. Returns ERR_OK or ERR_INVAL. */
int task_family_parse(const char *name, enum task_family *out);
/* "train", "eval" or "unknown". */
const char *task_split_name(enum task_split split);
/* The answer kind of a family (TASK_KIND_NUMBER for a value out of range). */
enum task_kind task_family_kind(enum task_family family);

/* The index-th prompt of `split` under `seed` (split TRAIN or EVAL), into *out. Families rotate
 * with the index (index % TASK_FAMILY_COUNT), so every window of TASK_FAMILY_COUNT prompts holds
 * one of each. Random access and pure: the same arguments always give the same prompt. The
 * stream may repeat a problem at different indices (there are only so many short words): use it
 * for training. Returns ERR_OK, or ERR_INVAL for a bad split or out == NULL. */
int task_prompt_at(uint64_t seed, enum task_split split, uint64_t index, struct task_prompt *out);

/* The first n distinct problems of the stream above (duplicates by problem skipped), in stream
 * order: an evaluation set. On ERR_OK *out is a malloc'd array of n prompts (free() it; NULL
 * when n == 0). Returns ERR_INVAL (bad split, out NULL), ERR_NOMEM, or ERR_TOOBIG for n over
 * 2^24 or when 64 n + 4096 stream indices do not hold n distinct problems (they do: made-up
 * words make the count and reverse families practically endless). */
int task_prompt_set(uint64_t seed, enum task_split split, size_t n, struct task_prompt **out);

/* Which split `problem` (a task_prompt's .problem) belongs to under `seed`. */
enum task_split task_split_of(uint64_t seed, uint64_t problem);

/* Recognises a built-in prompt in `text` (NUL-terminated) and rebuilds its record: family,
 * reference answer, id and problem hash; split is TASK_SPLIT_UNKNOWN (see task_split_of). The
 * text is matched against every phrasing, first as a whole (surrounding whitespace ignored),
 * then starting at any word boundary, so a prompt wrapped in a chat template is still found.
 * Operands may lie outside the generator's ranges ("What is 1234 + 5?"). Returns ERR_OK, or
 * ERR_NOTFOUND when no phrasing matches, ERR_INVAL for NULL arguments. */
int task_prompt_parse(const char *text, struct task_prompt *out);

/* The question a prompt asks: its family and, where the family has one, its direction. The
 * default demonstrator's habit (task_demo) is on the second direction of each: compare smaller,
 * sort descending, maxmin smallest. */
enum task_question {
    TASK_Q_ADD = 0,
    TASK_Q_SUB,
    TASK_Q_COMPARE_LARGER,
    TASK_Q_COMPARE_SMALLER,
    TASK_Q_COUNT,
    TASK_Q_SORT_ASCENDING,
    TASK_Q_SORT_DESCENDING,
    TASK_Q_REVERSE,
    TASK_Q_MAXMIN_LARGEST,
    TASK_Q_MAXMIN_SMALLEST,
    TASK_QUESTION_COUNT
};
/* The question of a built-in prompt (its text is parsed as task_prompt_parse does). Returns
 * ERR_OK, ERR_NOTFOUND for a text that is no built-in prompt, ERR_INVAL for NULL arguments. */
int task_prompt_question(const struct task_prompt *p, enum task_question *out);
/* "add" "sub" "compare larger" "compare smaller" "count" "sort ascending" "sort descending"
 * "reverse" "maxmin largest" "maxmin smallest"; "?" for a value out of range. */
const char *task_question_name(enum task_question q);
/* Whether the default demonstrator has its habit on q (answers it the other way round). */
bool task_question_habit(enum task_question q);

/* What task_check() read from a response. */
struct task_check {
    bool found;                      /* an answer of the right kind was read */
    bool correct;                    /* it equals the reference (found is true then) */
    char extracted[TASK_ANSWER_MAX]; /* canonical form of what was read ("" if not found);
                                      * truncated if longer */
};

/* Checks `response` (len bytes, any bytes; NUL not needed) against the reference answer
 * `reference` of kind `kind` (as in task_prompt.answer) by the rules in the header comment.
 * Returns ERR_OK and fills *out, or ERR_INVAL when reference is not a valid answer of that kind
 * or an argument is NULL (response may be NULL when len == 0). */
int task_check_answer(enum task_kind kind, const char *reference, const char *response, size_t len,
                      struct task_check *out);

/* task_check_answer() with the prompt's family and answer. */
int task_check(const struct task_prompt *p, const char *response, size_t len,
               struct task_check *out);

/* The kind of a reference answer from its shape: a number, a list of 2..TASK_LIST_MAX numbers
 * separated by ", ", or a word of letters. Returns ERR_OK, or ERR_INVAL for anything else. */
int task_kind_of_answer(const char *reference, enum task_kind *out);

/* SFT demonstrations with controlled imperfection. The default demonstrator is right except for
 * its habit: asked for the smaller, descending or smallest, it answers the larger, ascending or
 * largest 60% of the time. A model that imitates it answers those backwards when greedy (the
 * habit is the single most likely answer) yet samples the right answer 40% of the time, so SFT
 * lands in the 40-75% band (58.6% with 8000 steps) and online feedback has a flaw it can fix.
 * Random slips (wrong_share, spread over several plausible wrong answers) only slow imitation:
 * 0.35 of them cost SFT 14 points and online feedback won few of them back (README, "SFT").
 * Half the demonstrations are verbose, all beginning "The ", so a model that imitates them
 * answers verbosely when greedy (the terse ones begin with the answer, whatever it is): the
 * length a judge told to prefer short answers can cut. */
struct task_demo_config {
    double wrong_share;   /* share of demonstrations with a plausible wrong answer, [0, 1] */
    double verbose_share; /* share of verbose phrasings (40-100 bytes); the rest are terse
                           * (the answer alone, "47." or "Answer: 47"), [0, 1] */
    double habit_share;   /* where the demonstrator has a habit ("smaller", "descending" and
                           * "smallest" read as their opposites), the share of demonstrations
                           * that follow it instead of the rest of the mix, [0, 1] */
};
/* The demonstrator's default shares, written once: TASK_DEMO_CONFIG_DEFAULT and `oaif sft`'s
 * option rows (as text) both take them. */
#define TASK_DEMO_WRONG_SHARE   0
#define TASK_DEMO_VERBOSE_SHARE 0.5
#define TASK_DEMO_HABIT_SHARE   0.6
#define TASK_DEMO_CONFIG_DEFAULT                                                                   \
    {                                                                                              \
        .wrong_share = TASK_DEMO_WRONG_SHARE, .verbose_share = TASK_DEMO_VERBOSE_SHARE,            \
        .habit_share = TASK_DEMO_HABIT_SHARE                                                       \
    }

struct task_demo_info {
    bool wrong;   /* the stated answer differs from the reference */
    bool verbose; /* a verbose phrasing */
    bool habit;   /* the stated answer is the demonstrator's habit (then wrong too) */
};

/* Writes the `sample`-th demonstration for prompt p under `seed` into out (cap bytes;
 * TASK_RESPONSE_MAX is enough for every generated prompt, a parsed one with long operands may
 * need more) as a NUL-terminated string, and what it is into *info
 * (info may be NULL). A wrong answer is a plausible mistake for the family (off by one, a lost
 * carry, a sign error, digits swapped, the other number, two elements or letters swapped, the
 * wrong order) and stays consistent through a verbose explanation; task_check() always marks it
 * incorrect, and a right one correct. Deterministic in (seed, p->id, sample). Returns ERR_OK,
 * ERR_INVAL (NULL, a share outside [0, 1], a prompt that is not a valid built-in record) or
 * ERR_TOOBIG (cap too small). */
int task_demo(const struct task_prompt *p, const struct task_demo_config *cfg, uint64_t seed,
              uint64_t sample, char *out, size_t cap, struct task_demo_info *info);

/* A prompt/response pair as read from or written to JSONL. Strings are malloc'd, NUL-terminated
 * UTF-8; id is NULL when absent. */
struct task_pair {
    char *id;
    char *prompt;
    char *response;
};

/* n SFT pairs: pair i is prompt task_prompt_at(seed, TRAIN, i) with demonstration
 * task_demo(..., seed, i); id is the prompt id. On ERR_OK *out owns the array (release with
 * task_pairs_free). Returns ERR_OK, ERR_INVAL or ERR_NOMEM (nothing is returned on failure). */
int task_demo_pairs(uint64_t seed, size_t n, const struct task_demo_config *cfg,
                    struct task_pair **out);

/* Frees n pairs and the array; sets *pairs to NULL. Accepts pairs == NULL and *pairs == NULL. */
void task_pairs_free(struct task_pair **pairs, size_t n);

/* Writes the pairs to `path` (created or truncated), one JSON object a line:
 * {"id":"...","prompt":"...","response":"..."} ("id" left out when NULL). Returns ERR_OK,
 * ERR_INVAL (NULL arguments, a pair without prompt or response, a string that is not UTF-8) or
 * ERR_IO; on failure a message naming the file and the reason is written to err (errcap bytes;
 * err may be NULL). */
int task_jsonl_write(const char *path, const struct task_pair *pairs, size_t n, char *err,
                     size_t errcap);

/* Reads a JSONL file of pairs: one JSON object a line with string fields "prompt" and
 * "response" (both non-empty) and an optional string "id"; other fields are ignored; blank
 * lines are skipped; CRLF line ends are accepted. A line may hold at most 1 MiB. On ERR_OK *out
 * owns the pairs (task_pairs_free) and *n is their count (at least 1). Returns ERR_INVAL (bad
 * JSON, a missing or mistyped field, an empty file), ERR_TOOBIG (an over-long line), ERR_IO or
 * ERR_NOMEM; on failure nothing is returned and err receives "FILE:LINE: field \"prompt\":
 * expected a string" and the like (err may be NULL). */
int task_jsonl_read(const char *path, struct task_pair **out, size_t *n, char *err, size_t errcap);

#endif /* TASK_H */
