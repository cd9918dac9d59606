/* loss.h - training losses on what the model computes, each with its gradient:
 *  - SFT: token cross-entropy over response tokens (prompt masked), from the per-sequence
 *    log-prob sums and token counts of nn_model_seq_logprobs;
 *  - the DPO family on sequence log-prob SUMS (not length-averaged) of chosen and rejected
 *    responses under the policy and a frozen reference: DPO, IPO, SLiC hinge, cDPO, robust DPO,
 *    soft target (formulas: shared/ALGORITHMS.md);
 *  - reward-model Bradley-Terry with per-pair margin, label smoothing, soft targets and reward
 *    centering;
 *  - the contrastive losses of reward modeling (SimCSE, SwAV with its Sinkhorn-Knopp codes) on
 *    the last token's final hidden state of two dropout views.
 * Every loss is the MEAN over the batch; gradients are of that mean. Inputs are fp32, the
 * arithmetic fp64. Not for: running the model (model.h). */
#ifndef NN_LOSS_H
#define NN_LOSS_H

#include <stddef.h>

/* Cross-entropy per response token: loss = -sum_b logp[b] / denom, dlogp[b] = -1 / denom (feed
 * to nn_model_backward). denom <= 0: sum_b ntok[b], the batch's mean. A fixed denom (B times the
 * data's mean response tokens) weighs every token alike across batches; the batch's own count
 * weighs the tokens of a batch of short responses more than those of a batch of long ones, which
 * with length-sorted batches teaches a model to answer shorter than its data. ERR_INVAL if no
 * response token. */
int nn_loss_sft(int B, const float *logp, const int *ntok, double denom, float *dlogp,
                double *loss);

enum nn_pref_kind {
    NN_PREF_DPO = 0, /* -log s(b h) */
    NN_PREF_IPO,     /* (h - 1/(2b))^2, h on sums */
    NN_PREF_SLIC,    /* max(0, 1 - b h) */
    NN_PREF_CDPO,    /* -(1-e) log s(b h) - e log s(-b h) */
    NN_PREF_ROBUST,  /* [-(1-e) log s(b h) + e log s(-b h)] / (1 - 2e) */
    NN_PREF_SOFT,    /* -t log s(b h) - (1-t) log s(-b h), t per pair */
};

struct nn_pref_opts {
    enum nn_pref_kind kind;
    float beta; /* b: DPO 0.1, IPO 1.0, SLiC 0.002 with sums */
    float eps;  /* label smoothing e of cDPO and robust DPO, in [0, 0.5) */
};

/* Batch means: implicit rewards b (log pi - log pi_ref) of chosen and rejected, their margin,
 * accuracy (fraction with chosen reward > rejected reward), the loss. */
struct nn_pref_stats {
    double loss;
    double reward_chosen;
    double reward_rejected;
    double margin;
    double accuracy;
};

/* The preference loss over N pairs: h_i = (lp_c - ref_c) - (lp_r - ref_r). `target` [N]: the
 * soft target t_i of NN_PREF_SOFT (required for it, ignored by the others). Writes
 * dlp_c[i] = d loss / d lp_c[i] and dlp_r[i] (= -dlp_c[i]); either may be NULL when only the
 * value is wanted. `st` may be NULL. ERR_INVAL on N < 1, beta <= 0, eps outside its range, a
 * target outside [0, 1], or a missing target. */
int nn_loss_pref(const struct nn_pref_opts *o, int N, const float *lp_c, const float *lp_r,
                 const float *ref_c, const float *ref_r, const float *target, float *dlp_c,
                 float *dlp_r, struct nn_pref_stats *st);

struct nn_rm_opts {
    float label_smoothing; /* a: target 1 - a for pairs without an explicit target */
    float center;          /* c: + c mean((r_c + r_r)^2); 0 = off (paper 0.01) */
};

struct nn_rm_stats {
    double loss;
    double accuracy; /* fraction with r_c > r_r */
    double reward_chosen, reward_rejected, margin;
};

