/* test_task.c - the built-in task: families, generator, split, prompt parser, answer checker. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "task.h"

#define SEED 1234

/* ------------------------------------------------------------------ helpers */

static bool correct_kind(enum task_kind kind, const char *ref, const char *resp)
{
    struct task_check c;
    assert_int_equal(task_check_answer(kind, ref, resp, strlen(resp), &c), ERR_OK);
    assert_true(!c.correct || c.found);
    return c.correct;
}

static bool num_ok(const char *ref, const char *resp)
{
    return correct_kind(TASK_KIND_NUMBER, ref, resp);
}

static bool list_ok(const char *ref, const char *resp)
{
    return correct_kind(TASK_KIND_LIST, ref, resp);
}

static bool word_ok(const char *ref, const char *resp)
{
    return correct_kind(TASK_KIND_WORD, ref, resp);
}

/* The integers written in s, in order (non-negative, as prompts write them). */
static int numbers_in(const char *s, long long *v, int max)
{
    int n = 0;
    for (const char *p = s; *p && n < max;) {
        if (*p >= '0' && *p <= '9') {
            v[n++] = strtoll(p, (char **)&p, 10);
        } else {
            p++;
        }
    }
    return n;
}

/* ------------------------------------------------------------------ families */

static void test_family_names_round_trip(void **state)
{
    (void)state;
    for (int f = 0; f < TASK_FAMILY_COUNT; f++) {
        enum task_family g;
        assert_int_equal(task_family_parse(task_family_name((enum task_family)f), &g), ERR_OK);
        assert_int_equal(g, f);
    }
    enum task_family g;
    assert_int_equal(task_family_parse("multiply", &g), ERR_INVAL);
    assert_string_equal(task_family_name(TASK_FAMILY_COUNT), "?");
    assert_string_equal(task_split_name(TASK_SPLIT_EVAL), "eval");
    assert_int_equal(task_family_kind(TASK_SORT), TASK_KIND_LIST);
    assert_int_equal(task_family_kind(TASK_REVERSE), TASK_KIND_WORD);
    assert_int_equal(task_family_kind(TASK_COUNT), TASK_KIND_NUMBER);
}

struct known {
    const char *text;
    enum task_family fam;
    const char *answer;
};

static void test_known_prompts_parse_to_their_answers(void **state)
{
    (void)state;
    static const struct known cases[] = {
        {"What is 47 + 38?", TASK_ADD, "85"},
        {"Add 0 and 0.", TASK_ADD, "0"},
        {"What is the sum of 99 and 99?", TASK_ADD, "198"},
        {"Compute 15 plus 7.", TASK_ADD, "22"},
        {"Subtract 58 from 23.", TASK_SUB, "-35"},
        {"What is 23 - 58?", TASK_SUB, "-35"},
        {"Compute 91 minus 19.", TASK_SUB, "72"},
        {"What is 40 minus 40?", TASK_SUB, "0"},
        {"Which is larger, 472 or 427?", TASK_COMPARE, "472"},
        {"Which number is bigger: 9 or 10?", TASK_COMPARE, "10"},
        {"Which is smaller, 472 or 427?", TASK_COMPARE, "427"},
        {"Which is lower, 100 or 99?", TASK_COMPARE, "99"},
        {"How many times does the letter r appear in strawberry?", TASK_COUNT, "3"},
        {"Count the letter 'z' in the word 'banana'.", TASK_COUNT, "0"},
        {"How many a's are in banana?", TASK_COUNT, "3"},
        {"Sort in ascending order: 42, 7, 19.", TASK_SORT, "7, 19, 42"},
        {"Sort from largest to smallest: 42, 7, 19, 88, 3", TASK_SORT, "88, 42, 19, 7, 3"},
        {"Put these numbers in increasing order: 3 1 2", TASK_SORT, "1, 2, 3"},
        {"Put these numbers in decreasing order: 5 50 15", TASK_SORT, "50, 15, 5"},
        {"Reverse the word planet.", TASK_REVERSE, "tenalp"},
        {"Spell 'level' backwards.", TASK_REVERSE, "level"},
        {"What is kitten spelled backwards?", TASK_REVERSE, "nettik"},
        {"Write ab in reverse order.", TASK_REVERSE, "ba"},
        {"What is the largest of 12, 85, 40, 7?", TASK_MAXMIN, "85"},
        {"Find the minimum of 12, 85, 40, 7.", TASK_MAXMIN, "7"},
        {"Which is the least number: 8 3 9?", TASK_MAXMIN, "3"},
        {"What is 1234 + 5?", TASK_ADD, "1239"}, /* outside the generator's ranges */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct task_prompt p;
        assert_int_equal(task_prompt_parse(cases[i].text, &p), ERR_OK);
        assert_int_equal(p.family, cases[i].fam);
        assert_string_equal(p.answer, cases[i].answer);
        assert_string_equal(p.text, cases[i].text);
        assert_int_equal(p.split, TASK_SPLIT_UNKNOWN);
        assert_memory_equal(p.id, task_family_name(p.family), strlen(task_family_name(p.family)));
        assert_int_equal(strlen(p.id), strlen(task_family_name(p.family)) + 17);
    }
}

