/* reward_scorer.h - the logic of the `score` service, without sockets: every member of one
 * reward-model ensemble scores every text of a request.
 *
 * Members. A member is a reward model (a checkpoint whose config.json has oaif_reward_head) that
 * the ledger records as a Checkpoint of kind CHECKPOINT_KIND_REWARD naming our ensemble and its
 * member index (Checkpoint.ensemble, Checkpoint.member). Each member has versions; the newest one
 * is served. reward_scorer_plan() reads the ledger's checkpoint records and says, per member,
 * which version to load: the newest that is newer than the one in memory and was not refused
 * before (so a replica that finds the newest version corrupt falls back to the one before it).
 * reward_scorer_load() checks model.safetensors against the record's sha256 (a record without one
 * is refused), reads the model and its tokenizer outside the lock, and swaps the version in under
 * the lock; a request running on the old one keeps it until it finishes. A refused version is
 * remembered with its sha256 and the reason: it is not planned again until its record changes,
 * and the version in memory keeps serving.
 *
 * Where a member's files are: the first of <checkpoint_dir>/reward-<ensemble>-m<member>-v<version,
 * 6 digits>, <checkpoint_dir>/<the last part of the record's path> (a store mounted elsewhere)
 * and the record's path that holds model.safetensors.
 *
 * Texts. Text i of a request is scored as the policy sees a pair: the prompt rendered through
 * the template (the configured one, else the member checkpoint's oaif_prompt_template, else
 * TOK_DEFAULT_TEMPLATE) and encoded with BOS when the tokenizer wants it, one space when the
 * rendered prompt does not end in whitespace and the text does not start with it (as SFT trains),
 * the text's tokens, then EOS when the tokenizer has one: the reward is read on that last token
 * (ALGORITHMS.md). A text longer than min(max_tokens_per_text, the member's context) has its
 * response tokens cut so that the EOS still ends it (counted in `truncated`); a prompt that leaves
 * no room for one response token is a bad request. All texts of a request go through one forward
 * per member (B = the texts, no logits).
 *
 * Replies. ScoreReply.members names the members "<ensemble>/m<member>@v<version>" in member
 * order; scores are member-major (scores[m * texts + i]). A request with a pair_id and two texts
 * also yields a Scores record (kind SCORES, id = the pair id: the pair's latest scores), to be
 * committed with the reply.
 *
 * Which members answer: with `members` = M > 0, members 0 .. M-1, and a request fails (retryable)
 * until all M are loaded; with M = 0, every member loaded (at least one).
 *
 * Thread-safety: reward_scorer_load, reward_scorer_plan and the queries may be called from any
 * thread; reward_scorer_run from one thread at a time (a model's activations).
 *
 * Not here: sockets, the ledger, events (reward_scorer_service.h), options
 * (reward_scorer_opts.h). */
#ifndef REWARD_SCORER_H
#define REWARD_SCORER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "busopts.h"
#include "oaif.pb-c.h"

typedef struct reward_scorer reward_scorer_t;

/* Bounds shared by the option table and the checks. */
#define REWARD_SCORER_MEMBERS_MAX 1024 /* member indices 0 .. MAX-1 */

/* The reward scorer's whole configuration, one struct: the option table (reward_scorer_opts.c)
 * fills it and holds every default. The logic (reward_scorer_new) reads the fields down to
 * max_tokens and copies what it keeps; the service (reward_scorer_service.h) reads the rest. */
struct reward_scorer_config {
    char *ensemble;        /* Checkpoint.ensemble of the members */
    int members;           /* M expected (members 0 .. M-1); 0: every member the ledger has */
    char *checkpoint_dir;  /* the checkpoint store's root */
    char *prompt_template; /* with "{prompt}" once; NULL or "": each checkpoint's, else default */
    int max_texts;         /* texts per request */
    int max_tokens;        /* tokens per text (prompt, text and EOS) */
    /* the service */
    int threads;       /* OpenMP threads of the engine; 0: OMP_NUM_THREADS or every core */
    int64_t rescan_ms; /* read the ledger's checkpoints this often even without an event */
    int credit;        /* requests taken at once (scored one after another) */
    char *worker_name; /* NULL or "": host:pid */
    char *metrics_bind;
    int metrics_port; /* 0: any free one, -1: no HTTP server */
    struct bus_opts bus;
};

/* Check the configuration and create a scorer with no member loaded. The strings are copied:
 * nothing of cfg is borrowed after the call. ERR_INVAL with `why` naming the field, ERR_NOMEM. */
int reward_scorer_new(reward_scorer_t **out, const struct reward_scorer_config *cfg, char *why,
                      size_t whylen);
