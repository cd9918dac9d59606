/* task.c - the built-in task: generator, prompt parser, answer checker, SFT demonstrations,
 * JSONL pairs. See task.h for the rules; comments here say why. */
#include "task.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define WORD_MAX       32 /* longest word a prompt may hold, with its NUL */
#define NUM_DIGITS     9  /* longest operand a prompt may hold */
#define WORD_GEN_MAX   6  /* longest word the generator picks (prompts may hold longer) */
#define JSONL_LINE_MAX (1u << 20)

/* ---------------------------------------------------------------- hashing and randomness */

/* splitmix64's finalizer: a bijective 64-bit mix. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t hash_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then mixed: FNV alone has weak low bits */
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return mix64(h);
}

static uint64_t hash4(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    return mix64(a ^ mix64(b ^ mix64(c ^ mix64(d))));
}

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    r->s += 0x9e3779b97f4a7c15ull;
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. The modulo bias (< 2^-50 here) does not matter; determinism does. */
static long long rng_range(struct rng *r, long long lo, long long hi)
{
    return lo + (long long)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* Uniform in [0, 1), from the top 53 bits: the same on every IEEE-754 machine. */
static double rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---------------------------------------------------------------- small text helpers */

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int to_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* Appends s to out (cap bytes, NUL-terminated); false if it does not fit. */
static bool append(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (*len + n + 1 > cap)
        return false;
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = '\0';
    return true;
}

static void format_list(char *out, size_t cap, const long long *v, int n, const char *sep)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        char num[24];
        int k = snprintf(num, sizeof(num), "%lld", v[i]);
        if ((i && !append(out, cap, &len, sep, strlen(sep))) ||
            !append(out, cap, &len, num, (size_t)k))
            return; /* callers size out for the longest list */
    }
}

/* Fills a pattern: "{x}" is replaced by vars[x]; every other byte is copied. Returns false if
 * the result does not fit in cap bytes or names an unset variable. */