static void test_parse_rejects_other_text(void **state)
{
    (void)state;
    struct task_prompt p;
    static const char *const texts[] = {
        "",
        "Tell me a joke.",
        "What is 12 + ?",
        "What is twelve + 5?",
        "What is 12 + 5",
        "Sort in ascending order: 7.", /* one number is no list */
        "What is 12345678901 + 1?",    /* operands up to 9 digits */
        "Reverse the word pla-net.",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        assert_int_equal(task_prompt_parse(texts[i], &p), ERR_NOTFOUND);
    assert_int_equal(task_prompt_parse(NULL, &p), ERR_INVAL);
}

static void test_parse_finds_a_prompt_inside_a_chat_template(void **state)
{
    (void)state;
    struct task_prompt bare, wrapped;
    assert_int_equal(task_prompt_parse("What is 12 + 35?", &bare), ERR_OK);
    assert_int_equal(task_prompt_parse("User: What is 12 + 35?\nAssistant:", &wrapped), ERR_OK);
    assert_string_equal(wrapped.answer, "47");
    assert_string_equal(wrapped.text, "What is 12 + 35?");
    assert_string_equal(wrapped.id, bare.id);
    assert_true(wrapped.problem == bare.problem);
    assert_int_equal(task_prompt_parse("  \n Reverse the word planet. \n", &wrapped), ERR_OK);
    assert_string_equal(wrapped.answer, "tenalp");
}

static void test_phrasings_of_one_problem_share_the_problem_hash(void **state)
{
    (void)state;
    struct task_prompt a, b, c;
    assert_int_equal(task_prompt_parse("What is 47 + 38?", &a), ERR_OK);
    assert_int_equal(task_prompt_parse("Add 47 and 38.", &b), ERR_OK);
    assert_int_equal(task_prompt_parse("Add 38 and 47.", &c), ERR_OK);
    assert_true(a.problem == b.problem);
    assert_string_not_equal(a.id, b.id);
    assert_true(a.problem != c.problem);
    assert_int_equal(task_prompt_parse("Which is larger, 4 or 5?", &a), ERR_OK);
    assert_int_equal(task_prompt_parse("Which is smaller, 4 or 5?", &b), ERR_OK);
    assert_true(a.problem != b.problem); /* the direction is part of the problem */
}

/* ------------------------------------------------------------------ generator */

static void test_same_seed_gives_same_prompts(void **state)
{
    (void)state;
    bool differs = false;
    for (uint64_t i = 0; i < 300; i++) {
        struct task_prompt a, b, c;
        assert_int_equal(task_prompt_at(SEED, TASK_SPLIT_TRAIN, i, &a), ERR_OK);
        assert_int_equal(task_prompt_at(SEED, TASK_SPLIT_TRAIN, i, &b), ERR_OK);
        assert_int_equal(task_prompt_at(SEED + 1, TASK_SPLIT_TRAIN, i, &c), ERR_OK);
        assert_memory_equal(&a, &b, sizeof(a));
        differs = differs || strcmp(a.text, c.text) != 0;
    }
    assert_true(differs);
    struct task_prompt *s1, *s2;
    assert_int_equal(task_prompt_set(SEED, TASK_SPLIT_EVAL, 200, &s1), ERR_OK);
    assert_int_equal(task_prompt_set(SEED, TASK_SPLIT_EVAL, 200, &s2), ERR_OK);
    assert_memory_equal(s1, s2, 200 * sizeof(*s1));
    free(s1);
    free(s2);
}

static void test_families_rotate_with_the_index(void **state)
{
    (void)state;
    for (uint64_t i = 0; i < 70; i++) {
        struct task_prompt p;
        assert_int_equal(task_prompt_at(7, TASK_SPLIT_EVAL, i, &p), ERR_OK);
        assert_int_equal(p.family, (int)(i % TASK_FAMILY_COUNT));
        assert_int_equal(p.split, TASK_SPLIT_EVAL);
    }
    struct task_prompt p;
    assert_int_equal(task_prompt_at(7, TASK_SPLIT_UNKNOWN, 0, &p), ERR_INVAL);
    assert_int_equal(task_prompt_at(7, TASK_SPLIT_TRAIN, 0, NULL), ERR_INVAL);
}

static bool has_problem(const struct task_prompt *set, size_t n, uint64_t problem)
{
    for (size_t i = 0; i < n; i++)
        if (set[i].problem == problem)
            return true;
    return false;
}

static void test_train_and_eval_never_share_a_problem(void **state)
{
    (void)state;
    enum { NT = 4000, NE = 800 };
    struct task_prompt *train, *eval;
    assert_int_equal(task_prompt_set(SEED, TASK_SPLIT_TRAIN, NT, &train), ERR_OK);
    assert_int_equal(task_prompt_set(SEED, TASK_SPLIT_EVAL, NE, &eval), ERR_OK);
    /* Within a set, problems are distinct. */
    for (size_t i = 0; i < NE; i++)
        assert_false(has_problem(eval, i, eval[i].problem));
    for (size_t i = 0; i < NE; i++) {
        assert_int_equal(eval[i].split, TASK_SPLIT_EVAL);
        assert_int_equal(task_split_of(SEED, eval[i].problem), TASK_SPLIT_EVAL);
        assert_false(has_problem(train, NT, eval[i].problem));
        for (size_t j = 0; j < NT; j++)
            assert_string_not_equal(train[j].text, eval[i].text);
    }
    for (size_t j = 0; j < NT; j++)
        assert_int_equal(task_split_of(SEED, train[j].problem), TASK_SPLIT_TRAIN);
    /* The stream (with repeats) respects the split as well. */
    for (uint64_t i = 0; i < 2000; i++) {
        struct task_prompt p;
        assert_int_equal(task_prompt_at(SEED, TASK_SPLIT_TRAIN, i, &p), ERR_OK);
        assert_false(has_problem(eval, NE, p.problem));
    }
    free(train);
    free(eval);
}

static void test_eval_share_is_as_configured(void **state)
{
    (void)state;
    int eval = 0;
    for (uint64_t i = 0; i < 20000; i++)
        eval += task_split_of(99, i * 0x9e3779b97f4a7c15ull) == TASK_SPLIT_EVAL;
    double share = eval / 20000.0;
    assert_true(share > TASK_EVAL_PERMILLE / 1000.0 - 0.015);
    assert_true(share < TASK_EVAL_PERMILLE / 1000.0 + 0.015);
}

static void test_prompt_set_edge_cases(void **state)
{
    (void)state;
    struct task_prompt *s = (struct task_prompt *)1;
    assert_int_equal(task_prompt_set(SEED, TASK_SPLIT_TRAIN, 0, &s), ERR_OK);
    assert_null(s);
    assert_int_equal(task_prompt_set(SEED, TASK_SPLIT_UNKNOWN, 5, &s), ERR_INVAL);
}

/* Every generated prompt: short, parses back to itself, and its answer is right by an
 * independent computation from the numbers in the text. */
static void test_generated_prompts_are_well_formed(void **state)
{
    (void)state;
    int per_family[TASK_FAMILY_COUNT] = {0};
    int borrows = 0, carries = 0, zero_counts = 0;
    for (int split = 0; split < 2; split++) {
        for (uint64_t i = 0; i < 1400; i++) {
            struct task_prompt p, q;
            assert_int_equal(task_prompt_at(SEED, (enum task_split)split, i, &p), ERR_OK);
            assert_true(strlen(p.text) <= 80);
            assert_true(strlen(p.text) + strlen(p.answer) < 110);
            assert_int_equal(task_prompt_parse(p.text, &q), ERR_OK);
            assert_string_equal(q.id, p.id);
            assert_string_equal(q.answer, p.answer);
            assert_int_equal(q.family, p.family);
            assert_true(q.problem == p.problem);
            per_family[p.family]++;

            long long v[8] = {0}, ans = strtoll(p.answer, NULL, 10);
            int n = numbers_in(p.text, v, 8);
            switch (p.family) {
            case TASK_ADD:
                assert_int_equal(n, 2);
                assert_int_equal(ans, v[0] + v[1]);
                carries += (v[0] % 10 + v[1] % 10) >= 10;
                break;
            case TASK_SUB:
                assert_int_equal(n, 2);
                assert_int_equal(ans,
                                 strncmp(p.text, "Subtract", 8) == 0 ? v[1] - v[0] : v[0] - v[1]);
                assert_true(ans >= 0); /* a two-digit minus a one-digit number */
                borrows += ans % 10 > (ans + (v[0] < v[1] ? v[0] : v[1])) % 10;
                break;
            case TASK_COMPARE: {
                bool larger = strstr(p.text, "larger") || strstr(p.text, "bigger") ||
                              strstr(p.text, "greater");
                assert_int_equal(n, 2);
                assert_true(v[0] != v[1]);
                assert_int_equal(ans, larger == (v[0] > v[1]) ? v[0] : v[1]);
                break;
            }
            case TASK_SORT: {
                long long w[8] = {0};
                int m = numbers_in(p.answer, w, 8);
                assert_int_equal(m, n);
                assert_true(n >= 3 && n <= 5);
                bool desc = strstr(p.text, "desc") || strstr(p.text, "decr") ||
                            strstr(p.text, "largest to");
                for (int k = 0; k + 1 < m; k++)
                    assert_true(desc ? w[k] > w[k + 1] : w[k] < w[k + 1]);
                for (int k = 0; k < m; k++) { /* a permutation of the distinct inputs */
                    int hits = 0;
                    for (int j = 0; j < n; j++)
                        hits += w[k] == v[j];
                    assert_int_equal(hits, 1);
                }
                break;
            }
            case TASK_MAXMIN: {
                bool max = strstr(p.text, "larg") || strstr(p.text, "max") || strstr(p.text, "big");
                for (int k = 0; k < n; k++)
                    assert_true(max ? ans >= v[k] : ans <= v[k]);
                break;
            }
            case TASK_COUNT:
                assert_true(ans >= 0 && ans <= 8);
                zero_counts += ans == 0;
                break;
            case TASK_REVERSE: {
                size_t len = strlen(p.answer);
                char fwd[64];
                assert_true(len >= 3 && len < sizeof(fwd));
                for (size_t k = 0; k < len; k++)
                    fwd[k] = p.answer[len - 1 - k];
                fwd[len] = '\0';
                assert_non_null(strstr(p.text, fwd));
                break;
            }
            default:
                fail();
            }
        }
    }
    for (int f = 0; f < TASK_FAMILY_COUNT; f++)
        assert_int_equal(per_family[f], 400);
    assert_true(borrows > 100 && borrows < 300); /* of 400 subtractions */
    assert_true(carries > 100 && carries < 300); /* of 400 additions */
    assert_true(zero_counts > 10);               /* "how many z in banana": 0 */
}

static void test_phrasing_varies_within_a_family(void **state)
{
    (void)state;
    for (int f = 0; f < TASK_FAMILY_COUNT; f++) {
        char first_words[8][16];
        int distinct = 0;
        for (uint64_t i = (uint64_t)f; i < 700; i += TASK_FAMILY_COUNT) {
            struct task_prompt p;
            assert_int_equal(task_prompt_at(SEED, TASK_SPLIT_TRAIN, i, &p), ERR_OK);
            char w[16];
            snprintf(w, sizeof(w), "%.12s", p.text);
            bool seen = false;
            for (int k = 0; k < distinct; k++)
                seen = seen || strcmp(first_words[k], w) == 0;
            if (!seen && distinct < 8)
                snprintf(first_words[distinct++], 16, "%s", w);
        }
        assert_true(distinct >= 2);
    }
}

/* ------------------------------------------------------------------ checker: numbers */

static void test_check_terse_and_verbose_numbers(void **state)
{
    (void)state;
    assert_true(num_ok("47", "47"));
    assert_true(num_ok("47", "47."));
    assert_true(num_ok("47", "  47 \n"));
    assert_true(num_ok("47", "Answer: 47"));
    assert_true(num_ok("47", "answer=47"));
    assert_true(num_ok("47", "Let me add them: 12 plus 35 is 47. The answer is 47."));
    assert_true(num_ok("47", "12 + 35 = 47"));
    assert_true(num_ok("47", "The answer is **47**."));
    assert_false(num_ok("47", "48"));
    assert_false(num_ok("47", "Let me add them: 12 plus 35 is 47. The answer is 48."));
    assert_false(num_ok("47", "4 7"));
}

static void test_check_last_stated_answer_wins(void **state)
{
    (void)state;
    assert_true(num_ok("47", "The answer is 46. No wait, the answer is 47."));
    assert_false(num_ok("47", "The answer is 47. No wait, the answer is 46."));
    assert_true(num_ok("47", "I first thought 46, but it is 47"));
    /* The marker beats later numbers: the answer is what follows the last "answer". */
    assert_true(num_ok("47", "The answer is 47, because 12 + 35 makes it."));
    assert_true(num_ok("47", "The answer is 47. I added 12 and 35."));
    /* A marker with nothing after it falls back to the last number. */
    assert_true(num_ok("47", "12 plus 35 is 47, that is my answer."));
    assert_false(num_ok("47", "I do not know the answer."));
}

static void test_check_leading_zeros_are_accepted_by_value(void **state)
{
    (void)state;
    struct task_check c;
    assert_true(num_ok("47", "047"));
    assert_true(num_ok("47", "The answer is 0047."));
    assert_true(num_ok("-35", "-035"));
    assert_true(num_ok("0", "0"));
    assert_true(num_ok("0", "-0"));
    assert_true(num_ok("0", "000"));
    assert_int_equal(task_check_answer(TASK_KIND_NUMBER, "47", "047", 3, &c), ERR_OK);
    assert_string_equal(c.extracted, "47");
    assert_false(num_ok("47", "470"));
}

static void test_check_negative_numbers(void **state)
{
    (void)state;
    assert_true(num_ok("-35", "-35"));
    assert_true(num_ok("-35", "The answer is -35."));
    assert_true(num_ok("-35", "23 - 58 = -35"));
    assert_true(num_ok("-35", "(-35)"));
    assert_true(num_ok("-35", "\xe2\x88\x92"
                              "35")); /* U+2212 MINUS SIGN */
    assert_true(num_ok("35", "+35"));
    assert_false(num_ok("-35", "35"));
    assert_false(num_ok("35", "-35"));
    assert_false(num_ok("-35", "- 35"));     /* a detached dash is not a sign */
    assert_false(num_ok("-35", "58-35"));    /* nor one after a digit */
    assert_false(num_ok("-35", "minus 35")); /* answers are in digits */
}

static void test_check_decimals_and_overflow(void **state)
{
    (void)state;
    struct task_check c;
    assert_true(num_ok("47", "47.0"));
    assert_true(num_ok("47", "47.000."));
    assert_false(num_ok("47", "47.5"));
    assert_false(num_ok("47", "46.9"));
    const char *big = "The answer is 100000000000000000000000000047.";
    assert_int_equal(task_check_answer(TASK_KIND_NUMBER, "47", big, strlen(big), &c), ERR_OK);
    assert_true(c.found);
    assert_false(c.correct);
    assert_false(num_ok("1000", "1,000")); /* no thousands separators */
}

static void test_check_garbage_and_empty_are_incorrect(void **state)
{
    (void)state;
    struct task_check c;
    assert_int_equal(task_check_answer(TASK_KIND_NUMBER, "47", "", 0, &c), ERR_OK);
    assert_false(c.found);
    assert_false(c.correct);
    assert_string_equal(c.extracted, "");
    assert_int_equal(task_check_answer(TASK_KIND_NUMBER, "47", NULL, 0, &c), ERR_OK);
    assert_false(c.correct);
    assert_false(num_ok("47", "banana"));
    assert_false(num_ok("47", "forty-seven"));
    assert_false(word_ok("tenalp", "47"));
    assert_false(list_ok("1, 2, 3", "one two three"));
    /* Arbitrary bytes, NULs included: no crash, not correct. */
    unsigned char junk[512];
    uint64_t x = 42;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof(junk); i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            junk[i] = (unsigned char)(x >> 56);
        }
        size_t len = (size_t)(x % sizeof(junk));
        for (int k = 0; k < 3; k++) {
            static const char *const refs[] = {"123456789", "91, 92, 93", "qqqqqqqq"};
            assert_int_equal(
                task_check_answer((enum task_kind)k, refs[k], (const char *)junk, len, &c), ERR_OK);
            assert_false(c.correct);
            assert_true(strlen(c.extracted) < sizeof(c.extracted));
        }
    }
    /* A response with a NUL inside is read to its length, not to the NUL. */
    assert_int_equal(task_check_answer(TASK_KIND_NUMBER, "47", "46\0 47", 6, &c), ERR_OK);
    assert_true(c.correct);
}

