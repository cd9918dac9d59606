#!/usr/bin/python3
"""PyTorch side of tests/bench/bench_rm_train.c: one reward-model training step (forward of the
chosen and the rejected sequences through the Llama decoder, the final norm, the scalar head on
each row's last token, the Bradley-Terry loss -log sigmoid(r+ - r-) averaged over the pairs,
backward, clip_grad_norm_, AdamW) of the same shape as the engine, in fp32 on the CPU with the
given threads. Prints `tokens_per_s X` (2 * pairs * T tokens a step). The decoder is
bench_nn_torch.py's (tests/nn_reference.py's model in torch.nn.functional) without the LM head,
whose logits a reward model does not compute."""
import argparse

import torch
import torch.nn.functional as F

from bench_nn_torch import llama_layers, llama_params, print_tokens_per_s, rms, rope_mask


def main():
    ap = argparse.ArgumentParser()
    for k in ("layers", "hidden", "heads", "kv-heads", "inter", "vocab", "T", "pairs", "steps",
              "threads"):
        ap.add_argument("--" + k, type=int, required=True)
    for k in ("lr", "beta1", "beta2", "eps", "weight-decay", "clip"):
        ap.add_argument("--" + k, type=float, required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    C, H, KVH, L, V, Fi, T = a.hidden, a.heads, a.kv_heads, a.layers, a.vocab, a.inter, a.T
    B = 2 * a.pairs  # rows 0..pairs-1 chosen, pairs..B-1 rejected

    P = llama_params(L, C, H, KVH, Fi, V, {"score": (1, C)})
    rope = rope_mask(C // H, T)
    opt = torch.optim.AdamW(list(P.values()), lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps,
                            weight_decay=a.weight_decay)
    tok = torch.randint(0, V, (B, T))

    def step():
        x = llama_layers(P, P["embed"][tok], L, H, KVH, *rope)
        r = F.linear(rms(x[:, -1], P["norm"]), P["score"]).squeeze(-1)  # the last token's reward
        loss = -F.logsigmoid(r[: a.pairs] - r[a.pairs:]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.clip > 0:
            torch.nn.utils.clip_grad_norm_(list(P.values()), a.clip)
        opt.step()

    print_tokens_per_s(step, a.steps, B * T)


if __name__ == "__main__":
    main()
