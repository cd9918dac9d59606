/* sample.c - batched generation with a KV cache; token selection by a heap over the vocabulary. */
#include "sample.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"

/* Max-heap of ids ordered by p[id]. */
static void sift_down(int *h, int n, int i, const float *p)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, big = i;
        if (l < n && p[h[l]] > p[h[big]])
            big = l;
        if (r < n && p[h[r]] > p[h[big]])
            big = r;
        if (big == i)
            return;
        int t = h[i];
        h[i] = h[big];
        h[big] = t;
        i = big;
    }
}

int nn_sample_logits(const float *logits, int V, float temperature, int top_k, float top_p,
                     uint64_t *rng, float *probs, int *idx)
{
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best])
            best = v;
    if (!(temperature > 0.0f) || top_k == 1)
        return best;
    float mx = logits[best], inv = 1.0f / temperature;
    double sum = 0.0;
    for (int v = 0; v < V; v++) {
        probs[v] = expf((logits[v] - mx) * inv);
        sum += probs[v];
    }
    bool use_p = top_p > 0.0f && top_p<1.0f, use_k = top_k> 0 && top_k < V;
    float u = nn_rng_uniform(rng);
    if (!use_p && !use_k) {
        double target = u * sum, cum = 0.0;
        for (int v = 0; v < V; v++) {
            cum += probs[v];
            if (cum > target)
                return v;
        }
        return best;
    }
    /* Pop the most likely tokens off a heap (O(V) to build, O(log V) per pop): popped ids land
     * at the tail of idx, most likely first at idx[V - 1]. */
    for (int v = 0; v < V; v++)
        idx[v] = v;
    for (int i = V / 2 - 1; i >= 0; i--)
        sift_down(idx, V, i, probs);
    int n = V, popped = 0, limit = use_k ? top_k : V;
    double cum = 0.0, thr = use_p ? top_p * sum : sum;
    while (n > 0 && popped < limit) {
        int top = idx[0];
        idx[0] = idx[n - 1];
        idx[n - 1] = top;
        n--;
        sift_down(idx, n, 0, probs);
        popped++;
        cum += probs[top];
        if (!use_k && cum >= thr)
            break;
    }
    int keep = popped;
    if (use_k && use_p) { /* top-p within the renormalized top-k, as Hugging Face */
        double thr_k = top_p * cum, c = 0.0;
        for (keep = 0; keep < popped;) {
            c += probs[idx[V - 1 - keep]];
            keep++;
            if (c >= thr_k)
                break;
        }
        cum = c;
    }
    double target = u * cum, c = 0.0;
    for (int i = 0; i < keep; i++) {
        int id = idx[V - 1 - i];
        c += probs[id];
        if (c > target)
            return id;
    }
    return idx[V - keep];
}

/* Whether needle [nl > 0] occurs in hay [hl] (memmem is a GNU extension). */
static bool contains(const char *hay, size_t hl, const char *needle, size_t nl)
{
    for (size_t i = 0; i + nl <= hl; i++)
        if (hay[i] == needle[0] && !memcmp(hay + i, needle, nl))
            return true;
    return false;
}

/* Append token bytes to row state and report whether a stop string now occurs. tail holds the
 * last (maxstop - 1) bytes of the text before this token. */
static bool stop_hit(const struct nn_sample_opts *o, int id, char *tail, size_t *tail_len,
                     size_t maxstop, char **win, size_t *win_cap)
{
    size_t len = 0;
    const char *bytes = o->token_bytes(o->token_ctx, id, &len);
    if (!bytes)
        len = 0;
    size_t need = *tail_len + len;
    if (need == 0)
        return false;
    if (need > *win_cap) {
        char *p = realloc(*win, need);
        if (!p)
            return false; /* out of memory: no stop detection for this token */
        *win = p;
        *win_cap = need;
    }
    memcpy(*win, tail, *tail_len);
    if (len)
        memcpy(*win + *tail_len, bytes, len);
    bool hit = false;
    for (int s = 0; s < o->nstop && !hit; s++)
        hit = contains(*win, need, o->stop[s], strlen(o->stop[s]));
    size_t keep = maxstop - 1 < need ? maxstop - 1 : need;
    memcpy(tail, *win + need - keep, keep);
    *tail_len = keep;
    return hit;
}

int nn_sample(nn_model_t *m, int B, const int *const *prompts, const int *prompt_lens,
              const struct nn_sample_opts *o, int *tokens, int *ntok, int *finish)
{
    return nn_sample_logp(m, B, prompts, prompt_lens, o, tokens, ntok, finish, NULL);
}