static void test_check_rejects_bad_references(void **state)
{
    (void)state;
    struct task_check c;
    assert_int_equal(task_check_answer(TASK_KIND_NUMBER, "abc", "1", 1, &c), ERR_INVAL);
    assert_int_equal(task_check_answer(TASK_KIND_NUMBER, "4.5", "1", 1, &c), ERR_INVAL);
    assert_int_equal(task_check_answer(TASK_KIND_LIST, "7", "7", 1, &c), ERR_INVAL);
    assert_int_equal(task_check_answer(TASK_KIND_WORD, "two words", "x", 1, &c), ERR_INVAL);
    assert_int_equal(task_check_answer(TASK_KIND_NUMBER, NULL, "1", 1, &c), ERR_INVAL);
    assert_int_equal(task_check_answer(TASK_KIND_NUMBER, "1", NULL, 3, &c), ERR_INVAL);
    assert_int_equal(task_check_answer((enum task_kind)9, "1", "1", 1, &c), ERR_INVAL);
    enum task_kind k;
    assert_int_equal(task_kind_of_answer("-35", &k), ERR_OK);
    assert_int_equal(k, TASK_KIND_NUMBER);
    assert_int_equal(task_kind_of_answer("7, 19, 42", &k), ERR_OK);
    assert_int_equal(k, TASK_KIND_LIST);
    assert_int_equal(task_kind_of_answer("tenalp", &k), ERR_OK);
    assert_int_equal(k, TASK_KIND_WORD);
    assert_int_equal(task_kind_of_answer("two words", &k), ERR_INVAL);
    assert_int_equal(task_kind_of_answer("", &k), ERR_INVAL);
}