/* Bradley-Terry over N pairs with d_i = r_c - r_r - m_i (m_i = margin[i], or 0 if margin is
 * NULL) and target t_i (target[i], or 1 - label_smoothing if target is NULL):
 * loss = mean_i [-t_i log s(d_i) - (1 - t_i) log s(-d_i)] + c mean_i (r_c + r_r)^2.
 * Writes d loss / d r_c and d r_r (either may be NULL); `st` may be NULL. ERR_INVAL on N < 1 or
 * a target or smoothing outside [0, 1]. */
int nn_loss_rm(const struct nn_rm_opts *o, int N, const float *r_c, const float *r_r,
               const float *margin, const float *target, float *dr_c, float *dr_r,
               struct nn_rm_stats *st);

/* --- contrastive reward modeling (Secrets of RLHF Part II; shared/ALGORITHMS.md) ---
 *
 * The features are h = nn_model_last_hidden of two forwards of the same batch with dropout
 * (nn_fwd_opts.dropout, two seeds): h and h2, [n, D] each. The gradients d loss / d h and d h2
 * go back through nn_bwd_in.dlast_hidden of the matching forward; SwAV's prototype gradient
 * goes to the caller's optimizer. The caller adds beta * loss to the reward-model loss of both
 * views (paper beta: SimCSE 1; SwAV 0.5 on differences, 0.1 on responses).
 *
 * Features are compared by direction: each instance x becomes u = x / max(|x|, NN_CL_NORM_EPS)
 * (torch.nn.functional.normalize with that eps). A zero feature (say h(y+) - h(y-) of a pair of
 * identical responses without dropout) thus has cosine 0 with everything and the loss stays
 * finite, never NaN; below the clamp its gradient is the gradient on u divided by the eps
 * (finite but some 1e6 times larger than a normal feature's: such a pair is best left out).
 *
 * These run plain fp64 loops on one thread (O(n^2 D) for SimCSE, O(n K D) for SwAV), no BLAS:
 * at n = 32 (a batch of 16 pairs), D = 256, K = 50 they take about 0.3 ms (SimCSE) and 0.6 ms
 * (SwAV) with loss and gradients (test_nn_loss prints the timing), far below the forwards. */

#define NN_CL_NORM_EPS 1e-6 /* the clamp on a feature's L2 norm before normalising */

/* What one instance of a contrastive loss is, given the features h [n, D] of n sequences. */
enum nn_cl_mode {
    NN_CL_RESPONSES = 0, /* each row of h is an instance: h(y+) and h(y-) alike; any n */
    NN_CL_DIFFERENCES,   /* rows [0, B) of h are h(y+) of B pairs and rows [B, 2B) h(y-) of the
                            same pairs (n = 2B); the instances are h(y+) - h(y-) and its
                            negation (nn_cl_instances), 2B of them */
};

struct nn_simcse_opts {
    enum nn_cl_mode mode;
    float temperature; /* tau > 0 (paper 0.05) */
};

struct nn_swav_opts {
    enum nn_cl_mode mode;
    int K;             /* prototypes >= 1 (paper: 20 on differences, 50 on responses) */
    float temperature; /* tau > 0 of the predicted assignment softmax(p / tau) (paper 0.1) */
    float epsilon;     /* > 0: the codes are Sinkhorn-Knopp of exp(p / epsilon) (paper 0.05) */
    int iterations;    /* Sinkhorn-Knopp iterations >= 1 (paper 3) */
};

/* The 2B instances x [2B, D] of B pairs from their chosen and rejected features hc, hr [B, D]:
 * [hc; hr] (NN_CL_RESPONSES) or [hc - hr; hr - hc] (NN_CL_DIFFERENCES). For a caller whose
 * chosen and rejected rows are not one block each; the losses call it on their own. May run in
 * place (x == hc and hr == hc + B * D). ERR_INVAL on B or D < 1, a NULL array, a bad mode. */
int nn_cl_instances(enum nn_cl_mode mode, int B, int D, const float *hc, const float *hr, float *x);

/* The chain rule back through nn_cl_instances: from dx [2B, D] = d loss / d x, WRITES
 * dhc, dhr [B, D] = d loss / d hc, d hr. May run in place (dhc == dx and dhr == dx + B * D).
 * ERR_INVAL as nn_cl_instances. */
