/* optim.c - AdamW, clipping, schedules. */
#include "optim.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct nn_adamw {
    size_t n;
    long t;
    float *m, *v;     /* [n] each, one allocation */
    uint8_t *nodecay; /* [n] 1 = no weight decay */
};

nn_adamw_t *nn_adamw_new(size_t n)
{
    nn_adamw_t *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->n = n;
    o->m = calloc(2 * (n ? n : 1), sizeof(float));
    o->nodecay = calloc(n ? n : 1, 1);
    if (!o->m || !o->nodecay) {
        nn_adamw_destroy(&o);
        return NULL;
    }
    o->v = o->m + n;
    return o;
}

void nn_adamw_destroy(nn_adamw_t **op)
{
    if (!op || !*op)
        return;
    free((*op)->m);
    free((*op)->nodecay);
    free(*op);
    *op = NULL;
}

int nn_adamw_set_decay(nn_adamw_t *o, size_t off, size_t n, bool decay)
{
    if (off > o->n || n > o->n - off)
        return ERR_INVAL;
    memset(o->nodecay + off, decay ? 0 : 1, n);
    return ERR_OK;
}

/* The build targets baseline x86-64; with GCC on x86-64 the update is also compiled for AVX2 and
 * AVX-512, picked at load time by the CPU's features. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NN_VEC __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NN_VEC
#endif

/* One AdamW update of n parameters; c1, c2 the bias corrections 1 / (1 - beta^t). */
NN_VEC static void adamw_range(float *p, const float *g, float gs, float *m, float *v,
                               const uint8_t *nd, size_t n, float b1, float b2, float eps, float lr,
                               float wd, float c1, float c2)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * gs; /* as the gradient scaled in place first: gs 1 is exact */
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float pi = p[i] - (nd[i] ? 0.0f : wd) * p[i]; /* arithmetic, not a select: vectorizes */
        p[i] = pi - lr * (mi * c1) / (sqrtf(vi * c2) + eps);
    }
}

/* One AdamW step on the gradients times gs. */
static int adamw_update(nn_adamw_t *o, float *params, const float *grads, float gs, size_t n,
                        float lr, const struct nn_adamw_opts *opts)
{
    if (n != o->n || !opts || !(opts->beta1 >= 0.0f && opts->beta1 < 1.0f) ||
        !(opts->beta2 >= 0.0f && opts->beta2 < 1.0f) || !(opts->eps > 0.0f))
        return ERR_INVAL;
    o->t++;
    float b1 = opts->beta1, b2 = opts->beta2, eps = opts->eps, wd = lr * opts->weight_decay;
    float bc1 = (float)(1.0 / (1.0 - pow(b1, (double)o->t)));
    float bc2 = (float)(1.0 / (1.0 - pow(b2, (double)o->t)));
    size_t chunk = 1u << 16;
#pragma omp parallel for schedule(static)
    for (size_t c0 = 0; c0 < n; c0 += chunk) {
        size_t end = c0 + chunk < n ? c0 + chunk : n;
        adamw_range(params + c0, grads + c0, gs, o->m + c0, o->v + c0, o->nodecay + c0, end - c0,
                    b1, b2, eps, lr, wd, bc1, bc2);
    }
    return ERR_OK;
}

int nn_adamw_step(nn_adamw_t *o, float *params, const float *grads, size_t n, float lr,
                  const struct nn_adamw_opts *opts)
{
    return adamw_update(o, params, grads, 1.0f, n, lr, opts);
}

int nn_adamw_step_clip(nn_adamw_t *o, float *params, const float *grads, size_t n, float lr,
                       float max_norm, const struct nn_adamw_opts *opts, double *norm)
{
    if (n != o->n)
        return ERR_INVAL;
    double nr = nn_grad_norm(grads, n);
    if (norm)
        *norm = nr;
    /* nn_grad_clip's factor, applied inside the update's pass instead of a pass of its own */
    float gs = max_norm > 0.0f && nr > max_norm ? (float)(max_norm / nr) : 1.0f;
    return adamw_update(o, params, grads, gs, n, lr, opts);
}

size_t nn_adamw_size(const nn_adamw_t *o)
{
    return o->n;
}

float *nn_adamw_m(nn_adamw_t *o)
{
    return o->m;
}

float *nn_adamw_v(nn_adamw_t *o)
{
    return o->v;
}

long nn_adamw_steps(const nn_adamw_t *o)
{
    return o->t;
}

void nn_adamw_set_steps(nn_adamw_t *o, long t)
{
    o->t = t;
}

/* sum of g[i]^2 in double: vectorized (8 doubles a lane set on AVX-512); the scalar loop was
 * compute-bound, 4x slower than the memory-bound scaling pass after it */
NN_VEC static double sum_squares(const float *g, size_t n)
{
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * (double)g[i];
    return s;
}

double nn_grad_norm(const float *g, size_t n)
{
    size_t chunk = 1u << 16;
    double s = 0.0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t c0 = 0; c0 < n; c0 += chunk)
        s += sum_squares(g + c0, c0 + chunk < n ? chunk : n - c0);
    return sqrt(s);
}

double nn_grad_clip(float *g, size_t n, float max_norm)
{
    double norm = nn_grad_norm(g, n);
    if (max_norm > 0.0f && norm > max_norm)
        nn_grad_scale(g, n, (float)(max_norm / norm));
    return norm;
}

void nn_grad_scale(float *g, size_t n, float s)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        g[i] *= s;
}

float nn_sched_lr(const struct nn_sched *s, long step)
{
    if (step < 0)
        step = 0;
    if (s->warmup > 0 && step < s->warmup)
        return s->lr * (float)(step + 1) / (float)s->warmup;
    switch (s->kind) {
    case NN_SCHED_COSINE: {
        long span = s->total_steps - s->warmup;
        if (span <= 0 || step >= s->total_steps)
            return s->min_lr;
        double frac = (double)(step - s->warmup) / (double)span;
        return (float)(s->min_lr + 0.5 * (s->lr - s->min_lr) * (1.0 + cos(M_PI * frac)));
    }
    case NN_SCHED_INVSQRT: {
        long w = s->warmup > 0 ? s->warmup : 1;
        return (float)(s->lr * sqrt((double)w / (double)(step + 1 > w ? step + 1 : w)));
    }
    case NN_SCHED_CONSTANT:
        break;
    }
    return s->lr;
}