/* ------------------------------------------------------------------ checker: lists, words */

static void test_check_lists(void **state)
{
    (void)state;
    struct task_check c;
    assert_true(list_ok("7, 19, 42", "7, 19, 42"));
    assert_true(list_ok("7, 19, 42", "7 19 42"));
    assert_true(list_ok("7, 19, 42", "7,19,42"));
    assert_true(list_ok("7, 19, 42", "[7, 19, 42]"));
    assert_true(list_ok("7, 19, 42", "7, 19 and 42."));
    assert_true(list_ok("7, 19, 42", "007; 19; 42"));
    assert_true(list_ok("7, 19, 42", "Sorted from smallest to largest: 7, 19, 42."));
    assert_true(list_ok("7, 19, 42", "Putting 42, 7, 19 in order gives 7, 19, 42."));
    assert_true(list_ok("7, 19, 42",
                        "Putting 42, 7, 19 in order gives 7, 42, 19. The answer is 7, 19, 42."));
    assert_true(list_ok("-3, 0, 5", "-3, 0, 5"));
    assert_false(list_ok("7, 19, 42", "7, 42, 19"));
    assert_false(list_ok("7, 19, 42", "42, 19, 7"));
    assert_false(list_ok("7, 19, 42", "7, 19"));
    assert_false(list_ok("7, 19, 42", "7, 19, 42, 50"));
    assert_false(list_ok("7, 19, 42", "7, 19.5, 42"));
    assert_false(list_ok("7, 19, 42", "The answer is 7, 19, 42, 8, 9, 10, 11, 12, 13, 14"));
    assert_false(list_ok("7, 19, 42", "7. 19. 42."));
    const char *r = "The answer is 7 19 42.";
    assert_int_equal(task_check_answer(TASK_KIND_LIST, "7, 19, 42", r, strlen(r), &c), ERR_OK);
    assert_string_equal(c.extracted, "7, 19, 42");
}

