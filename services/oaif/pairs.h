/* pairs.h - preference data files in and out, without sockets: the readers behind `oaif import
 * pairs` and the writers behind `oaif export pairs --format trl|hh`.
 *
 * Formats (one per file; pairs_detect() on the first row, or named):
 *   hh     Anthropic HH-RLHF JSONL: {"chosen", "rejected"}, each a whole transcript of
 *          "\n\nHuman: ..." and "\n\nAssistant: ..." turns. The context is everything before the
 *          last "\n\nAssistant:" and must be the same in both; the text after it is the response.
 *   trl    TRL preference JSONL: {"prompt", "chosen", "rejected"} as strings, or as lists of
 *          {"role", "content"} messages (roles user and assistant); with message lists the prompt
 *          may be left out (TRL's implicit prompt: the shared messages before the last one).
 *   part2  the strength-annotated release of Secrets of RLHF Part II: a JSON list (or JSONL) of
 *          {"chosen", "rejected"} turn lists without role prefixes (Human first, turns alternate,
 *          the last is the Assistant's response), and when present "mean preference difference",
 *          "std preference difference", "chosen_score_list", "rejected_score_list".
 *   tldr   OpenAI's TL;DR comparisons: {"info": {"post" or "article", "title"?, "subreddit"?},
 *          "summaries": [{"text"}, {"text"}], "choice": 0 or 1}; summaries[choice] is chosen.
 * Fields a format does not use are ignored (real dumps carry many: ids, workers, batches).
 *
 * What a pair's prompt is. pairs_item.prompt is the text that fills "{prompt}" in the policy's
 * template (TOK_DEFAULT_TEMPLATE, "Human: {prompt}\n\nAssistant:"): the same thing a sampled
 * Pair's prompt is (the Prompt record's text), so the trainer, the reward scorer and the judge see
 * an imported pair as they see a sampled one. Single turn: the question alone. Multi-turn: the
 * earlier turns stay as text, "Q1\n\nAssistant: A1\n\nHuman: Q2", which the default template
 * renders back into the HH transcript. TRL message lists become that text too (the first message
 * must be the user's; "system" has no place in the template and is refused); a TRL prompt string
 * that is itself an HH transcript ("\n\nHuman: ... \n\nAssistant:") is unwrapped the same way.
 * TL;DR: "SUBREDDIT: r/S\n\nTITLE: T\n\nPOST: P\n\nTL;DR:" (CNN/DM rows: "TITLE: T\n\nARTICLE:
 * A\n\nTL;DR:"), lines with no value left out. Responses: the text after the marker that precedes
 * them ("Assistant:", "TL;DR:") loses the one space that follows it (HH, HH-wrapped TRL, TL;DR);
 * plain TRL strings, messages and Part II turns are kept as they are.
 *
 * A row is refused, with a reason (enum pairs_reason) and a message that names the field: not JSON,
 * invalid UTF-8, a missing field, a wrong type, a bad value (choice 2, a negative std, score lists
 * of different lengths), a transcript that does not end with an Assistant turn, prompts that
 * differ between chosen and rejected, an empty prompt or response, identical responses, or a
 * response (or prompt) over its size limit.
 *
 * Records (pairs_pack): a Pair (responses[0] chosen, responses[1] rejected, run = the dataset,
 * created_ms 0 so the bytes depend on the content alone), a Label (winner FIRST, prob_first 1,
 * judge "import:<format>"), and with Part II strength fields a Strength (mean, std, members = the
 * score lists' length, 0 without them, action unspecified) and with score lists a Scores record
 * (first = chosen_score_list, second = rejected_score_list, members "import:part2/m<i>"). Every
 * record's id is the pair's: "imp-" and 24 hex digits of sha256(dataset, prompt, chosen,
 * rejected), so the same row of the same dataset is the same pair on every import.
 *
 * Not here: the ledger, the command's options and messages (cmd_import.c, cmd_export.c). */
#ifndef PAIRS_H
#define PAIRS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "oaif.pb-c.h"

enum pairs_format {
    PAIRS_FORMAT_AUTO = 0, /* detect from the first row */
    PAIRS_FORMAT_HH,
    PAIRS_FORMAT_TRL,
    PAIRS_FORMAT_PART2,
    PAIRS_FORMAT_TLDR,
};

/* "auto", "hh", "trl", "part2", "tldr" (never NULL). */
const char *pairs_format_name(enum pairs_format f);

/* Why a row was refused. PAIRS_OK is 0. */
enum pairs_reason {
    PAIRS_OK = 0,
    PAIRS_BAD_JSON,       /* not JSON, not an object, a broken JSON list */
    PAIRS_BAD_UTF8,       /* bytes that are not UTF-8 */
    PAIRS_MISSING,        /* a required field is absent or null */
    PAIRS_WRONG_TYPE,     /* a field of the wrong JSON type */
    PAIRS_BAD_VALUE,      /* a value out of its range (choice, std, score lists) */
    PAIRS_BAD_TRANSCRIPT, /* no final Assistant turn, roles out of place */
    PAIRS_PROMPT_DIFFERS, /* chosen and rejected continue different contexts */
    PAIRS_EMPTY,          /* an empty prompt or response */
    PAIRS_IDENTICAL,      /* chosen and rejected are the same text */
    PAIRS_TOO_BIG,        /* a response or the prompt over its limit */
    PAIRS_N_REASONS
};

/* A short name for counts ("missing field", "identical responses"); never NULL. */
const char *pairs_reason_name(enum pairs_reason r);

/* Size limits a row must keep, in bytes. */
struct pairs_limits {
    size_t max_response_bytes; /* each of chosen and rejected */
    size_t max_prompt_bytes;
};