static bool fill(char *out, size_t cap, const char *pat, const char *const vars[128])
{
    size_t len = 0;
    out[0] = '\0';
    for (const char *p = pat; *p;) {
        if (p[0] == '{' && p[1] && p[2] == '}') {
            const char *v = vars[(unsigned char)p[1] & 127];
            if (!v || !append(out, cap, &len, v, strlen(v)))
                return false;
            p += 3;
        } else {
            if (!append(out, cap, &len, p, 1))
                return false;
            p++;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- families and phrasings */

static const char *const family_names[TASK_FAMILY_COUNT] = {
    "add", "sub", "compare", "count", "sort", "reverse", "maxmin",
};

const char *task_family_name(enum task_family family)
{
    if ((int)family < 0 || family >= TASK_FAMILY_COUNT)
        return "?";
    return family_names[family];
}

int task_family_parse(const char *name, enum task_family *out)
{
    if (!name || !out)
        return ERR_INVAL;
    for (int f = 0; f < TASK_FAMILY_COUNT; f++) {
        if (strcmp(name, family_names[f]) == 0) {
            *out = (enum task_family)f;
            return ERR_OK;
        }
    }
    return ERR_INVAL;
}

const char *task_split_name(enum task_split split)
{
    switch (split) {
    case TASK_SPLIT_TRAIN:
        return "train";
    case TASK_SPLIT_EVAL:
        return "eval";
    default:
        return "unknown";
    }
}

enum task_kind task_family_kind(enum task_family family)
{
    switch (family) {
    case TASK_SORT:
        return TASK_KIND_LIST;
    case TASK_REVERSE:
        return TASK_KIND_WORD;
    default:
        return TASK_KIND_NUMBER;
    }
}

/* A problem: what a prompt asks, without its phrasing. variant: compare 0 larger / 1 smaller;
 * sort 0 ascending / 1 descending; maxmin 0 largest / 1 smallest; else 0. */
struct problem {
    enum task_family fam;
    int variant;
    long long a, b;
    char letter;
    char word[WORD_MAX];
    long long list[TASK_LIST_MAX];
    int n;
};

/* The question of a problem: its family and direction (the directed families' second question
 * follows their first in enum task_question). */
static enum task_question problem_question(const struct problem *pr)
{
    static const enum task_question first[TASK_FAMILY_COUNT] = {
        [TASK_ADD] = TASK_Q_ADD,
        [TASK_SUB] = TASK_Q_SUB,
        [TASK_COMPARE] = TASK_Q_COMPARE_LARGER,
        [TASK_COUNT] = TASK_Q_COUNT,
        [TASK_SORT] = TASK_Q_SORT_ASCENDING,
        [TASK_REVERSE] = TASK_Q_REVERSE,
        [TASK_MAXMIN] = TASK_Q_MAXMIN_LARGEST};
    return (enum task_question)(first[pr->fam] + (pr->variant ? 1 : 0));
}

/* Placeholders: {a} {b} numbers, {c} one letter, {w} a word, {l} numbers joined by ", ",
 * {s} numbers joined by " ". Every pattern starts with a literal word, so the parser can look
 * for a prompt at any word boundary of a longer text. */
struct phrasing {
    enum task_family fam;
    int variant;
    const char *pat;
};

static const struct phrasing phrasings[] = {
    {TASK_ADD, 0, "What is {a} + {b}?"},
    {TASK_ADD, 0, "Add {a} and {b}."},
    {TASK_ADD, 0, "Compute {a} plus {b}."},
    {TASK_ADD, 0, "What is the sum of {a} and {b}?"},
    {TASK_SUB, 0, "What is {a} - {b}?"},
    {TASK_SUB, 0, "Subtract {b} from {a}."},
    {TASK_SUB, 0, "Compute {a} minus {b}."},
    {TASK_SUB, 0, "What is {a} minus {b}?"},
    {TASK_COMPARE, 0, "Which is larger, {a} or {b}?"},
    {TASK_COMPARE, 0, "Which number is bigger: {a} or {b}?"},
    {TASK_COMPARE, 0, "Which is greater, {a} or {b}?"},
    {TASK_COMPARE, 1, "Which is smaller, {a} or {b}?"},
    {TASK_COMPARE, 1, "Which number is less: {a} or {b}?"},
    {TASK_COMPARE, 1, "Which is lower, {a} or {b}?"},
    {TASK_COUNT, 0, "How many times does the letter {c} appear in {w}?"},
    {TASK_COUNT, 0, "Count the letter '{c}' in the word '{w}'."},
    {TASK_COUNT, 0, "How many {c}'s are in {w}?"},
    {TASK_SORT, 0, "Sort in ascending order: {l}."},
    {TASK_SORT, 0, "Put these numbers in increasing order: {s}"},
    {TASK_SORT, 0, "Sort from smallest to largest: {l}"},
    {TASK_SORT, 1, "Sort in descending order: {l}."},
    {TASK_SORT, 1, "Put these numbers in decreasing order: {s}"},
    {TASK_SORT, 1, "Sort from largest to smallest: {l}"},
    {TASK_REVERSE, 0, "Reverse the word {w}."},
    {TASK_REVERSE, 0, "Spell '{w}' backwards."},
    {TASK_REVERSE, 0, "Write {w} in reverse order."},
    {TASK_REVERSE, 0, "What is {w} spelled backwards?"},
    {TASK_MAXMIN, 0, "What is the largest of {l}?"},
    {TASK_MAXMIN, 0, "Find the maximum of {l}."},
    {TASK_MAXMIN, 0, "Which is the biggest number: {s}?"},
    {TASK_MAXMIN, 1, "What is the smallest of {l}?"},
    {TASK_MAXMIN, 1, "Find the minimum of {l}."},
    {TASK_MAXMIN, 1, "Which is the least number: {s}?"},
};
#define N_PHRASINGS (sizeof(phrasings) / sizeof(phrasings[0]))

/* Real words (3-10 letters; the generator picks those of at most WORD_GEN_MAX) for count and
 * reverse; half the words are made up instead (see pick_word), so that reversing and counting
 * cannot be learned by heart. */
static const char *const words[] = {
    "apple",   "banana",  "cherry",     "grape",   "lemon",   "mango",   "melon",  "peach",
    "plum",    "berry",   "orange",     "tomato",  "potato",  "carrot",  "onion",  "pepper",
    "garlic",  "bread",   "butter",     "cheese",  "pizza",   "pasta",   "salad",  "soup",
    "honey",   "sugar",   "coffee",     "water",   "river",   "ocean",   "island", "forest",
    "desert",  "valley",  "canyon",     "meadow",  "garden",  "flower",  "tulip",  "daisy",
    "maple",   "willow",  "cactus",     "planet",  "comet",   "rocket",  "galaxy", "moon",
    "star",    "cloud",   "storm",      "thunder", "rain",    "snow",    "winter", "summer",
    "spring",  "autumn",  "morning",    "evening", "sunset",  "shadow",  "mirror", "window",
    "door",    "table",   "chair",      "sofa",    "lamp",    "candle",  "basket", "bottle",
    "bucket",  "hammer",  "ladder",     "pencil",  "paper",   "letter",  "stamp",  "ticket",
    "wallet",  "pocket",  "jacket",     "button",  "zipper",  "glove",   "scarf",  "boots",
    "sandal",  "castle",  "tower",      "bridge",  "tunnel",  "street",  "market", "school",
    "office",  "museum",  "harbor",     "kitten",  "puppy",   "rabbit",  "turtle", "parrot",
    "donkey",  "monkey",  "tiger",      "zebra",   "camel",   "horse",   "sheep",  "goat",
    "llama",   "panda",   "koala",      "otter",   "beaver",  "falcon",  "eagle",  "robin",
    "sparrow", "dolphin", "whale",      "shark",   "salmon",  "lobster", "spider", "beetle",
    "bee",     "ant",     "cat",        "dog",     "cow",     "pig",     "fox",    "owl",
    "bat",     "yak",     "hen",        "emu",     "elk",     "gnu",     "doctor", "farmer",
    "pilot",   "sailor",  "singer",     "dancer",  "artist",  "writer",  "guitar", "piano",
    "violin",  "drum",    "trumpet",    "flute",   "music",   "poem",    "story",  "novel",
    "puzzle",  "riddle",  "marble",     "pebble",  "crystal", "silver",  "copper", "iron",
    "velvet",  "cotton",  "linen",      "purple",  "yellow",  "green",   "violet", "indigo",
    "scarlet", "crimson", "strawberry",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))

static void pick_word(struct rng *r, char out[WORD_MAX])
{
    if (rng_range(r, 0, 1) == 0) {
        const char *w;
        do /* real words of at most WORD_GEN_MAX letters (168 of 179) */
            w = words[rng_range(r, 0, (long long)N_WORDS - 1)];
        while (strlen(w) > WORD_GEN_MAX);
        snprintf(out, WORD_MAX, "%s", w);
        return;
    }
    /* A made-up word of 2 consonant-vowel syllables, maybe closed by a consonant: 4-5
     * letters, pronounceable, and all but never a real word. */
    static const char cons[] = "bcdfghklmnprstvz";
    static const char vow[] = "aeiou";
    int syl = 2, len = 0;
    for (int i = 0; i < syl; i++) {
        out[len++] = cons[rng_range(r, 0, (long long)sizeof(cons) - 2)];
        out[len++] = vow[rng_range(r, 0, (long long)sizeof(vow) - 2)];
    }
    if (rng_range(r, 0, 1))
        out[len++] = cons[rng_range(r, 0, (long long)sizeof(cons) - 2)];
    out[len] = '\0';
}

/* Distinct values in [lo, hi], n of them (hi - lo + 1 >= n). */
static void pick_distinct(struct rng *r, long long *v, int n, long long lo, long long hi)
{
    for (int i = 0; i < n; i++) {
        bool dup;
        do {
            v[i] = rng_range(r, lo, hi);
            dup = false;
            for (int j = 0; j < i; j++)
                dup = dup || v[j] == v[i];
        } while (dup);
    }
}

static void draw_problem(struct rng *r, enum task_family fam, struct problem *pr)
{
    memset(pr, 0, sizeof(*pr));
    pr->fam = fam;
    switch (fam) {
    case TASK_ADD:
    case TASK_SUB:
        /* A two-digit and a one-digit operand (in either order for a sum; the two-digit one first
         * for a difference, which is never negative): a sum carries and a difference borrows 45%
         * of the time. Small enough that the built-in policy learns the families in minutes. */
        pr->a = rng_range(r, 10, 99);
        pr->b = rng_range(r, 0, 9);
        if (fam == TASK_ADD && rng_range(r, 0, 1)) {
            long long t = pr->a;
            pr->a = pr->b;
            pr->b = t;
        }
        break;
    case TASK_COMPARE:
        pr->variant = (int)rng_range(r, 0, 1);
        pr->a = rng_range(r, 10, 99);
        if (rng_range(r, 0, 1)) { /* a close call half the time: 47 or 43 */
            pr->b = pr->a + (rng_range(r, 0, 1) ? 1 : -1) * rng_range(r, 1, 9);
            if (pr->b < 10 || pr->b > 99)
                pr->b = pr->a + (pr->a < 50 ? 10 : -10);
        } else {
            do
                pr->b = rng_range(r, 10, 99);
            while (pr->b == pr->a);
        }
        break;
    case TASK_COUNT:
        pick_word(r, pr->word);
        if (rng_range(r, 0, 3)) /* mostly a letter of the word; a quarter any letter (maybe 0) */
            pr->letter = pr->word[rng_range(r, 0, (long long)strlen(pr->word) - 1)];
        else
            pr->letter = (char)('a' + rng_range(r, 0, 25));
        break;
    case TASK_REVERSE:
        pick_word(r, pr->word);
        break;
    case TASK_SORT: /* three digits to order, three or four to pick from */
    case TASK_MAXMIN:
        pr->variant = (int)rng_range(r, 0, 1);
        pr->n = fam == TASK_SORT ? 3 : (int)rng_range(r, 3, 4);
        pick_distinct(r, pr->list, pr->n, 0, 9);
        break;
    default:
        break;
    }
}

static int cmp_asc(const void *x, const void *y)
{
    long long a = *(const long long *)x, b = *(const long long *)y;
    return (a > b) - (a < b);
}

/* The sorted list a sort problem asks for (v holds pr->n values). */
static void sorted_list(const struct problem *pr, long long *v)
{
    memcpy(v, pr->list, sizeof(long long) * (size_t)pr->n);
    qsort(v, (size_t)pr->n, sizeof(long long), cmp_asc);
    if (pr->variant)
        for (int i = 0, j = pr->n - 1; i < j; i++, j--) {
            long long t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
}

static long long count_letter(const char *word, char letter)
{
    long long k = 0;
    for (const char *p = word; *p; p++)
        k += to_lower(*p) == to_lower(letter);
    return k;
}

static long long extreme(const struct problem *pr)
{
    long long e = pr->list[0];
    for (int i = 1; i < pr->n; i++)
        if (pr->variant ? pr->list[i] < e : pr->list[i] > e)
            e = pr->list[i];
    return e;
}

/* The canonical reference answer. Returns false if it does not fit in cap bytes. */
static bool solve(const struct problem *pr, char *out, size_t cap)
{
    long long v[TASK_LIST_MAX];
    int k = 0;
    switch (pr->fam) {
    case TASK_ADD:
        k = snprintf(out, cap, "%lld", pr->a + pr->b);
        break;
    case TASK_SUB:
        k = snprintf(out, cap, "%lld", pr->a - pr->b);
        break;
    case TASK_COMPARE:
        k = snprintf(out, cap, "%lld",
                     pr->variant ? (pr->a < pr->b ? pr->a : pr->b)
                                 : (pr->a > pr->b ? pr->a : pr->b));
        break;
    case TASK_COUNT:
        k = snprintf(out, cap, "%lld", count_letter(pr->word, pr->letter));
        break;
    case TASK_SORT:
        sorted_list(pr, v);
        format_list(out, cap, v, pr->n, ", ");
        k = (int)strlen(out);
        break;
    case TASK_REVERSE: {
        size_t n = strlen(pr->word);
        if (n + 1 > cap)
            return false;
        for (size_t i = 0; i < n; i++)
            out[i] = pr->word[n - 1 - i];
        out[n] = '\0';
        k = (int)n;
        break;
    }
    case TASK_MAXMIN:
        k = snprintf(out, cap, "%lld", extreme(pr));
        break;
    default:
        return false;
    }
    return k > 0 && (size_t)k < cap;
}

static uint64_t problem_hash(const struct problem *pr)
{
    char key[256];
    char list[200];
    format_list(list, sizeof(list), pr->list, pr->n, ",");
    int k = snprintf(key, sizeof(key), "%d|%d|%lld|%lld|%d|%s|%s", (int)pr->fam, pr->variant, pr->a,
                     pr->b, (int)(unsigned char)pr->letter, pr->word, list);
    return hash_bytes(key, (size_t)k < sizeof(key) ? (size_t)k : sizeof(key) - 1);
}

enum task_split task_split_of(uint64_t seed, uint64_t problem)
{
    return hash4(seed, problem, 0x5b11u, 0) % 1000 < TASK_EVAL_PERMILLE ? TASK_SPLIT_EVAL
                                                                        : TASK_SPLIT_TRAIN;
}

/* Renders a problem with a phrasing into a prompt record (split left to the caller). */
static bool render(const struct problem *pr, const struct phrasing *ph, struct task_prompt *out)
{
    char a[24], b[24], c[2] = {pr->letter, '\0'}, l[160], s[160];
    const char *vars[128] = {0};
    snprintf(a, sizeof(a), "%lld", pr->a);
    snprintf(b, sizeof(b), "%lld", pr->b);
    format_list(l, sizeof(l), pr->list, pr->n, ", ");
    format_list(s, sizeof(s), pr->list, pr->n, " ");
    vars['a'] = a;
    vars['b'] = b;
    vars['c'] = c;
    vars['w'] = pr->word;
    vars['l'] = l;
    vars['s'] = s;
    memset(out, 0, sizeof(*out));
    if (!fill(out->text, sizeof(out->text), ph->pat, vars) ||
        !solve(pr, out->answer, sizeof(out->answer)))
        return false;
    out->family = pr->fam;
    out->split = TASK_SPLIT_UNKNOWN;
    out->problem = problem_hash(pr);
    snprintf(out->id, sizeof(out->id), "%s-%016llx", family_names[pr->fam],
             (unsigned long long)hash_bytes(out->text, strlen(out->text)));
    return true;
}

/* ---------------------------------------------------------------- generation */

int task_prompt_at(uint64_t seed, enum task_split split, uint64_t index, struct task_prompt *out)
{
    if (!out || (split != TASK_SPLIT_TRAIN && split != TASK_SPLIT_EVAL))
        return ERR_INVAL;
    enum task_family fam = (enum task_family)(index % TASK_FAMILY_COUNT);
    /* Rejection: draw problems until one falls in the split (1.25 draws for train, 5 for eval
     * on average). 4096 misses in a row would take a broken hash, not bad luck. */
    for (uint64_t attempt = 0; attempt < 4096; attempt++) {
        struct rng r = {hash4(seed, (uint64_t)split + 0x7a51u, index, attempt)};
        struct problem pr;
        draw_problem(&r, fam, &pr);
        if (task_split_of(seed, problem_hash(&pr)) != split)
            continue;
        const struct phrasing *cand[8];
        int nc = 0;
        for (size_t i = 0; i < N_PHRASINGS && nc < 8; i++)
            if (phrasings[i].fam == fam && phrasings[i].variant == pr.variant)
                cand[nc++] = &phrasings[i];
        if (nc == 0 || !render(&pr, cand[rng_range(&r, 0, nc - 1)], out))
            return ERR_INVAL; /* our own tables are wrong: the tests catch it */
        out->split = split;
        return ERR_OK;
    }
    return ERR_NOTFOUND;
}

int task_prompt_set(uint64_t seed, enum task_split split, size_t n, struct task_prompt **out)
{
    if (!out || (split != TASK_SPLIT_TRAIN && split != TASK_SPLIT_EVAL))
        return ERR_INVAL;
    *out = NULL;
    if (n == 0)
        return ERR_OK;
    if (n > ((size_t)1 << 24))
        return ERR_TOOBIG;
    size_t slots = 16;
    while (slots < 2 * n)
        slots <<= 1;
    uint64_t *seen = calloc(slots, sizeof(*seen)); /* open addressing on the problem hash */
    bool *used = calloc(slots, sizeof(*used));
    struct task_prompt *set = malloc(n * sizeof(*set));
    if (!seen || !used || !set) {
        free(seen);
        free(used);
        free(set);
        return ERR_NOMEM;
    }
    int rc = ERR_OK;
    size_t got = 0;
    uint64_t limit = 64 * (uint64_t)n + 4096;
    for (uint64_t i = 0; got < n && rc == ERR_OK; i++) {
        if (i >= limit) {
            rc = ERR_TOOBIG;
            break;
        }
        rc = task_prompt_at(seed, split, i, &set[got]);
        if (rc)
            break;
        uint64_t h = set[got].problem;
        size_t k = (size_t)h & (slots - 1);
        while (used[k] && seen[k] != h)
            k = (k + 1) & (slots - 1);
        if (used[k])
            continue; /* a problem already in the set */
        used[k] = true;
        seen[k] = h;
        got++;
    }
    free(seen);
    free(used);
    if (rc) {
        free(set);
        return rc;
    }
    *out = set;
    return ERR_OK;
}

/* ---------------------------------------------------------------- parsing prompts */

/* Reads 1..NUM_DIGITS digits at s[*i] (end e). */
static bool match_int(const char *s, size_t e, size_t *i, long long *v)
{
    size_t j = *i;
    long long x = 0;
    while (j < e && is_digit((unsigned char)s[j]) && j - *i < NUM_DIGITS + 1)
        x = x * 10 + (s[j++] - '0');
    if (j == *i || j - *i > NUM_DIGITS || (j < e && is_digit((unsigned char)s[j])))
        return false;
    *v = x;
    *i = j;
    return true;
}

static bool match_list(const char *s, size_t e, size_t *i, const char *sep, struct problem *pr)
{
    size_t seplen = strlen(sep);
    pr->n = 0;
    for (;;) {
        if (pr->n == TASK_LIST_MAX || !match_int(s, e, i, &pr->list[pr->n]))
            return false;
        pr->n++;
        if (*i + seplen < e && memcmp(s + *i, sep, seplen) == 0 &&
            is_digit((unsigned char)s[*i + seplen]))
            *i += seplen;
        else
            break;
    }
    return pr->n >= 2;
}

/* Matches phrasing ph against s[start, e); on success *end is where the match stopped. */
static bool match_phrasing(const struct phrasing *ph, const char *s, size_t start, size_t e,
                           size_t *end, struct problem *pr)
{
    size_t i = start;
    memset(pr, 0, sizeof(*pr));
    pr->fam = ph->fam;
    pr->variant = ph->variant;
    for (const char *p = ph->pat; *p;) {
        if (p[0] == '{' && p[1] && p[2] == '}') {
            bool ok = true;
            switch (p[1]) {
            case 'a':
                ok = match_int(s, e, &i, &pr->a);
                break;
            case 'b':
                ok = match_int(s, e, &i, &pr->b);
                break;
            case 'c':
                ok = i < e && is_alpha((unsigned char)s[i]) &&
                     (i + 1 == e || !is_alpha((unsigned char)s[i + 1]));
                if (ok)
                    pr->letter = s[i++];
                break;
            case 'w': {
                size_t j = i;
                while (j < e && is_alpha((unsigned char)s[j]) && j - i < WORD_MAX)
                    j++;
                ok = j > i && j - i < WORD_MAX && !(j < e && is_alpha((unsigned char)s[j]));
                if (ok) {
                    memcpy(pr->word, s + i, j - i);
                    pr->word[j - i] = '\0';
                    i = j;
                }
                break;
            }
            case 'l':
                ok = match_list(s, e, &i, ", ", pr);
                break;
            case 's':
                ok = match_list(s, e, &i, " ", pr);
                break;
            default:
                ok = false;
            }
            if (!ok)
                return false;
            p += 3;
        } else {
            if (i >= e || s[i] != *p)
                return false;
            i++;
            p++;
        }
    }
    *end = i;
    return true;
}

static bool record_from_match(const struct problem *pr, const char *s, size_t start, size_t end,
                              struct task_prompt *out)
{
    if (end - start >= TASK_TEXT_MAX)
        return false;
    memset(out, 0, sizeof(*out));
    memcpy(out->text, s + start, end - start);
    out->text[end - start] = '\0';
    if (!solve(pr, out->answer, sizeof(out->answer)))
        return false;
    out->family = pr->fam;
    out->split = TASK_SPLIT_UNKNOWN;
    out->problem = problem_hash(pr);
    snprintf(out->id, sizeof(out->id), "%s-%016llx", family_names[pr->fam],
             (unsigned long long)hash_bytes(out->text, strlen(out->text)));
    return true;
}

/* The problem in text (whole trimmed text first, then at any word boundary). */
static int parse_problem(const char *text, struct problem *pr, struct task_prompt *rec)
{
    size_t len = strlen(text), b = 0, e = len;
    while (b < e && is_space((unsigned char)text[b]))
        b++;
    while (e > b && is_space((unsigned char)text[e - 1]))
        e--;
    size_t end;
    for (size_t k = 0; k < N_PHRASINGS; k++)
        if (match_phrasing(&phrasings[k], text, b, e, &end, pr) && end == e &&
            record_from_match(pr, text, b, end, rec))
            return ERR_OK;
    for (size_t i = b; i < e; i++) {
        if (i > 0 && is_alpha((unsigned char)text[i - 1]))
            continue;
        for (size_t k = 0; k < N_PHRASINGS; k++)
            if (match_phrasing(&phrasings[k], text, i, e, &end, pr) &&
                record_from_match(pr, text, i, end, rec))
                return ERR_OK;
    }
    return ERR_NOTFOUND;
}

int task_prompt_parse(const char *text, struct task_prompt *out)
{
    struct problem pr;
    if (!text || !out)
        return ERR_INVAL;
    return parse_problem(text, &pr, out);
}

static const char *const question_names[TASK_QUESTION_COUNT] = {"add",
                                                                "sub",
                                                                "compare larger",
                                                                "compare smaller",
                                                                "count",
                                                                "sort ascending",
                                                                "sort descending",
                                                                "reverse",
                                                                "maxmin largest",
                                                                "maxmin smallest"};

const char *task_question_name(enum task_question q)
{
    return (int)q >= 0 && q < TASK_QUESTION_COUNT ? question_names[q] : "?";
}

bool task_question_habit(enum task_question q)
{
    return q == TASK_Q_COMPARE_SMALLER || q == TASK_Q_SORT_DESCENDING ||
           q == TASK_Q_MAXMIN_SMALLEST;
}

int task_prompt_question(const struct task_prompt *p, enum task_question *out)
{
    struct problem pr;
    struct task_prompt rec;
    if (!p || !out || memchr(p->text, '\0', sizeof(p->text)) == NULL)
        return ERR_INVAL;
    int rc = parse_problem(p->text, &pr, &rec);
    if (!rc)
        *out = problem_question(&pr);
    return rc;
}

/* ---------------------------------------------------------------- reading answers */

enum tok_kind { TOK_END, TOK_NUM, TOK_WORD, TOK_SEP, TOK_OTHER };

struct tok {
    enum tok_kind kind;
    size_t start, end; /* bytes [start, end) */
    long long value;   /* TOK_NUM: the integer value when integral && !overflow */
    bool integral;     /* no fraction, or an all-zero one */
    bool overflow;     /* more than 18 significant digits */
};

/* A sign belongs to a number when it directly precedes a digit and does not follow a letter or
 * digit: "-35" and "(-35)" are negative, "23 - 58" and "12-5" are not. */
static bool sign_ok(const char *s, size_t pos)
{
    return pos == 0 ||
           !(is_alpha((unsigned char)s[pos - 1]) || is_digit((unsigned char)s[pos - 1]));
}

/* The token at pos. Bytes >= 0x80 (apart from U+2212 before a digit) are TOK_OTHER. */
static void scan(const char *s, size_t len, size_t pos, struct tok *t)
{
    memset(t, 0, sizeof(*t));
    t->start = pos;
    if (pos >= len) {
        t->kind = TOK_END;
        t->end = pos;
        return;
    }
    unsigned char c = (unsigned char)s[pos];
    size_t i = pos;
    bool neg = false, num = false;
    if ((c == '-' || c == '+') && i + 1 < len && is_digit((unsigned char)s[i + 1]) &&
        sign_ok(s, i)) {
        neg = c == '-';
        i++;
        num = true;
    } else if (c == 0xE2 && i + 3 < len && (unsigned char)s[i + 1] == 0x88 &&
               (unsigned char)s[i + 2] == 0x92 && is_digit((unsigned char)s[i + 3]) &&
               sign_ok(s, i)) {
        neg = true; /* U+2212 MINUS SIGN */
        i += 3;
        num = true;
    } else if (is_digit(c)) {
        num = true;
    }
    if (num) {
        long long v = 0;
        int sig = 0;
        t->kind = TOK_NUM;
        t->integral = true;
        for (; i < len && is_digit((unsigned char)s[i]); i++) {
            int d = s[i] - '0';
            if (sig == 0 && d == 0)
                continue; /* leading zeros count for nothing */
            if (++sig > 18)
                t->overflow = true;
            else
                v = v * 10 + d;
        }
        if (i + 1 < len && s[i] == '.' && is_digit((unsigned char)s[i + 1])) {
            for (i++; i < len && is_digit((unsigned char)s[i]); i++)
                if (s[i] != '0')
                    t->integral = false;
        }
        t->value = neg ? -v : v;
        t->end = i;
        return;
    }
    if (is_alpha(c)) {
        while (i < len && is_alpha((unsigned char)s[i]))
            i++;
        t->kind = TOK_WORD;
        t->end = i;
        return;
    }
    t->kind = (is_space(c) || c == ',' || c == ';' || c == '[' || c == ']') ? TOK_SEP : TOK_OTHER;
    t->end = pos + 1;
}

static bool word_is(const char *s, const struct tok *t, const char *w)
{
    size_t n = strlen(w);
    if (t->kind != TOK_WORD || t->end - t->start != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (to_lower((unsigned char)s[t->start + i]) != w[i])
            return false;
    return true;
}

/* Where the answer after the last "answer" marker starts, or len if there is no marker. */
static size_t after_marker(const char *s, size_t len)
{
    size_t pos = 0, found = len;
    struct tok t;
    for (scan(s, len, pos, &t); t.kind != TOK_END; scan(s, len, pos, &t)) {
        if (word_is(s, &t, "answer"))
            found = t.end;
        pos = t.end;
    }
    if (found == len)
        return len;
    /* Skip the connectors: "is", "was", "would be", "will be", ":" and "=", with spaces. */
    pos = found;
    for (scan(s, len, pos, &t); t.kind != TOK_END; scan(s, len, pos, &t)) {
        bool skip = t.kind == TOK_SEP || word_is(s, &t, "is") || word_is(s, &t, "was") ||
                    word_is(s, &t, "would") || word_is(s, &t, "will") || word_is(s, &t, "be") ||
                    (t.kind == TOK_OTHER && (s[t.start] == ':' || s[t.start] == '='));
        if (!skip)
            break;
        pos = t.end;
    }
    return pos;
}

/* A run of numbers separated only by TOK_SEP and the word "and". */
struct run {
    long long v[TASK_LIST_MAX];
    int n;      /* numbers in the run (may exceed TASK_LIST_MAX; only the first are kept) */
    bool bad;   /* a number in it is not an integer or overflowed */
    size_t end; /* byte after its last number */
};

/* Reads the run whose first number is the token t. */
static void read_run(const char *s, size_t len, const struct tok *first, struct run *r)
{
    struct tok t = *first;
    memset(r, 0, sizeof(*r));
    for (;;) {
        if (r->n < TASK_LIST_MAX)
            r->v[r->n] = t.value;
        r->n++;
        r->bad = r->bad || !t.integral || t.overflow;
        r->end = t.end;
        size_t pos = t.end;
        for (scan(s, len, pos, &t); t.kind == TOK_SEP || word_is(s, &t, "and");
             scan(s, len, pos, &t))
            pos = t.end;
        if (t.kind != TOK_NUM)
            return;
    }
}

/* What a reference or a response holds, once read. */
struct answer {
    bool found;
    enum task_kind kind;
    long long num;       /* NUMBER */
    bool num_ok;         /* integral and no overflow */
    struct run run;      /* LIST */
    size_t wstart, wend; /* WORD: bytes of the word in its text */
    size_t nstart, nend; /* NUMBER: bytes of the number in its text */
};

/* The first candidate of `kind` at or after `from`, or (last == true) the last one in s. */
static bool find_candidate(const char *s, size_t len, size_t from, bool last, enum task_kind kind,
                           struct answer *a)
{
    struct tok t;
    size_t pos = from;
    bool got = false;
    for (scan(s, len, pos, &t); t.kind != TOK_END; scan(s, len, pos, &t)) {
        pos = t.end;
        if (kind == TASK_KIND_WORD && t.kind == TOK_WORD) {
            a->wstart = t.start;
            a->wend = t.end;
            got = true;
        } else if (kind == TASK_KIND_NUMBER && t.kind == TOK_NUM) {
            a->num = t.value;
            a->num_ok = t.integral && !t.overflow;
            a->nstart = t.start;
            a->nend = t.end;
            got = true;
        } else if (kind == TASK_KIND_LIST && t.kind == TOK_NUM) {
            read_run(s, len, &t, &a->run);
            pos = a->run.end;
            got = true;
        } else {
            continue;
        }
        if (!last)
            break;
    }
    a->found = got;
    a->kind = kind;
    return got;
}

static void read_answer(const char *s, size_t len, enum task_kind kind, struct answer *a)
{
    memset(a, 0, sizeof(*a));
    size_t from = after_marker(s, len);
    if (from < len && find_candidate(s, len, from, false, kind, a))
        return;
    memset(a, 0, sizeof(*a));
    find_candidate(s, len, 0, true, kind, a);
}

/* Parses a reference: exactly one candidate of the kind and nothing else but whitespace. */
static bool read_reference(const char *ref, enum task_kind kind, struct answer *a)
{
    size_t len = strlen(ref);
    memset(a, 0, sizeof(*a));
    struct tok t;
    size_t pos = 0;
    while (pos < len && is_space((unsigned char)ref[pos]))
        pos++;
    scan(ref, len, pos, &t);
    size_t end;
    if (kind == TASK_KIND_WORD) {
        if (t.kind != TOK_WORD)
            return false;
        a->wstart = t.start;
        a->wend = end = t.end;
    } else {
        if (t.kind != TOK_NUM || !t.integral || t.overflow)
            return false;
        if (kind == TASK_KIND_NUMBER) {
            a->num = t.value;
            a->num_ok = true;
            end = t.end;
        } else {
            read_run(ref, len, &t, &a->run);
            if (a->run.bad || a->run.n < 2 || a->run.n > TASK_LIST_MAX)
                return false;
            end = a->run.end;
        }
    }
    while (end < len && is_space((unsigned char)ref[end]))
        end++;
    a->found = true;
    a->kind = kind;
    return end == len;
}

int task_kind_of_answer(const char *reference, enum task_kind *out)
{
    struct answer a;
    if (!reference || !out)
        return ERR_INVAL;
    static const enum task_kind order[] = {TASK_KIND_NUMBER, TASK_KIND_LIST, TASK_KIND_WORD};
    for (size_t i = 0; i < 3; i++) {
        if (read_reference(reference, order[i], &a)) {
            *out = order[i];
            return ERR_OK;
        }
    }
    return ERR_INVAL;
}

static void copy_trunc(char *out, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

int task_check_answer(enum task_kind kind, const char *reference, const char *response, size_t len,
                      struct task_check *out)
{
    struct answer ref, got;
    if (!reference || !out || (!response && len))
        return ERR_INVAL;
    if (kind != TASK_KIND_NUMBER && kind != TASK_KIND_LIST && kind != TASK_KIND_WORD)
        return ERR_INVAL;
    if (!read_reference(reference, kind, &ref))
        return ERR_INVAL;
    memset(out, 0, sizeof(*out));
    if (!response)
        return ERR_OK;
    read_answer(response, len, kind, &got);
    if (!got.found)
        return ERR_OK;
    out->found = true;
    switch (kind) {
    case TASK_KIND_NUMBER:
        out->correct = got.num_ok && got.num == ref.num;
        if (got.num_ok)
            snprintf(out->extracted, sizeof(out->extracted), "%lld", got.num);
        else
            copy_trunc(out->extracted, sizeof(out->extracted), response + got.nstart,
                       got.nend - got.nstart);
        break;
    case TASK_KIND_LIST: {
        const struct run *r = &got.run;
        out->correct = !r->bad && r->n == ref.run.n;
        for (int i = 0; out->correct && i < r->n; i++)
            out->correct = r->v[i] == ref.run.v[i];
        int shown = r->n < TASK_LIST_MAX ? r->n : TASK_LIST_MAX;
        format_list(out->extracted, sizeof(out->extracted), r->v, shown, ", ");
        if (r->n > TASK_LIST_MAX || r->bad) {
            size_t l = strlen(out->extracted);
            append(out->extracted, sizeof(out->extracted), &l, r->bad ? " (not integers)" : ", ...",
                   r->bad ? 15 : 5);
        }
        break;
    }
    case TASK_KIND_WORD: {
        size_t n = got.wend - got.wstart, m = ref.wend - ref.wstart;
        out->correct = n == m;
        for (size_t i = 0; out->correct && i < n; i++)
            out->correct = to_lower((unsigned char)response[got.wstart + i]) ==
                           to_lower((unsigned char)reference[ref.wstart + i]);
        copy_trunc(out->extracted, sizeof(out->extracted), response + got.wstart, n);
        for (char *p = out->extracted; *p; p++)
            *p = (char)to_lower((unsigned char)*p);
        break;
    }
    }
    return ERR_OK;
}

int task_check(const struct task_prompt *p, const char *response, size_t len,
               struct task_check *out)
{
    if (!p || (int)p->family < 0 || p->family >= TASK_FAMILY_COUNT ||
        memchr(p->answer, '\0', sizeof(p->answer)) == NULL)
        return ERR_INVAL;
    return task_check_answer(task_family_kind(p->family), p->answer, response, len, out);
}

/* ---------------------------------------------------------------- demonstrations */

/* Verbose phrasings per family. {r} is the stated answer (right or wrong), {a} {b} the operands,
 * {o} the number not chosen, {x} the direction in words, {c} the letter, {w} the word, {W} the
 * word spelled with dashes, {R} the stated answer spelled with dashes, {l} the list as given.
 * Each ends in "the answer is {r}." so a checker (and a model) finds the answer at the end, and
 * each starts with "The ": the verbose style is one way to begin, which a model that imitates
 * the demonstrations takes greedily when verbose_share is 1/2, as the terse ones begin with the
 * answer's first character, shared by at most 2 of 3 of them. So the SFT model's greedy answer is
 * verbose, and a judge asked for short answers has something to cut (the OAIF paper's length
 * control). */
struct demo_phrasing {
    enum task_family fam;
    const char *pat;
};

static const struct demo_phrasing verbose_phrasings[] = {
    {TASK_ADD, "The sum of {a} and {b} is {r}. The answer is {r}."},
    {TASK_ADD, "The ones and then the tens: {a} + {b} = {r}, so the answer is {r}."},
    {TASK_ADD, "The total of {a} plus {b} is {r}. The answer is {r}."},
    {TASK_ADD, "The numbers {a} and {b} add up to {r}, so the answer is {r}."},
    {TASK_SUB, "The difference {a} - {b} is {r}. The answer is {r}."},
    {TASK_SUB, "The result of taking {b} away from {a} is {r}, so the answer is {r}."},
    {TASK_SUB, "The digits one by one: {a} - {b} = {r}, so the answer is {r}."},
    {TASK_SUB, "The subtraction {a} minus {b} leaves {r}. The answer is {r}."},
    {TASK_COMPARE, "The {x} of {a} and {b} is {r}. The answer is {r}."},
    {TASK_COMPARE, "The number {r} is {x} than {o}, so the answer is {r}."},
    {TASK_COMPARE, "The digits show that {r} is the {x} number. The answer is {r}."},
    {TASK_COUNT, "The letters of {w} are {W}. The count of the letter {c} is {r}. The answer is "
                 "{r}."},
    {TASK_COUNT, "The count of the letter {c} in {w} is {r}. The answer is {r}."},
    {TASK_COUNT, "The word {W}, one letter at a time, has {r} of the letter {c}. The answer is "
                 "{r}."},
    {TASK_SORT, "The order from {x} is {r}. The answer is {r}."},
    {TASK_SORT, "The numbers {l} in order are {r}. The answer is {r}."},
    {TASK_SORT, "The list sorted from {x}: {r}. The answer is {r}."},
    {TASK_REVERSE, "The word {w} from the last letter to the first is {r}. The answer is {r}."},
    {TASK_REVERSE, "The letters of {w} backwards are {R}, so the answer is {r}."},
    {TASK_REVERSE, "The reverse of {w} is {r}. The answer is {r}."},
    {TASK_MAXMIN, "The {x} of {l} is {r}. The answer is {r}."},
    {TASK_MAXMIN, "The numbers one by one show that {r} is the {x}. The answer is {r}."},
    {TASK_MAXMIN, "The {x} number, looking at each in turn, is {r}. The answer is {r}."},
};
#define N_VERBOSE (sizeof(verbose_phrasings) / sizeof(verbose_phrasings[0]))

static const char *const terse_phrasings[] = {"{r}", "{r}.", "Answer: {r}"};

#define MAX_WRONG 24

struct wrong_set {
    char v[MAX_WRONG][TASK_ANSWER_MAX];
    int n;
};

static bool same_ci(const char *x, const char *y)
{
    for (; *x && *y; x++, y++)
        if (to_lower((unsigned char)*x) != to_lower((unsigned char)*y))
            return false;
    return *x == *y;
}

/* Adds a candidate unless it equals the right answer (case aside: the checker ignores case) or
 * is already there. */
static void add_wrong(struct wrong_set *w, const char *right, const char *cand)
{
    if (w->n == MAX_WRONG || !cand[0] || same_ci(cand, right) || strlen(cand) >= TASK_ANSWER_MAX)
        return;
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->v[i], cand) == 0)
            return;
    snprintf(w->v[w->n++], TASK_ANSWER_MAX, "%s", cand);
}

static void add_wrong_num(struct wrong_set *w, const char *right, long long v)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", v);
    add_wrong(w, right, s);
}

static void add_wrong_list(struct wrong_set *w, const char *right, const long long *v, int n)
{
    char s[TASK_ANSWER_MAX];
    format_list(s, sizeof(s), v, n, ", ");
    add_wrong(w, right, s);
}

/* |v| with its last two digits swapped (47 -> 74, -35 -> -53); v itself below 10. */
static long long swap_last_digits(long long v)
{
    long long m = v < 0 ? -v : v;
    if (m < 10)
        return v;
    long long ones = m % 10, tens = (m / 10) % 10;
    m = m - ones - tens * 10 + ones * 10 + tens;
    return v < 0 ? -m : m;
}

/* a + b added digit by digit with every carry lost (47 + 38 -> 75). */
static long long sum_without_carry(long long a, long long b)
{
    long long s = 0, place = 1;
    while (a > 0 || b > 0) {
        s += ((a % 10 + b % 10) % 10) * place;
        a /= 10;
        b /= 10;
        place *= 10;
    }
    return s;
}

/* Plausible mistakes for a problem whose right answer is `right`. Never empty. */
static void wrong_answers(const struct problem *pr, const char *right, struct wrong_set *w)
{
    long long v[TASK_LIST_MAX], t;
    w->n = 0;
    switch (pr->fam) {
    case TASK_ADD: {
        long long r = pr->a + pr->b;
        add_wrong_num(w, right, r + 1);
        add_wrong_num(w, right, r - 1);
        add_wrong_num(w, right, r + 10);
        if (r >= 10)
            add_wrong_num(w, right, r - 10);
        add_wrong_num(w, right, sum_without_carry(pr->a, pr->b));
        add_wrong_num(w, right, swap_last_digits(r));
        break;
    }
    case TASK_SUB: {
        long long r = pr->a - pr->b;
        add_wrong_num(w, right, r + 1);
        add_wrong_num(w, right, r - 1);
        add_wrong_num(w, right, -r); /* the sign lost or invented */
        add_wrong_num(w, right, r + 10);
        add_wrong_num(w, right, r - 10);
        add_wrong_num(w, right, swap_last_digits(r));
        break;
    }
    case TASK_COMPARE:
        add_wrong_num(w, right, pr->a); /* the other number: one of these two is right */
        add_wrong_num(w, right, pr->b);
        break;
    case TASK_COUNT: {
        long long r = count_letter(pr->word, pr->letter);
        add_wrong_num(w, right, r + 1);
        if (r > 0)
            add_wrong_num(w, right, r - 1);
        break;
    }
    case TASK_SORT:
        sorted_list(pr, v);
        for (int i = 0; i + 1 < pr->n; i++) { /* two neighbours swapped */
            t = v[i];
            v[i] = v[i + 1];
            v[i + 1] = t;
            add_wrong_list(w, right, v, pr->n);
            v[i + 1] = v[i];
            v[i] = t;
        }
        add_wrong_list(w, right, pr->list, pr->n); /* left as given */
        for (int i = 0; i < pr->n; i++)            /* the wrong direction */
            v[i] = pr->list[i];
        qsort(v, (size_t)pr->n, sizeof(long long), cmp_asc);
        if (!pr->variant)
            for (int i = 0, j = pr->n - 1; i < j; i++, j--) {
                t = v[i];
                v[i] = v[j];
                v[j] = t;
            }
        add_wrong_list(w, right, v, pr->n);
        break;
    case TASK_REVERSE: {
        char s[WORD_MAX];
        size_t n = strlen(right);
        add_wrong(w, right, pr->word); /* not reversed at all (a palindrome is filtered) */
        for (size_t i = 0; i + 1 < n; i++) {
            memcpy(s, right, n + 1);
            char c = s[i];
            s[i] = s[i + 1];
            s[i + 1] = c;
            add_wrong(w, right, s);
        }
        if (n > 2) {
            memcpy(s, right, n + 1);
            s[n - 1] = '\0'; /* the last letter dropped */
            add_wrong(w, right, s);
        }
        break;
    }
    case TASK_MAXMIN:
        for (int i = 0; i < pr->n; i++) /* another element of the list */
            add_wrong_num(w, right, pr->list[i]);
        break;
    default:
        break;
    }
    if (w->n == 0) { /* nothing plausible differs (a palindrome of one letter, "1, 1, 1") */
        char s[TASK_ANSWER_MAX + 2];
        if (task_family_kind(pr->fam) == TASK_KIND_WORD)
            snprintf(s, sizeof(s), "%s%c", right, right[strlen(right) - 1]);
        else if (task_family_kind(pr->fam) == TASK_KIND_LIST)
            snprintf(s, sizeof(s), "%s1", right); /* the last element times ten plus one */
        else
            snprintf(s, sizeof(s), "%lld", strtoll(right, NULL, 10) + 1);
        add_wrong(w, right, s);
    }
}

/* The demonstrator's habit: it reads "smaller", "descending" and "smallest" as their opposites
 * (a slip people make, and one the prompt shows). Writes the habitual answer, the answer to the
 * question read the other way, and returns true where the problem has one. Unlike the plausible
 * mistakes above, spread over several wrong answers, a habit is one answer: a model that imitates
 * the demonstrations makes it its greedy answer once habit_share > 1/2 while it still samples the
 * right one, the kind of flaw feedback fixes and imitation cannot. (Also tried, README "Demo":
 * habits on sums and differences, a carry or a borrow lost, which feedback could not fix without
 * breaking the family; and directions backwards both ways, which the model half ignored.) */
static bool habit_answer(const struct problem *pr, char *out, size_t cap)
{
    if (!task_question_habit(problem_question(pr)))
        return false;
    struct problem flipped = *pr;
    flipped.variant = 0;
    return solve(&flipped, out, cap);
}

static void spell(const char *word, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (const char *p = word; *p; p++)
        if ((p != word && !append(out, cap, &len, "-", 1)) || !append(out, cap, &len, p, 1))
            return;
}

int task_demo(const struct task_prompt *p, const struct task_demo_config *cfg, uint64_t seed,
              uint64_t sample, char *out, size_t cap, struct task_demo_info *info)
{
    if (!p || !cfg || !out || cap == 0)
        return ERR_INVAL;
    if (!(cfg->wrong_share >= 0 && cfg->wrong_share <= 1) ||
        !(cfg->verbose_share >= 0 && cfg->verbose_share <= 1) ||
        !(cfg->habit_share >= 0 && cfg->habit_share <= 1))
        return ERR_INVAL; /* also NaN */
    struct problem pr;
    struct task_prompt rec;
    if (memchr(p->text, '\0', sizeof(p->text)) == NULL || parse_problem(p->text, &pr, &rec) ||
        rec.family != p->family || strcmp(rec.answer, p->answer) != 0)
        return ERR_INVAL;

    struct rng r = {hash4(seed, hash_bytes(p->id, strnlen(p->id, sizeof(p->id))), sample, 0xde30u)};
    bool wrong = rng_unit(&r) < cfg->wrong_share;
    bool verbose = rng_unit(&r) < cfg->verbose_share;
    char stated[TASK_ANSWER_MAX];
    bool habit = rng_unit(&r) < cfg->habit_share && habit_answer(&pr, stated, sizeof(stated));
    if (habit) {
        wrong = true;
    } else if (wrong) {
        struct wrong_set ws;
        wrong_answers(&pr, p->answer, &ws);
        snprintf(stated, sizeof(stated), "%s", ws.v[rng_range(&r, 0, ws.n - 1)]);
    } else {
        snprintf(stated, sizeof(stated), "%s", p->answer);
    }

    const char *pat;
    if (verbose) {
        const char *cand[8];
        int nc = 0;
        for (size_t i = 0; i < N_VERBOSE && nc < 8; i++)
            if (verbose_phrasings[i].fam == p->family)
                cand[nc++] = verbose_phrasings[i].pat;
        pat = cand[rng_range(&r, 0, nc - 1)];
    } else {
        pat = terse_phrasings[rng_range(&r, 0, 2)];
    }

    char a[24], b[24], o[24], c[2] = {pr.letter, '\0'}, W[2 * WORD_MAX], R[2 * TASK_ANSWER_MAX],
                              l[TASK_ANSWER_MAX];
    const char *vars[128] = {0};
    snprintf(a, sizeof(a), "%lld", pr.a);
    snprintf(b, sizeof(b), "%lld", pr.b);
    snprintf(o, sizeof(o), "%lld", strcmp(stated, a) == 0 ? pr.b : pr.a);
    spell(pr.word, W, sizeof(W));
    spell(stated, R, sizeof(R));
    format_list(l, sizeof(l), pr.list, pr.n, ", ");
    vars['a'] = a;
    vars['b'] = b;
    vars['o'] = o;
    vars['c'] = c;
    vars['w'] = pr.word;
    vars['W'] = W;
    vars['R'] = R;
    vars['l'] = l;
    vars['r'] = stated;
    switch (p->family) {
    case TASK_COMPARE:
        vars['x'] = pr.variant ? "smaller" : "larger";
        break;
    case TASK_SORT:
        vars['x'] = pr.variant ? "largest to smallest" : "smallest to largest";
        break;
    case TASK_MAXMIN:
        vars['x'] = pr.variant ? "smallest" : "largest";
        break;
    default:
        break;
    }
    if (!fill(out, cap, pat, vars)) {
        out[0] = '\0';
        return ERR_TOOBIG;
    }
    if (info) {
        info->wrong = wrong;
        info->verbose = verbose;
        info->habit = habit;
    }
    return ERR_OK;
}

/* ---------------------------------------------------------------- pairs and JSONL */

void task_pairs_free(struct task_pair **pairs, size_t n)
{
    if (!pairs || !*pairs)
        return;
    for (size_t i = 0; i < n; i++) {
        free((*pairs)[i].id);
        free((*pairs)[i].prompt);
        free((*pairs)[i].response);
    }
    free(*pairs);
    *pairs = NULL;
}

int task_demo_pairs(uint64_t seed, size_t n, const struct task_demo_config *cfg,
                    struct task_pair **out)
{
    if (!out || !cfg)
        return ERR_INVAL;
    *out = NULL;
    if (n == 0)
        return ERR_OK;
    struct task_pair *pairs = calloc(n, sizeof(*pairs));
    if (!pairs)
        return ERR_NOMEM;
    int rc = ERR_OK;
    for (size_t i = 0; i < n && rc == ERR_OK; i++) {
        struct task_prompt p;
        char resp[TASK_RESPONSE_MAX];
        rc = task_prompt_at(seed, TASK_SPLIT_TRAIN, i, &p);
        if (!rc)
            rc = task_demo(&p, cfg, seed, i, resp, sizeof(resp), NULL);
        if (rc)
            break;
        pairs[i].id = strdup(p.id);
        pairs[i].prompt = strdup(p.text);
        pairs[i].response = strdup(resp);
        if (!pairs[i].id || !pairs[i].prompt || !pairs[i].response)
            rc = ERR_NOMEM;
    }
    if (rc) {
        task_pairs_free(&pairs, n);
        return rc;
    }
    *out = pairs;
    return ERR_OK;
}

static void set_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

int task_jsonl_write(const char *path, const struct task_pair *pairs, size_t n, char *err,
                     size_t errcap)
{
    if (!path || (!pairs && n)) {
        set_err(err, errcap, "task_jsonl_write: NULL argument");
        return ERR_INVAL;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        set_err(err, errcap, "%s: cannot create: %s", path, strerror(errno));
        return ERR_IO;
    }
    int rc = ERR_OK;
    for (size_t i = 0; i < n && rc == ERR_OK; i++) {
        const struct task_pair *pp = &pairs[i];
        if (!pp->prompt || !pp->response) {
            set_err(err, errcap, "%s: pair %zu: no %s", path, i,
                    pp->prompt ? "response" : "prompt");
            rc = ERR_INVAL;
            break;
        }
        json_t *o = json_object();
        json_t *jp = json_string(pp->prompt), *jr = json_string(pp->response);
        json_t *ji = pp->id ? json_string(pp->id) : NULL;
        if (!o || !jp || !jr || (pp->id && !ji)) {
            /* json_string() is NULL for text that is not UTF-8 (or when out of memory) */
            set_err(err, errcap, "%s: pair %zu: field \"%s\": not valid UTF-8", path, i,
                    !jp   ? "prompt"
                    : !jr ? "response"
                          : "id");
            json_decref(o);
            json_decref(jp);
            json_decref(jr);
            json_decref(ji);
            rc = o ? ERR_INVAL : ERR_NOMEM;
            break;
        }
        if (ji)
            json_object_set_new(o, "id", ji);
        json_object_set_new(o, "prompt", jp);
        json_object_set_new(o, "response", jr);
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!line) {
            rc = ERR_NOMEM;
            break;
        }
        if (fputs(line, f) == EOF || fputc('\n', f) == EOF) {
            set_err(err, errcap, "%s: write failed: %s", path, strerror(errno));
            rc = ERR_IO;
        }
        free(line);
    }
    if (fclose(f) != 0 && rc == ERR_OK) {
        set_err(err, errcap, "%s: write failed: %s", path, strerror(errno));
        rc = ERR_IO;
    }
    return rc;
}

/* The string field `name` of object o: ERR_NOTFOUND if absent, ERR_INVAL if not a string. */
static int get_string(json_t *o, const char *name, const char **out)
{
    json_t *v = json_object_get(o, name);
    if (!v)
        return ERR_NOTFOUND;
    if (!json_is_string(v))
        return ERR_INVAL;
    *out = json_string_value(v);
    return ERR_OK;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* One line's pair into *p (fields malloc'd). */
static int parse_pair_line(const char *path, size_t lineno, const char *line, size_t len,
                           struct task_pair *p, char *err, size_t errcap)
{
    json_error_t jerr;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        set_err(err, errcap, "%s:%zu: column %d: %s", path, lineno, jerr.column, jerr.text);
        return ERR_INVAL;
    }
    if (!json_is_object(o)) {
        set_err(err, errcap, "%s:%zu: expected a JSON object, got %s", path, lineno,
                json_type_name(o));
        json_decref(o);
        return ERR_INVAL;
    }
    static const char *const fields[] = {"prompt", "response", "id"};
    const char *val[3] = {NULL, NULL, NULL};
    int rc = ERR_OK;
    for (int i = 0; i < 3 && rc == ERR_OK; i++) {
        int g = get_string(o, fields[i], &val[i]);
        if (g == ERR_NOTFOUND && i < 2) {
            set_err(err, errcap, "%s:%zu: field \"%s\": missing", path, lineno, fields[i]);
            rc = ERR_INVAL;
        } else if (g == ERR_INVAL) {
            set_err(err, errcap, "%s:%zu: field \"%s\": expected a string, got %s", path, lineno,
                    fields[i], json_type_name(json_object_get(o, fields[i])));
            rc = ERR_INVAL;
        } else if (i < 2 && val[i][0] == '\0') {
            set_err(err, errcap, "%s:%zu: field \"%s\": empty", path, lineno, fields[i]);
            rc = ERR_INVAL;
        }
    }
    if (rc == ERR_OK) {
        p->prompt = strdup(val[0]);
        p->response = strdup(val[1]);
        p->id = val[2] ? strdup(val[2]) : NULL;
        if (!p->prompt || !p->response || (val[2] && !p->id)) {
            free(p->prompt);
            free(p->response);
            free(p->id);
            memset(p, 0, sizeof(*p));
            set_err(err, errcap, "%s:%zu: out of memory", path, lineno);
            rc = ERR_NOMEM;
        }
    }
    json_decref(o);
    return rc;
}