static void test_check_words(void **state)
{
    (void)state;
    struct task_check c;
    assert_true(word_ok("tenalp", "tenalp"));
    assert_true(word_ok("tenalp", "TENALP"));
    assert_true(word_ok("tenalp", "'Tenalp'."));
    assert_true(word_ok("tenalp", "The answer is tenalp."));
    assert_true(word_ok("tenalp", "The answer is: \"tenalp\""));
    assert_true(word_ok("tenalp", "The answer would be tenalp"));
    assert_true(word_ok("tenalp", "The reverse of planet is tenalp."));
    assert_true(word_ok("tenalp", "The letters of planet backwards are t-e-n-a-l-p, so the answer "
                                  "is tenalp."));
    assert_false(word_ok("tenalp", "planet"));
    assert_false(word_ok("tenalp", "tenal"));
    assert_false(word_ok("tenalp", "tenalps"));
    assert_false(word_ok("tenalp", "The answer is tenapl."));
    const char *r = "The answer is TenALP!";
    assert_int_equal(task_check_answer(TASK_KIND_WORD, "tenalp", r, strlen(r), &c), ERR_OK);
    assert_string_equal(c.extracted, "tenalp");
}

static void test_check_with_prompt_records(void **state)
{
    (void)state;
    struct task_prompt p;
    struct task_check c;
    assert_int_equal(
        task_prompt_parse("How many times does the letter r appear in strawberry?", &p), ERR_OK);
    const char *r = "The letter r appears 3 times.";
    assert_int_equal(task_check(&p, r, strlen(r), &c), ERR_OK);
    assert_true(c.correct);
    assert_string_equal(c.extracted, "3");
    assert_int_equal(task_check(&p, "three", 5, &c), ERR_OK);
    assert_false(c.correct);
    struct task_prompt q = p;
    memset(q.answer, '7', sizeof(q.answer)); /* no NUL */
    assert_int_equal(task_check(&q, "3", 1, &c), ERR_INVAL);
    p.family = TASK_FAMILY_COUNT;
    assert_int_equal(task_check(&p, "3", 1, &c), ERR_INVAL);
    assert_int_equal(task_check(NULL, "3", 1, &c), ERR_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_names_round_trip),
        cmocka_unit_test(test_known_prompts_parse_to_their_answers),
        cmocka_unit_test(test_parse_rejects_other_text),
        cmocka_unit_test(test_parse_finds_a_prompt_inside_a_chat_template),
        cmocka_unit_test(test_phrasings_of_one_problem_share_the_problem_hash),
        cmocka_unit_test(test_same_seed_gives_same_prompts),
        cmocka_unit_test(test_families_rotate_with_the_index),
        cmocka_unit_test(test_train_and_eval_never_share_a_problem),
        cmocka_unit_test(test_eval_share_is_as_configured),
        cmocka_unit_test(test_prompt_set_edge_cases),
        cmocka_unit_test(test_generated_prompts_are_well_formed),
        cmocka_unit_test(test_phrasing_varies_within_a_family),
        cmocka_unit_test(test_check_terse_and_verbose_numbers),
        cmocka_unit_test(test_check_last_stated_answer_wins),
        cmocka_unit_test(test_check_leading_zeros_are_accepted_by_value),
        cmocka_unit_test(test_check_negative_numbers),
        cmocka_unit_test(test_check_decimals_and_overflow),
        cmocka_unit_test(test_check_garbage_and_empty_are_incorrect),
        cmocka_unit_test(test_check_rejects_bad_references),
        cmocka_unit_test(test_check_lists),
        cmocka_unit_test(test_check_words),
        cmocka_unit_test(test_check_with_prompt_records),
    };
    return cmocka_run_group_tests_name("task", tests, NULL, NULL);
}