/* Frees every member. Sets *s to NULL; accepts NULL. No call may be running. */
void reward_scorer_destroy(reward_scorer_t **s);

/* One member version as the ledger records it, and where its files are. */
struct reward_member_ref {
    uint32_t member, version;
    char sha256[65]; /* lower- or upper-case hex; "" when the record has none */
    char dir[PATH_MAX];
};

/* Whether checkpoint record `c` is a member of the configured ensemble (kind REWARD, the
 * ensemble's name, a member index below M when M is set, else below REWARD_SCORER_MEMBERS_MAX). */
bool reward_scorer_is_member(const reward_scorer_t *s, const Oaif__V1__Checkpoint *c);

/* The directory of member record `c` (see the header comment) into out; when none holds
 * model.safetensors, the store's own name for it (the load then says what is missing). */
void reward_scorer_member_dir(const reward_scorer_t *s, const Oaif__V1__Checkpoint *c, char *out,
                              size_t outlen);

/* From checkpoint records of any kind and in any order (NULL entries skipped), what to load: per
 * member, the newest version newer than the one in memory whose (version, sha256) was not
 * refused. Writes up to cap refs, in member order, to out; returns how many there are (more than
 * cap: the rest were left out). Also remembers which members the ledger has
 * (reward_scorer_known). */
size_t reward_scorer_plan(reward_scorer_t *s, Oaif__V1__Checkpoint *const *cks, size_t n,
                          struct reward_member_ref *out, size_t cap);

/* Load member version `ref` and swap it in. Already loaded (or an older version than the one in
 * memory): ERR_OK at once. ERR_INVAL (no sha256 in the record, a sha256 mismatch, a config
 * without a reward head, a tokenizer that does not fit), ERR_NOTFOUND (no such file), ERR_PROTO
 * (a corrupt file), ERR_IO, ERR_NOMEM; `why` names the member, the version, the file and the
 * reason, and the refusal is remembered (not for ERR_NOMEM). */
int reward_scorer_load(reward_scorer_t *s, const struct reward_member_ref *ref, char *why,
                       size_t whylen);

/* The version of `member` in memory, or -1. */
int64_t reward_scorer_member_version(reward_scorer_t *s, uint32_t member);
/* Members in memory. */
size_t reward_scorer_loaded(reward_scorer_t *s);
/* Members the last reward_scorer_plan() saw in the ledger. */
size_t reward_scorer_known(reward_scorer_t *s);
/* Whether a request would be answered now; if not, why says so ("ensemble 'e': ..."). */
bool reward_scorer_ready(reward_scorer_t *s, char *why, size_t whylen);

/* The answer to one request. The reply and the record borrow from the request (the pair id):
 * free the result before the request. */
struct reward_scorer_result {
    size_t n_members, n_texts;
    char **members;  /* [n_members] "<ensemble>/m<member>@v<version>" */
    double *scores;  /* [n_members * n_texts], member-major */
    uint8_t *packed; /* the ScoreReply, packed */
    size_t packed_len;
    Oaif__V1__Record **records; /* n_records (0 or 1): the Scores record, kind SCORES */
    size_t n_records;
    /* With reward_scorer_keep_features: member k's final hidden state (after the last norm) of
     * each text's last token, the EOS the reward is read on: features[k][i * feature_dims[k] +
     * c]. Else NULL. */
    float **features;
    size_t *feature_dims;
    uint64_t tokens;    /* tokens scored, over all members */
    unsigned truncated; /* texts cut to fit (per member) */
    double seconds;     /* the forwards */
    /* storage behind the fields above */
    Oaif__V1__Record rec;
    Oaif__V1__Record *rec_ptr;
};

/* Answer `req`. On ERR_OK *out is the result (reward_scorer_result_free). Errors, with `why`
 * naming the field or the member and the reason:
 *   ERR_INVAL  a bad request (no texts, too many, a prompt that leaves no room); retrying cannot
 *              help
 *   ERR_AGAIN  no member loaded, or fewer than the M expected (the reason names what is missing),
 *              or a member gave a non-finite reward
 *   ERR_NOMEM */
int reward_scorer_run(reward_scorer_t *s, const Oaif__V1__ScoreRequest *req,
                      struct reward_scorer_result **out, char *why, size_t whylen);
/* Sets *r to NULL; accepts NULL. */
void reward_scorer_result_free(struct reward_scorer_result **r);

/* Whether the results of later runs carry each member's features (the result's `features`): off
 * unless set, the service never reads them (`oaif rm features` does). Call before the runs. */
void reward_scorer_keep_features(reward_scorer_t *s, bool on);

/* Whether an error code of reward_scorer_run means retrying cannot help. */
bool reward_scorer_error_permanent(int rc);

#endif /* REWARD_SCORER_H */
