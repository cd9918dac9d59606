/* rules.c - the simulated annotator. See rules.h for the rules. */
#include "rules.h"

#include <string.h>

#include "err.h"

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then mixed */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return mix64(h);
}

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool in_list(const char *w, size_t n, const char *const *list)
{
    for (; *list; list++)
        if (strlen(*list) == n && memcmp(*list, w, n) == 0)
            return true;
    return false;
}

int rules_instruction_parse(const char *instruction, enum rules_pref *out)
{
    static const char *const shorter[] = {"short",   "shorter", "shortest", "concise", "brief",
                                          "briefer", "terse",   "succinct", "brevity", NULL};
    static const char *const longer[] = {"long",    "longer",   "longest",   "detailed",
                                         "verbose", "thorough", "elaborate", NULL};
    if (!out)
        return ERR_INVAL;
    bool any = false, want_short = false, want_long = false;
    for (const char *p = instruction ? instruction : ""; *p;) {
        if (!is_space((unsigned char)*p))
            any = true;
        if (!is_alpha((unsigned char)*p)) {
            p++;
            continue;
        }
        char w[16];
        size_t n = 0;
        for (; is_alpha((unsigned char)*p); p++)
            if (n < sizeof(w))
                w[n++] = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
        if (n == sizeof(w))
            continue; /* longer than any keyword */
        want_short = want_short || in_list(w, n, shorter);
        want_long = want_long || in_list(w, n, longer);
    }
    if (!any) {
        *out = RULES_PREFER_NONE;
        return ERR_OK;
    }
    if (want_short == want_long)
        return ERR_INVAL;
    *out = want_short ? RULES_PREFER_SHORTER : RULES_PREFER_LONGER;
    return ERR_OK;
}

const char *rules_pref_name(enum rules_pref pref)
{
    switch (pref) {
    case RULES_PREFER_SHORTER:
        return "shorter";
    case RULES_PREFER_LONGER:
        return "longer";
    default:
        return "none";
    }
}

int rules_config_check(const struct rules_config *cfg)
{
    if (!cfg || !(cfg->p_noise >= 0 && cfg->p_noise <= 1))
        return ERR_INVAL;
    return ERR_OK;
}

static size_t trimmed_len(const char *s, size_t len)
{
    size_t b = 0, e = len;
    while (b < e && is_space((unsigned char)s[b]))
        b++;
    while (e > b && is_space((unsigned char)s[e - 1]))
        e--;
    return e - b;
}

/* The noise draw of a pair: uniform in [0, 1) from (seed, pair id) alone. */
static double noise_draw(uint64_t seed, const char *pair_id)
{
    uint64_t x = mix64(seed ^ mix64(hash_str(pair_id) ^ 0x6e6f697365ull));
    return (double)(x >> 11) * 0x1.0p-53;
}

/* The verdict from two checks, before noise. */
static void decide(const struct task_check *c1, const struct task_check *c2, enum rules_pref pref,
                   struct rules_verdict *v)
{
    v->first_correct = c1->correct;
    v->second_correct = c2->correct;
    if (c1->correct != c2->correct) {
        v->winner = c1->correct ? RULES_FIRST : RULES_SECOND;
        v->reason = RULES_BY_CORRECTNESS;
    } else if (pref != RULES_PREFER_NONE && v->first_len != v->second_len) {
        bool first_shorter = v->first_len < v->second_len;
        v->winner = (first_shorter == (pref == RULES_PREFER_SHORTER)) ? RULES_FIRST : RULES_SECOND;
        v->reason = RULES_BY_LENGTH;
    } else {
        v->winner = RULES_TIE;
        v->reason = RULES_BY_TIE;
    }
}

static int judge_kind(const struct rules_config *cfg, enum task_kind kind, const char *reference,
                      enum rules_pref pref, const char *pair_id, const char *first,
                      size_t first_len, const char *second, size_t second_len,
                      struct rules_verdict *out)
{
    struct task_check c1, c2;
    if (!out || rules_config_check(cfg) || (!first && first_len) || (!second && second_len))
        return ERR_INVAL;
    if (pref != RULES_PREFER_NONE && pref != RULES_PREFER_SHORTER && pref != RULES_PREFER_LONGER)
        return ERR_INVAL;
    if (cfg->p_noise > 0 && (!pair_id || !pair_id[0]))
        return ERR_INVAL;
    int rc = task_check_answer(kind, reference, first, first_len, &c1);
    if (!rc)
        rc = task_check_answer(kind, reference, second, second_len, &c2);
    if (rc)
        return rc;
    memset(out, 0, sizeof(*out));
    out->first_len = first ? trimmed_len(first, first_len) : 0;
    out->second_len = second ? trimmed_len(second, second_len) : 0;
    decide(&c1, &c2, pref, out);
    /* Drawn for every pair, tie or not, so that whether a pair is flipped never depends on
     * the responses' content or order: only on (seed, pair id). */
    if (cfg->p_noise > 0 && noise_draw(cfg->seed, pair_id) < cfg->p_noise &&
        out->winner != RULES_TIE) {
        out->winner = out->winner == RULES_FIRST ? RULES_SECOND : RULES_FIRST;
        out->flipped = true;
    }
    out->p_first = out->winner == RULES_FIRST ? 1.0 : out->winner == RULES_SECOND ? 0.0 : 0.5;
    return ERR_OK;
}

int rules_judge(const struct rules_config *cfg, const struct task_prompt *p, enum rules_pref pref,
                const char *pair_id, const char *first, size_t first_len, const char *second,
                size_t second_len, struct rules_verdict *out)
{
    if (!p || (int)p->family < 0 || p->family >= TASK_FAMILY_COUNT ||
        memchr(p->answer, '\0', sizeof(p->answer)) == NULL)
        return ERR_INVAL;
    return judge_kind(cfg, task_family_kind(p->family), p->answer, pref, pair_id, first, first_len,
                      second, second_len, out);
}

int rules_judge_text(const struct rules_config *cfg, const char *prompt_text, const char *reference,
                     const char *instruction, const char *pair_id, const char *first,
                     size_t first_len, const char *second, size_t second_len,
                     struct rules_verdict *out)
{
    enum rules_pref pref;
    struct task_prompt p;
    enum task_kind kind;
    if (!prompt_text)
        return ERR_INVAL;
    int rc = rules_instruction_parse(instruction, &pref);
    if (rc)
        return rc;
    int parsed = task_prompt_parse(prompt_text, &p);
    if (!reference || !reference[0]) {
        if (parsed)
            return parsed;
        return rules_judge(cfg, &p, pref, pair_id, first, first_len, second, second_len, out);
    }
    if (parsed == ERR_OK)
        kind = task_family_kind(p.family);
    else if (task_kind_of_answer(reference, &kind))
        return ERR_INVAL;
    return judge_kind(cfg, kind, reference, pref, pair_id, first, first_len, second, second_len,
                      out);
}