/* Reads one line (without its '\n') into *line (grown as needed, *cap bytes), at most
 * JSONL_LINE_MAX bytes: bytes are counted, not strings, so a NUL in the file is kept and later
 * rejected by the JSON parser. Sets *eof at the end of the file. Returns ERR_OK, ERR_TOOBIG,
 * ERR_NOMEM or ERR_IO. */
static int read_line(FILE *f, char **line, size_t *cap, size_t *len, bool *eof)
{
    int c;
    *len = 0;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (*len == JSONL_LINE_MAX)
            return ERR_TOOBIG;
        if (*len + 1 >= *cap) {
            size_t nc = *cap ? 2 * *cap : 4096;
            char *nl = realloc(*line, nc);
            if (!nl)
                return ERR_NOMEM;
            *line = nl;
            *cap = nc;
        }
        (*line)[(*len)++] = (char)c;
    }
    if (c == EOF) {
        if (ferror(f))
            return ERR_IO;
        *eof = true;
    }
    return ERR_OK;
}

int task_jsonl_read(const char *path, struct task_pair **out, size_t *n, char *err, size_t errcap)
{
    if (!path || !out || !n) {
        set_err(err, errcap, "task_jsonl_read: NULL argument");
        return ERR_INVAL;
    }
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        set_err(err, errcap, "%s: cannot open: %s", path, strerror(errno));
        return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
    }
    struct task_pair *pairs = NULL;
    size_t count = 0, alloc = 0, lineno = 0, cap = 0, len = 0;
    char *line = NULL;
    bool eof = false;
    int rc = ERR_OK;
    while (rc == ERR_OK && !eof) {
        rc = read_line(f, &line, &cap, &len, &eof);
        if (rc == ERR_OK && eof && len == 0)
            break;
        lineno++;
        if (rc == ERR_TOOBIG) {
            set_err(err, errcap, "%s:%zu: line longer than %u bytes", path, lineno, JSONL_LINE_MAX);
            break;
        }
        if (rc == ERR_IO) {
            set_err(err, errcap, "%s:%zu: read failed: %s", path, lineno, strerror(errno));
            break;
        }
        if (rc) {
            set_err(err, errcap, "%s:%zu: out of memory", path, lineno);
            break;
        }
        while (len > 0 && line[len - 1] == '\r')
            len--;
        size_t k = 0;
        while (k < len && is_space((unsigned char)line[k]))
            k++;
        if (k == len)
            continue; /* a blank line */
        if (count == alloc) {
            size_t na = alloc ? 2 * alloc : 256;
            struct task_pair *np = realloc(pairs, na * sizeof(*np));
            if (!np) {
                set_err(err, errcap, "%s:%zu: out of memory", path, lineno);
                rc = ERR_NOMEM;
                break;
            }
            pairs = np;
            alloc = na;
        }
        memset(&pairs[count], 0, sizeof(pairs[count]));
        rc = parse_pair_line(path, lineno, line, len, &pairs[count], err, errcap);
        if (rc == ERR_OK)
            count++;
    }
    free(line);
    fclose(f);
    if (rc == ERR_OK && count == 0) {
        set_err(err, errcap, "%s: no pairs (the file is empty)", path);
        rc = ERR_INVAL;
    }
    if (rc) {
        task_pairs_free(&pairs, count);
        return rc;
    }
    *out = pairs;
    *n = count;
    return ERR_OK;
}