/* One preference pair read from a row. Strings are malloc'd, NUL-terminated, valid UTF-8. */
struct pairs_item {
    char *prompt; /* what fills "{prompt}" in the template (see above) */
    char *chosen, *rejected;
    bool has_strength; /* Part II: mean and std given, or computed from the score lists */
    double mean, std;
    size_t n_scores;         /* length of each score list; 0: none */
    double *chosen_scores;   /* n_scores, malloc'd, or NULL */
    double *rejected_scores; /* n_scores, malloc'd, or NULL */
};

/* Frees what the item holds and zeroes it. Accepts a zeroed item. */
void pairs_item_clear(struct pairs_item *it);

/* The format a row looks like, the first that fits: TL;DR with "info", "summaries" and "choice";
 * Part II with "chosen" a list of strings; TRL with "prompt", or with "chosen" a list of message
 * objects; HH with "chosen" and "rejected" strings holding "Human:" turns. PAIRS_FORMAT_AUTO when
 * none fits. */
enum pairs_format pairs_detect(const json_t *row);

/* Reads one row (a JSON object, borrowed) as format `fmt` (not AUTO). On PAIRS_OK *out holds the
 * pair (release with pairs_item_clear); otherwise *out is zeroed and msg says why, naming the
 * field ("field \"chosen\": expected a string, got number"). PAIRS_N_REASONS: out of memory. */
enum pairs_reason pairs_parse(enum pairs_format fmt, const json_t *row,
                              const struct pairs_limits *lim, struct pairs_item *out, char *msg,
                              size_t msglen);

/* What pairs_read calls for every row, good or bad: `where` is "FILE:LINE" (in a JSON list,
 * "FILE:LINE: item N", N from 1), r the verdict, msg its reason ("" for PAIRS_OK), item the pair
 * (PAIRS_OK only; the callee may take its strings, leaving NULLs, and the reader clears the rest).
 * A non-zero return stops the reading and is returned. */
typedef int (*pairs_row_fn)(void *ctx, const char *where, enum pairs_reason r, const char *msg,
                            struct pairs_item *item);

/* Reads the file at `path` ("-": stdin): JSON Lines, or one JSON list when the first character
 * that is not white space is '['. The format is *fmt, or when that is PAIRS_FORMAT_AUTO the
 * format of the first row (pairs_detect), stored back into *fmt. Calls fn on every row; a bad row
 * does not stop the reading. Returns ERR_OK; ERR_NOTFOUND when the file cannot be opened
 * ("FILE: reason" in err); ERR_INVAL when the format cannot be told from the first row
 * ("FILE:LINE: cannot tell the format: ...") or the file holds no row ("FILE: no rows"); ERR_IO;
 * ERR_NOMEM; or what fn returned. */
int pairs_read(const char *path, enum pairs_format *fmt, const struct pairs_limits *lim,
               pairs_row_fn fn, void *ctx, char *err, size_t errlen);

/* ---- records ------------------------------------------------------------------------------ */

#define PAIRS_ID_LEN      28 /* "imp-" and 24 hex digits */
#define PAIRS_MAX_RECORDS 4  /* Pair, Label, Strength, Scores */

/* The id of the pair `it` in `dataset` into out (PAIRS_ID_LEN + 1 bytes). */
void pairs_id(char *out, const char *dataset, const struct pairs_item *it);

/* One packed record; id and data malloc'd. */
struct pairs_record {
    Oaif__V1__RecordKind kind;
    char *id;
    uint8_t *data;
    size_t len;
};

/* Frees a record's id and data and zeroes it. Accepts a zeroed record. */
void pairs_record_clear(struct pairs_record *r);

/* Packs the records of pair `it` of `dataset`, read as `fmt`, into out[0 .. *n): the Pair first.
 * ERR_OK, or ERR_NOMEM (nothing left allocated, *n 0). */
int pairs_pack(const struct pairs_item *it, const char *dataset, enum pairs_format fmt,
               struct pairs_record out[PAIRS_MAX_RECORDS], size_t *n);

/* Whether `name` can name a dataset: 1 to 128 bytes of letters, digits, '.', '_' and '-'. */
bool pairs_dataset_valid(const char *name);

/* The default dataset name for a file: its last path component without ".jsonl" or ".json",
 * every other byte that pairs_dataset_valid refuses turned into '-', at most 128 bytes; "stdin"
 * for "-". Into out (outlen >= 129). */
void pairs_dataset_from_path(const char *path, char *out, size_t outlen);

/* ---- writing ------------------------------------------------------------------------------ */

/* Why a stored pair is not written. */
enum pairs_skip {
    PAIRS_WRITTEN = 0,
    PAIRS_SKIP_UNLABELED,  /* no label names it */
    PAIRS_SKIP_TIE,        /* its label is a tie (or unspecified) */
    PAIRS_SKIP_SHAPE,      /* not two responses */
    PAIRS_SKIP_UNREADABLE, /* the line would not read back as the same pair (pairs_parse) */
    PAIRS_SKIP_N
};

/* "unlabeled", "ties", ... for counts; never NULL. */
const char *pairs_skip_name(enum pairs_skip s);

/* Appends pair p, its label's winner `w` picking the chosen response, as one line of `fmt`
 * (PAIRS_FORMAT_TRL: {"prompt", "chosen", "rejected"} strings; PAIRS_FORMAT_HH: {"chosen",
 * "rejected"} transcripts) and a newline to `out`. Each line is read back with pairs_parse (no size
 * limits) before it is kept: one that would not give the same prompt and responses is not written.
 * Returns PAIRS_WRITTEN, a skip reason (out unchanged), or -1 when out of memory. */
int pairs_write(buf_t *out, enum pairs_format fmt, const Oaif__V1__Pair *p, Oaif__V1__Winner w);

#endif /* PAIRS_H */