int nn_sample_logp(nn_model_t *m, int B, const int *const *prompts, const int *prompt_lens,
                   const struct nn_sample_opts *o, int *tokens, int *ntok, int *finish,
                   double *logprob)
{
    if (B < 1 || !prompts || !prompt_lens || !o || !tokens || !ntok || o->max_new_tokens < 1 ||
        o->nstop < 0 || (o->nstop > 0 && (!o->stop || !o->token_bytes)))
        return ERR_INVAL;
    const struct nn_config *cfg = nn_model_config(m);
    int V = cfg->vocab_size, Tmax = cfg->max_position_embeddings, maxp = 0, N = o->max_new_tokens;
    size_t maxstop = 1;
    for (int s = 0; s < o->nstop; s++) {
        if (!o->stop[s] || !o->stop[s][0])
            return ERR_INVAL;
        size_t l = strlen(o->stop[s]);
        maxstop = l > maxstop ? l : maxstop;
    }
    for (int b = 0; b < B; b++) {
        if (prompt_lens[b] < 1 || !prompts[b])
            return ERR_INVAL;
        if (prompt_lens[b] >= Tmax)
            return ERR_TOOBIG;
        maxp = prompt_lens[b] > maxp ? prompt_lens[b] : maxp;
    }
    int Tc = maxp + N < Tmax ? maxp + N : Tmax;
    nn_kv_cache_t *kc = NULL;
    int rc = nn_kv_cache_new(&kc, m, B, Tc);
    if (rc)
        return rc;
    float *logits = malloc(((size_t)B + 1) * V * sizeof(float));
    int *idx = malloc((size_t)V * sizeof(int));
    int *feed = malloc((size_t)B * maxp * sizeof(int));
    int *counts = malloc((size_t)B * 2 * sizeof(int));
    uint64_t *rng = malloc((size_t)B * sizeof(uint64_t));
    char *tails = malloc((size_t)B * maxstop);
    size_t *tail_len = calloc((size_t)B, sizeof(size_t));
    char *win = NULL;
    size_t win_cap = 0;
    if (!logits || !idx || !feed || !counts || !rng || !tails || !tail_len) {
        rc = ERR_NOMEM;
        goto out;
    }
    float *probs = logits + (size_t)B * V;
    int *active = counts + B;
    for (int b = 0; b < B; b++) {
        memcpy(feed + (size_t)b * maxp, prompts[b], (size_t)prompt_lens[b] * sizeof(int));
        counts[b] = prompt_lens[b];
        active[b] = 1;
        ntok[b] = 0;
        if (finish)
            finish[b] = NN_FINISH_LENGTH;
        rng[b] = o->seed ^ (0xd1b54a32d192ed03ULL * (uint64_t)(b + 1));
        if (logprob)
            logprob[b] = 0.0;
    }
    rc = nn_model_decode(m, kc, feed, counts, maxp, logits);
    while (!rc) {
        int nact = 0;
        for (int b = 0; b < B; b++) {
            counts[b] = 0;
            if (!active[b])
                continue;
            const float *lg = logits + (size_t)b * V;
            int id =
                nn_sample_logits(lg, V, o->temperature, o->top_k, o->top_p, &rng[b], probs, idx);
            if (logprob) /* temperature 1, the full vocabulary: the policy's own probability */
                logprob[b] += (double)lg[id] - (double)nn_logsumexp(lg, V);
            tokens[(size_t)b * N + ntok[b]++] = id;
            int why = -1;
            if (id == o->eos_token_id)
                why = NN_FINISH_EOS;
            else if (o->nstop > 0 && stop_hit(o, id, tails + (size_t)b * maxstop, &tail_len[b],
                                              maxstop, &win, &win_cap))
                why = NN_FINISH_STOP;
            else if (ntok[b] == N || prompt_lens[b] + ntok[b] > Tc)
                why = NN_FINISH_LENGTH; /* no room to feed this token */
            if (why >= 0) {
                active[b] = 0;
                if (finish)
                    finish[b] = why;
                continue;
            }
            feed[b] = id;
            counts[b] = 1;
            nact++;
        }
        if (!nact)
            break;
        rc = nn_model_decode(m, kc, feed, counts, 1, logits);
    }
out:
    nn_kv_cache_destroy(&kc);
    free(logits);
    free(idx);
    free(feed);
    free(counts);
    free(rng);
    free(tails);
    free(tail_len);
    free(win);
    return rc;
}
