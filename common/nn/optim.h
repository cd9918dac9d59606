/* optim.h - AdamW with decoupled weight decay, gradient clipping by global norm, gradient
 * scaling for accumulation, and learning-rate schedules (warm-up then constant, cosine,
 * inverse square root). Works on flat float arrays (nn_model_params / nn_model_grads).
 *
 * Gradient accumulation: nn_model_backward adds to the gradients, so k micro-batches are k
 * backward calls after one nn_model_zero_grad, each with the loss of its micro-batch; then
 * nn_grad_scale(g, n, 1/k) (or losses already divided by k), nn_grad_clip, nn_adamw_step.
 * Not for: saving the state to disk (checkpoint.h). */
#ifndef NN_OPTIM_H
#define NN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>

struct nn_adamw_opts {
    float beta1;        /* 0.9 */
    float beta2;        /* 0.999 (0.95 for the reward models of the paper) */
    float eps;          /* 1e-8 (1e-6 for the reward models) */
    float weight_decay; /* decoupled: p -= lr * wd * p, on the parameters marked for decay */
};

typedef struct nn_adamw nn_adamw_t;

/* State for n parameters, every one marked for decay, step 0. NULL if out of memory. */
nn_adamw_t *nn_adamw_new(size_t n);
void nn_adamw_destroy(nn_adamw_t **o);
/* Exclude (or include again) parameters [off, off + n) from weight decay: norms and, by
 * convention, embeddings. ERR_INVAL if the range is out of bounds. */
int nn_adamw_set_decay(nn_adamw_t *o, size_t off, size_t n, bool decay);
/* One update with learning rate lr:
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 * and, for decayed parameters, p -= lr wd p (before the Adam update, as torch.optim.AdamW).
 * ERR_INVAL on n != the state's size or a bad option (beta outside [0, 1), eps <= 0). */
int nn_adamw_step(nn_adamw_t *o, float *params, const float *grads, size_t n, float lr,
                  const struct nn_adamw_opts *opts);
/* The state, for checkpoints: *m, *v [n] borrowed until destroy; the step count. */
size_t nn_adamw_size(const nn_adamw_t *o);
float *nn_adamw_m(nn_adamw_t *o);
float *nn_adamw_v(nn_adamw_t *o);
long nn_adamw_steps(const nn_adamw_t *o);
void nn_adamw_set_steps(nn_adamw_t *o, long t);

/* Clipping and the step in one: the same parameters and moments, bit for bit, as
 * nn_grad_clip(grads, n, max_norm) (max_norm <= 0: no clipping) then nn_adamw_step, with one
 * pass over memory fewer; grads are read, not scaled. *norm (may be NULL) = the global norm
 * before clipping. ERR_INVAL as nn_adamw_step. */
int nn_adamw_step_clip(nn_adamw_t *o, float *params, const float *grads, size_t n, float lr,
                       float max_norm, const struct nn_adamw_opts *opts, double *norm);

/* The global L2 norm of g [n] (accumulated in fp64). */
double nn_grad_norm(const float *g, size_t n);
/* If the global norm exceeds max_norm > 0, scale g by max_norm / norm. Returns the norm before
 * clipping (for logging). */
double nn_grad_clip(float *g, size_t n, float max_norm);
/* g *= s */
void nn_grad_scale(float *g, size_t n, float s);

enum nn_sched_kind {
    NN_SCHED_CONSTANT = 0, /* linear warm-up, then lr */
    NN_SCHED_COSINE,       /* linear warm-up, then cosine from lr to min_lr at total_steps */
    NN_SCHED_INVSQRT,      /* linear warm-up, then lr * sqrt(warmup / (step + 1)) */
};

struct nn_sched {
    enum nn_sched_kind kind;
    float lr;         /* peak */
    float min_lr;     /* cosine floor */
    long warmup;      /* steps of linear warm-up from lr / warmup to lr (0: none) */
    long total_steps; /* cosine length, warm-up included */
};

/* The learning rate of step `step` (0-based). */
float nn_sched_lr(const struct nn_sched *s, long step);

#endif /* NN_OPTIM_H */
