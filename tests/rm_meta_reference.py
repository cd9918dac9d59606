#!/usr/bin/python3
"""PyTorch reference for MetaRM's step (services/trainer/rm_meta.h): writes the fixture that
tests/test_rm_meta.c compares against, so CI needs no PyTorch.

    python3 tests/rm_meta_reference.py     # regenerate tests/fixtures/nn/rm_meta.safetensors

On tests/fixtures/nn/ref_model (the tiny Llama of nn_reference.py, whose forward this script
imports) in float64 from its fp32 weights:
  - a meta batch of P prompts with K responses each (rows p * K + i), one pair of them tied (the
    same tokens, so |r_i - r_j| = 0, where the gradient of |d| is taken as 0 as torch.abs does);
  - J = (1/P) sum_p (2/K^2) sum_{i<j} sigmoid(|r_pi - r_pj|), dJ/dr and dJ/dtheta;
  - theta' = theta + ETA dJ/dtheta; g = the gradient of the mean Bradley-Terry loss
    -log sigmoid(r+ - r-) of a batch of B pairs (rows 0..B-1 chosen, B..2B-1 rejected) at theta';
    g0, the same at theta (what the step would be without MetaRM);
  - one torch.optim.AdamW step from theta with g (lr ALPHA, betas (0.9, 0.95), eps 1e-6, no
    weight decay, no clip): the parameters after it.
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nn_reference as ref  # noqa: E402

OUT = os.path.join(HERE, "fixtures", "nn", "rm_meta.safetensors")
P, K, B, T = 2, 5, 2, 8
META_LENGTHS = [8, 6, 7, 5, 8, 4, 6, 6, 7, 3]  # row 7 repeats row 6: a tie
PAIR_LENGTHS = [7, 8, 5, 6]
ETA = 0.5
ALPHA = 1e-3
BETAS, EPS = (0.9, 0.95), 1e-6


def tokens(lengths, seed, V):
    g = torch.Generator().manual_seed(seed)
    tok = torch.randint(3, V, (len(lengths), T), generator=g)
    for b, n in enumerate(lengths):
        tok[b, n:] = 0
    return tok


def main():
    cfg = ref.CONFIG
    P32 = ref.st_read(os.path.join(HERE, "fixtures", "nn", "ref_model", "model.safetensors"))
    names = ref.names(cfg)
    V = cfg["vocab_size"]
    mtok = tokens(META_LENGTHS, 5, V)
    mtok[7] = mtok[6]
    dtok = tokens(PAIR_LENGTHS, 6, V)

    def fresh(shift=None):
        out = {}
        for n in names:
            w = P32[n].to(torch.float64)
            if shift is not None:
                w = w + ETA * shift[n]
            out[n] = w.detach().requires_grad_(True)
        return out

    def meta_j(Pm):
        _, _, r = ref.forward(Pm, cfg, mtok, META_LENGTHS)
        J = 0
        for p in range(P):
            rp = r[p * K:(p + 1) * K]
            for i in range(K):
                for j in range(i + 1, K):
                    J = J + torch.sigmoid((rp[i] - rp[j]).abs())
        return J * 2.0 / (K * K) / P, r

    def bt(Pm):
        _, _, r = ref.forward(Pm, cfg, dtok, PAIR_LENGTHS)
        return -torch.nn.functional.logsigmoid(r[:B] - r[B:]).mean()

    fx = {"meta.tokens": mtok.to(torch.float32),
          "meta.lengths": torch.tensor(META_LENGTHS, dtype=torch.float32),
          "pairs.tokens": dtok.to(torch.float32),
          "pairs.lengths": torch.tensor(PAIR_LENGTHS, dtype=torch.float32),
          "eta": torch.tensor([ETA]), "alpha": torch.tensor([ALPHA])}

    # J, dJ/dr, dJ/dtheta at theta
    Pm = fresh()
    J, r = meta_j(Pm)
    (dr,) = torch.autograd.grad(J, [r], retain_graph=True)
    dJ = ref.grads_of(J, Pm)
    fx["meta.J"] = J.detach().reshape(1)
    fx["meta.rewards"] = r.detach()
    fx["meta.dr"] = dr
    for n in names:
        fx["meta.dJ." + n] = dJ[n]

    # g at theta' and g0 at theta
    Pa = fresh(dJ)
    L = bt(Pa)
    g = ref.grads_of(L, Pa)
    fx["meta.loss"] = L.detach().reshape(1)
    P0 = fresh()
    g0 = ref.grads_of(bt(P0), P0)
    for n in names:
        fx["meta.g." + n] = g[n]
        fx["meta.g0." + n] = g0[n]

    # one AdamW step from theta with g
    Pt = {n: P32[n].to(torch.float64).clone().requires_grad_(True) for n in names}
    opt = torch.optim.AdamW([Pt[n] for n in names], lr=ALPHA, betas=BETAS, eps=EPS,
                            weight_decay=0.0)
    for n in names:
        Pt[n].grad = g[n].clone()
    opt.step()
    for n in names:
        fx["meta.after." + n] = Pt[n].detach()

    ref.st_write(OUT, fx, {"generator": "rm_meta_reference.py"})
    print("fixture written to", OUT)


if __name__ == "__main__":
    main()
