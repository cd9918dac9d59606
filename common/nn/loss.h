/* loss.h - training losses on what the model computes, each with its gradient:
 *  - SFT: token cross-entropy over response tokens (prompt masked), from the per-sequence
 *    log-prob sums and token counts of nn_model_seq_logprobs;
 *  - the DPO family on sequence log-prob SUMS (not length-averaged) of chosen and rejected
 *    responses under the policy and a frozen reference: DPO, IPO, SLiC hinge, cDPO, robust DPO,
 *    soft target (formulas: shared/ALGORITHMS.md);
 *  - reward-model Bradley-Terry with per-pair margin, label smoothing, soft targets and reward
 *    centering.
 * Every loss is the MEAN over the batch; gradients are of that mean. Inputs are fp32, the
 * arithmetic fp64. Not for: running the model (model.h). */
#ifndef NN_LOSS_H
#define NN_LOSS_H

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

#endif /* NN_LOSS_H */
