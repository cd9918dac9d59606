#!/usr/bin/python3
"""PyTorch side of tests/bench/bench_nn.c: one training step (forward, cross-entropy over all
tokens, backward, clip_grad_norm_, AdamW) of the same Llama shape as the engine, in fp32 on the
CPU with the given threads. Prints `tokens_per_s X`. The model is the one of
tests/nn_reference.py written with torch.nn.functional (transformers is not installed), with
the usual idioms: fused masked softmax over the full T x T scores, repeat_interleave for GQA."""
import argparse
import math
import time

import torch
import torch.nn.functional as F


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rms(x, w, eps=1e-5):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def llama_params(L, C, H, KVH, Fi, V, extra):
    """The parameters (std 0.02, norms 1, requires_grad): embed, norm, the L layers' and
    `extra`'s, a dict name -> shape."""
    D = C // H

    def p(*shape, one=False):
        t = torch.ones(shape) if one else torch.randn(shape) * 0.02
        return t.requires_grad_(True)

    P = {"embed": p(V, C), "norm": p(C, one=True)}
    P.update({k: p(*shape) for k, shape in extra.items()})
    for l in range(L):
        P.update({f"{l}.q": p(H * D, C), f"{l}.k": p(KVH * D, C), f"{l}.v": p(KVH * D, C),
                  f"{l}.o": p(C, H * D), f"{l}.g": p(Fi, C), f"{l}.u": p(Fi, C),
                  f"{l}.d": p(C, Fi), f"{l}.ln1": p(C, one=True), f"{l}.ln2": p(C, one=True)})
    return P


def rope_mask(D, T):
    """cos and sin [1, 1, T, D] of the rotary embedding, and the causal mask [T, T]."""
    inv = 1.0 / (10000.0 ** (torch.arange(0, D, 2).float() / D))
    emb = torch.outer(torch.arange(T).float(), inv)
    emb = torch.cat((emb, emb), -1)
    return emb.cos()[None, None], emb.sin()[None, None], torch.full((T, T), float("-inf")).triu(1)


def llama_layers(P, x, L, H, KVH, cos, sin, mask):
    """The L decoder layers on embeddings x [B, T, C]: the residual stream before the final
    norm."""
    B, T, C = x.shape
    D = C // H
    for l in range(L):
        h = rms(x, P[f"{l}.ln1"])
        q = F.linear(h, P[f"{l}.q"]).view(B, T, H, D).transpose(1, 2)
        k = F.linear(h, P[f"{l}.k"]).view(B, T, KVH, D).transpose(1, 2)
        v = F.linear(h, P[f"{l}.v"]).view(B, T, KVH, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if KVH != H:
            k = k.repeat_interleave(H // KVH, 1)
            v = v.repeat_interleave(H // KVH, 1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D) + mask, -1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, P[f"{l}.o"])
        h = rms(x, P[f"{l}.ln2"])
        x = x + F.linear(F.silu(F.linear(h, P[f"{l}.g"])) * F.linear(h, P[f"{l}.u"]), P[f"{l}.d"])
    return x


def print_tokens_per_s(step, steps, tokens):
    """Runs step() once untimed, then `steps` times, and prints `tokens_per_s X` for `tokens` a
    step."""
    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    print(f"tokens_per_s {tokens * steps / (time.perf_counter() - t0):.1f}")


def main():
    ap = argparse.ArgumentParser()
    for k in ("layers", "hidden", "heads", "kv-heads", "inter", "vocab", "T", "B", "steps",
              "threads"):
        ap.add_argument("--" + k, type=int, required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    C, H, KVH, L, V, Fi, T, B = a.hidden, a.heads, a.kv_heads, a.layers, a.vocab, a.inter, a.T, a.B
    D = C // H

    P = llama_params(L, C, H, KVH, Fi, V, {"head": (V, C)})
    rope = rope_mask(D, T)
    opt = torch.optim.AdamW(list(P.values()), lr=1e-4, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.1)
    tok = torch.randint(0, V, (B, T))

    def step():
        x = llama_layers(P, P["embed"][tok], L, H, KVH, *rope)
        logits = F.linear(rms(x, P["norm"]), P["head"])
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), tok[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()

    print_tokens_per_s(step, a.steps, B * T)


if __name__ == "__main__":
    main()