int nn_cl_instances_backward(enum nn_cl_mode mode, int B, int D, const float *dx, float *dhc,
                             float *dhr);

/* Bytes of scratch nn_loss_simcse (K = 0) or nn_loss_swav (K prototypes) needs for n features
 * of D, either mode; 0 on a size below 1 (K below 0) or one too large to count. */
size_t nn_cl_work_size(int n, int D, int K);

/* SimCSE, InfoNCE over the batch. With x_i, x2_i the i-th instance of each view (o->mode) and
 * u = x / max(|x|, NN_CL_NORM_EPS):
 *   loss = mean_i -log[ exp(u_i . u2_i / tau) / sum_j exp(u_i . u2_j / tau) ]
 * (an instance's positive is its other view, its negatives the other instances of the second
 * view). Writes dh, dh2 [n, D] = d loss / d h, d h2, in h's layout (either may be NULL) and
 * *loss (may be NULL). `work`: nn_cl_work_size(n, D, 0) bytes aligned for double (malloc's are),
 * reused across steps as the model's buffers are; or NULL to have the call allocate and free
 * its own. ERR_INVAL on n or D < 1, an odd n with NN_CL_DIFFERENCES, a bad mode or temperature,
 * a NULL input, a misaligned work; ERR_NOMEM (work NULL only). */
int nn_loss_simcse(const struct nn_simcse_opts *o, int n, int D, const float *h, const float *h2,
                   float *dh, float *dh2, double *loss, void *work);

/* SwAV's swapped prediction. With u_i, u2_i the normalised instances of each view (as SimCSE)
 * and prototypes C [K, D]: scores p = u C^T, p2 = u2 C^T [n, K]; codes q = nn_sinkhorn(p),
 * q2 = nn_sinkhorn(p2) over the n instances (targets: no gradient flows through them);
 *   loss = -1/2 mean_i [ q_i . log softmax(p2_i / tau) + q2_i . log softmax(p_i / tau) ].
 * C's rows should have unit norm (nn_swav_normalize after each optimizer step, as SwAV): the
 * scores use C as given. `codes` [2, n, K]: q then q2 to use instead (say codes computed over
 * the batch and a queue of past features), or NULL to compute them here (the paper). Writes
 * dh, dh2 [n, D] in h's layout, dC [K, D] = d loss / d C (any may be NULL) and *loss (may be
 * NULL). `work`: nn_cl_work_size(n, D, o->K) bytes aligned for double, or NULL (as SimCSE).
 * ERR_INVAL as nn_loss_simcse, and on K, epsilon or iterations out of range, a NULL C;
 * ERR_NOMEM. */
int nn_loss_swav(const struct nn_swav_opts *o, int n, int D, const float *h, const float *h2,
                 const float *C, const float *codes, float *dh, float *dh2, float *dC, double *loss,
                 void *work);

/* Sinkhorn-Knopp as SwAV's distributed_sinkhorn on one process: soft assignments q [N, K] of N
 * samples to K prototypes, each prototype getting an equal share of the batch. Q =
 * exp(scores / epsilon) [N, K] is scaled to total 1, then `iterations` times each prototype's
 * column is scaled to total 1/K and each sample's row to total 1/N; q = N Q. So every row of q
 * sums to 1 (up to rounding), and every column to N/K once converged (after a few iterations,
 * about). exp is taken of (scores - max scores) / epsilon (the same q: constant factors cancel)
 * and the sums in fp64. A row or column that underflows to all zeros stays zero, never NaN.
 * q may be scores (in place). ERR_INVAL on N, K or iterations < 1, epsilon <= 0, NULL. */
int nn_sinkhorn(int N, int K, float epsilon, int iterations, const float *scores, float *q);

/* Scale each row of the prototypes C [K, D] to unit L2 norm (the norm clamped at
 * NN_CL_NORM_EPS): after initialising them and after each optimizer step, as SwAV does.
 * ERR_INVAL on K or D < 1, NULL. */
int nn_swav_normalize(int K, int D, float *C);

#endif /* NN_LOSS_H */
