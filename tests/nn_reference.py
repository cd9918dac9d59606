#!/usr/bin/python3
"""PyTorch reference for the engine (common/nn): writes the fixtures that tests/test_nn_reference.c
compares against, so CI needs no PyTorch.

    /usr/bin/python3 tests/nn_reference.py            # regenerate tests/fixtures/nn/*
    /usr/bin/python3 tests/nn_reference.py --rope     # only tests/fixtures/nn/rope/*

1. ref_model/: a tiny Llama (grouped-query attention, untied head, reward head) with random
   weights, as config.json + model.safetensors (F32, Hugging Face names).
2. ref_fixtures.safetensors: for a right-padded batch of 4 sequences, the logits, per-sequence
   response log-prob sums, the SFT cross-entropy, rewards, DPO and reward-model (Bradley-Terry)
   losses, and the gradient of every parameter for each of the three losses; the contrastive
   losses (SimCSE, SwAV, Sinkhorn-Knopp) on fixed random features and prototypes ("cl.*": loss
   and the gradient of every input, both instance modes), and SimCSE on the model's last hidden
   states with the gradient of every parameter.
3. rope/: rotary scaling as Hugging Face defines it (llama3, linear, dynamic NTK): for each type a
   config.json and, in rope_logits.safetensors, the logits of a tiny model with head dim 128
   (weights from a splitmix64 formula the C test repeats, so none are committed) on batches of
   T 16, 256 and 1024. The frequencies are written here from the published formulas (Meta's
   apply_scaling for llama3, per frequency in Python floats), not from the C code.
   `nn_reference.py --rope` writes only these.
4. c_model_logits.safetensors: logits of c_model/ (a checkpoint WRITTEN BY THE C ENGINE,
   regenerated with `OAIF_NN_WRITE_FIXTURES=1 build/tests/test_nn_reference`) on a fixed batch,
   computed here after loading it, so the C test checks that the two agree in both directions.

The model is written out by hand (transformers is not installed) following Hugging Face's
LlamaForCausalLM: RMSNorm as LlamaRMSNorm, rotary embeddings with rotate_half, repeat_kv for
grouped-query attention, SwiGLU. Computation is in float64 from the fp32 weights, so the fixtures
are the exact values the fp32 engine approximates. The safetensors format is read and written by
hand too (the python package is not installed): 8-byte little-endian header length, JSON
header, raw little-endian data.
"""
import json
import math
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "nn")

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "torch_dtype": "float32",
    "vocab_size": 32,
    "hidden_size": 16,
    "intermediate_size": 24,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
    "oaif_reward_head": True,
    "oaif_tokenizer": "bpe",
}

# The batch (right padding with 0): lengths, prompt lengths.
LENGTHS = [8, 5, 6, 7]
PROMPTS = [3, 2, 4, 1]
T = 8
# DPO: pairs (0 chosen, 1 rejected), (2 chosen, 3 rejected); frozen reference log-probs.
REF_LOGP = [-17.5, -9.25, -6.0, -20.0]
DPO_BETA = 0.1
# Reward model: same pairs, per-pair margins, label smoothing, centering.
RM_MARGIN = [0.5, -0.25]
RM_SMOOTH = 0.1
RM_CENTER = 0.01
# Contrastive (loss.h): B pairs of D-dim features in two views, K prototypes, the paper's
# temperatures, Sinkhorn epsilon and iterations; the clamp on a feature's norm.
CL_B, CL_D, CL_K = 3, 8, 4
SIMCSE_TAU = 0.05
SWAV_TAU, SWAV_EPS, SWAV_ITERS = 0.1, 0.05, 3
NORM_EPS = 1e-6  # NN_CL_NORM_EPS
MODEL_SIMCSE_TAU = 0.5


# ---------------------------------------------------------------------------------------------
# safetensors by hand

def st_write(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous()
        data = t.numpy().tobytes() if hasattr(t, "numpy") else bytes(t.untyped_storage())
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def st_read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if e["dtype"] != "F32":
            raise ValueError(f"{path}: {name}: dtype {e['dtype']} (this reader takes F32)")
        s, t = e["data_offsets"]
        buf = bytearray(raw[base + s:base + t])
        out[name] = torch.frombuffer(buf, dtype=torch.float32).reshape(e["shape"]).clone()
    return out


# ---------------------------------------------------------------------------------------------
# the model

def names(cfg):
    n = ["model.embed_tokens.weight"]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        n += [p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight",
              p + "self_attn.v_proj.weight", p + "self_attn.o_proj.weight",
              p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight", p + "mlp.down_proj.weight",
              p + "input_layernorm.weight", p + "post_attention_layernorm.weight"]
    n.append("model.norm.weight")
    if not cfg["tie_word_embeddings"]:
        n.append("lm_head.weight")
    if cfg.get("oaif_reward_head"):
        n.append("score.weight")
    return n


def random_params(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    C, V, F = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    H, KVH = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = C // H
    shapes = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,),
              "lm_head.weight": (V, C), "score.weight": (1, C)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        shapes.update({p + "self_attn.q_proj.weight": (H * D, C),
                       p + "self_attn.k_proj.weight": (KVH * D, C),
                       p + "self_attn.v_proj.weight": (KVH * D, C),
                       p + "self_attn.o_proj.weight": (C, H * D),
                       p + "mlp.gate_proj.weight": (F, C), p + "mlp.up_proj.weight": (F, C),
                       p + "mlp.down_proj.weight": (C, F),
                       p + "input_layernorm.weight": (C,),
                       p + "post_attention_layernorm.weight": (C,)})
    out = {}
    for n in names(cfg):
        s = shapes[n]
        if len(s) == 1:
            out[n] = 1.0 + 0.2 * torch.randn(s, generator=g)
        else:
            out[n] = 0.3 * torch.randn(s, generator=g)
    return out


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward(P, cfg, tokens, lengths, inv_freq=None):
    """tokens [B, T] long. Returns logits [B, T, V], final hidden [B, T, C], rewards [B] or None.
    inv_freq: the rotary inverse frequencies [D/2] (default: plain RoPE of rope_theta)."""
    B, Tn = tokens.shape
    C, H, KVH = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D, eps = C // H, cfg["rms_norm_eps"]
    if inv_freq is None:
        inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    freqs = torch.outer(torch.arange(Tn, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]
    causal = torch.ones(Tn, Tn, dtype=torch.bool).tril()
    x = P["model.embed_tokens.weight"][tokens]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, P[p + "input_layernorm.weight"], eps)
        q = (h @ P[p + "self_attn.q_proj.weight"].T).view(B, Tn, H, D).transpose(1, 2)
        k = (h @ P[p + "self_attn.k_proj.weight"].T).view(B, Tn, KVH, D).transpose(1, 2)
        v = (h @ P[p + "self_attn.v_proj.weight"].T).view(B, Tn, KVH, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KVH, dim=1)  # repeat_kv
        v = v.repeat_interleave(H // KVH, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        att = att.masked_fill(~causal, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, Tn, H * D)
        x = x + y @ P[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, P[p + "post_attention_layernorm.weight"], eps)
        g = h @ P[p + "mlp.gate_proj.weight"].T
        u = h @ P[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ P[p + "mlp.down_proj.weight"].T
    xf = rms_norm(x, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else P["lm_head.weight"]
    logits = xf @ head.T
    rewards = None
    if cfg.get("oaif_reward_head"):
        last = xf[torch.arange(B), torch.tensor(lengths) - 1]
        rewards = (last @ P["score.weight"].T)[:, 0]
    return logits, xf, rewards


def seq_logprobs(logits, tokens, lengths, prompts):
    lp = logits.log_softmax(-1)
    out, ntok = [], []
    for b in range(tokens.shape[0]):
        s = logits.new_zeros(())
        for t in range(prompts[b] - 1, lengths[b] - 1):
            s = s + lp[b, t, tokens[b, t + 1]]
        out.append(s)
        ntok.append(lengths[b] - prompts[b])
    return torch.stack(out), ntok


def batch_tokens(V, seed):
    g = torch.Generator().manual_seed(seed)
    tok = torch.randint(1, V, (len(LENGTHS), T), generator=g)
    for b, n in enumerate(LENGTHS):
        tok[b, n:] = 0
    return tok


def grads_of(loss, P64):
    gs = torch.autograd.grad(loss, [P64[n] for n in P64], allow_unused=True)
    return {n: (g if g is not None else torch.zeros_like(P64[n])) for n, g in zip(P64.keys(), gs)}


# ---------------------------------------------------------------------------------------------
# contrastive reward modeling (Secrets of RLHF Part II)

def normalize(x):
    return torch.nn.functional.normalize(x, dim=1, eps=NORM_EPS)  # x / max(|x|, eps)


def instances(h, mode):
    """h [2B, D] = [h(y+); h(y-)] -> the 2B instances of the mode."""
    if mode == "responses":
        return h
    B = h.shape[0] // 2
    d = h[:B] - h[B:]
    return torch.cat((d, -d))


def simcse(h, h2, mode, tau):
    u, u2 = normalize(instances(h, mode)), normalize(instances(h2, mode))
    s = u @ u2.T / tau
    return (torch.logsumexp(s, dim=1) - s.diagonal()).mean()


@torch.no_grad()
def sinkhorn(scores, eps, iters):
    """SwAV's distributed_sinkhorn on one process; scores [N, K] -> codes [N, K]."""
    Q = torch.exp(scores / eps).t()  # K x N, as SwAV
    K, N = Q.shape
    Q /= Q.sum()
    for _ in range(iters):
        Q /= Q.sum(dim=1, keepdim=True)
        Q /= K
        Q /= Q.sum(dim=0, keepdim=True)
        Q /= N
    Q *= N
    return Q.t()


def swav(h, h2, C, mode, tau, eps, iters):
    u, u2 = normalize(instances(h, mode)), normalize(instances(h2, mode))
    p, p2 = u @ C.T, u2 @ C.T
    q, q2 = sinkhorn(p.detach(), eps, iters), sinkhorn(p2.detach(), eps, iters)
    ls = torch.nn.functional.log_softmax
    return -0.5 * ((q * ls(p2 / tau, dim=1)).sum(1) + (q2 * ls(p / tau, dim=1)).sum(1)).mean()


def contrastive_fixtures(fx):
    g = torch.Generator().manual_seed(2024)
    n = 2 * CL_B
    h = torch.randn(n, CL_D, generator=g)
    h2 = h + 0.8 * torch.randn(n, CL_D, generator=g)  # the other view: cosines about 0.8
    C = torch.nn.functional.normalize(torch.randn(CL_K, CL_D, generator=g), dim=1)
    tie = h.clone()
    tie[CL_B + 1] = tie[1]  # pair 1 of view 1: h(y+) = h(y-), a zero difference
    scores = 2 * torch.rand(5, 3, generator=g) - 1
    fx.update({"cl.h": h, "cl.h2": h2, "cl.C": C, "cl.tie": tie, "sinkhorn.scores": scores})
    fx["sinkhorn.q"] = sinkhorn(scores.to(torch.float64), SWAV_EPS, SWAV_ITERS)

    for mode in ("responses", "differences"):
        for name, first in (("simcse", h), ("simcse_tie", tie)):
            if name == "simcse_tie" and mode == "responses":
                continue
            a = first.to(torch.float64).requires_grad_(True)
            b = h2.to(torch.float64).requires_grad_(True)
            loss = simcse(a, b, mode, SIMCSE_TAU)
            da, db = torch.autograd.grad(loss, [a, b])
            fx.update({f"cl.{name}.{mode}.loss": loss.detach().reshape(1),
                       f"cl.{name}.{mode}.dh": da, f"cl.{name}.{mode}.dh2": db})
        a = h.to(torch.float64).requires_grad_(True)
        b = h2.to(torch.float64).requires_grad_(True)
        c = C.to(torch.float64).requires_grad_(True)
        loss = swav(a, b, c, mode, SWAV_TAU, SWAV_EPS, SWAV_ITERS)
        da, db, dc = torch.autograd.grad(loss, [a, b, c])
        fx.update({f"cl.swav.{mode}.loss": loss.detach().reshape(1), f"cl.swav.{mode}.dh": da,
                   f"cl.swav.{mode}.dh2": db, f"cl.swav.{mode}.dC": dc})


# ---------------------------------------------------------------------------------------------
# rotary scaling (rope_scaling in config.json)

ROPE_BASE = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "float32",
    "vocab_size": 32, "hidden_size": 256, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 2, "num_key_value_heads": 1, "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
    "oaif_tokenizer": "bpe",
}
# Llama 3.1's rope_scaling on its head dim 128 and theta; linear and dynamic NTK at factor 4,
# dynamic's original context 256 so that T 1024 grows the base.
ROPE_CASES = {
    "llama3": {"rope_theta": 500000.0, "max_position_embeddings": 16384,
               "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192}},
    "linear": {"rope_theta": 10000.0, "max_position_embeddings": 4096,
               "rope_scaling": {"type": "linear", "factor": 4.0}},
    "dynamic": {"rope_theta": 10000.0, "max_position_embeddings": 256,
                "rope_scaling": {"rope_type": "dynamic", "factor": 4.0}},
}
ROPE_T = [16, 256, 1024]
ROPE_SEED = 20240723
ROPE_POS = 16  # logits kept per row: the last position and every (len / 16)-th before it
M64 = (1 << 64) - 1


def splitmix_params(cfg, seed):
    """The weights, in Hugging Face order: each value from splitmix64 (the engine's nn_rng_next),
    u = top 24 bits / 2^24; matrices (u - 0.5) x 2^-2 (the embedding x 1), norms 1 + (u - 0.5) / 4
    rounded to fp32. The C test fills its model with the same sequence."""
    C, V, F = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    H, KVH = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = C // H
    state = seed
    out = {}
    for n in names(cfg):
        if n.endswith("norm.weight"):
            shape = (C,)
        elif n == "model.embed_tokens.weight":
            shape = (V, C)
        elif "k_proj" in n or "v_proj" in n:
            shape = (KVH * D, C)
        elif "q_proj" in n:
            shape = (H * D, C)
        elif "o_proj" in n:
            shape = (C, H * D)
        elif "down_proj" in n:
            shape = (C, F)
        else:
            shape = (F, C)
        vals = []
        for _ in range(math.prod(shape)):
            state = (state + 0x9E3779B97F4A7C15) & M64
            z = state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            z ^= z >> 31
            vals.append((z >> 40) / 16777216.0 - 0.5)
        t = torch.tensor(vals, dtype=torch.float32).reshape(shape)
        if len(shape) == 1:
            t = t * 0.25 + 1.0  # fp32 arithmetic, rounded as the C float expression
        elif n != "model.embed_tokens.weight":
            t = t * 0.25
        out[n] = t
    return out


def rope_inv_freq(cfg, seq_len):
    """Inverse frequencies [D/2] (float64) for a sequence of seq_len tokens run alone.
    Plain: 1 / theta^(2i/D) in fp32 as transformers computes it. linear: / factor. dynamic NTK:
    past the original context (max_position_embeddings) the base becomes
    theta x (factor x seq_len / original - (factor - 1))^(D / (D - 2)). llama3: Meta's
    apply_scaling, frequency by frequency."""
    D = cfg["hidden_size"] // cfg["num_attention_heads"]
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    base = cfg["rope_theta"]
    if kind == "dynamic":
        orig = cfg["max_position_embeddings"]
        if seq_len > orig:
            base = base * ((rs["factor"] * seq_len / orig) - (rs["factor"] - 1)) ** (D / (D - 2))
    expo = torch.arange(0, D, 2, dtype=torch.float32) / D
    inv = 1.0 / (torch.tensor(base, dtype=torch.float32) ** expo)
    if kind == "linear":
        inv = inv / rs["factor"]
    elif kind == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        scaled = []
        for f in inv.tolist():
            wavelen = 2 * math.pi / f
            if wavelen < old / hi:
                scaled.append(f)
            elif wavelen > old / lo:
                scaled.append(f / factor)
            else:
                smooth = (old / wavelen - lo) / (hi - lo)
                scaled.append((1 - smooth) * f / factor + smooth * f)
        return torch.tensor(scaled, dtype=torch.float64)
    return inv.to(torch.float64)


def rope_fixtures():
    rdir = os.path.join(OUT, "rope")
    fx = {}
    for case, extra in ROPE_CASES.items():
        cfg = dict(ROPE_BASE, **extra)
        os.makedirs(os.path.join(rdir, case), exist_ok=True)
        with open(os.path.join(rdir, case, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        P = {n: v.to(torch.float64) for n, v in splitmix_params(cfg, ROPE_SEED).items()}
        for Tn in ROPE_T:
            g = torch.Generator().manual_seed(Tn)
            lens = [Tn, max(ROPE_POS, Tn - Tn // 4 - 3)]
            tok = torch.randint(3, cfg["vocab_size"], (2, Tn), generator=g)
            pos = torch.zeros(2, ROPE_POS, dtype=torch.long)
            logits = torch.zeros(2, ROPE_POS, cfg["vocab_size"], dtype=torch.float64)
            for b, n in enumerate(lens):
                tok[b, n:] = 0
                # each row alone, with the frequencies of its own length
                with torch.no_grad():
                    lg, _, _ = forward(P, cfg, tok[b:b + 1, :n], [n], rope_inv_freq(cfg, n))
                step = max(1, n // ROPE_POS)
                pos[b] = torch.tensor([n - 1 - k * step for k in range(ROPE_POS)])
                logits[b] = lg[0, pos[b]]
            key = f"{case}.T{Tn}"
            fx.update({key + ".tokens": tok.to(torch.float32),
                       key + ".lengths": torch.tensor(lens, dtype=torch.float32),
                       key + ".pos": pos.to(torch.float32), key + ".logits": logits})
    st_write(os.path.join(rdir, "rope_logits.safetensors"), fx,
             {"generator": "nn_reference.py", "seed": str(ROPE_SEED)})
    print("rope fixtures written to", rdir)


def main():
    if "--rope" in sys.argv[1:]:
        rope_fixtures()
        return
    torch.set_grad_enabled(True)
    os.makedirs(os.path.join(OUT, "ref_model"), exist_ok=True)
    cfg = CONFIG
    P32 = random_params(cfg, 1234)
    st_write(os.path.join(OUT, "ref_model", "model.safetensors"), P32, {"format": "pt"})
    with open(os.path.join(OUT, "ref_model", "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")

    tok = batch_tokens(cfg["vocab_size"], 99)
    fx = {"batch.tokens": tok.to(torch.float32),
          "batch.lengths": torch.tensor(LENGTHS, dtype=torch.float32),
          "batch.prompts": torch.tensor(PROMPTS, dtype=torch.float32),
          "dpo.ref_logp": torch.tensor(REF_LOGP, dtype=torch.float32),
          "rm.margin": torch.tensor(RM_MARGIN, dtype=torch.float32)}

    def fresh():
        return {n: P32[n].to(torch.float64).requires_grad_(True) for n in names(cfg)}

    # SFT cross-entropy over response tokens
    P = fresh()
    logits, _, rewards = forward(P, cfg, tok, LENGTHS)
    lp, ntok = seq_logprobs(logits, tok, LENGTHS, PROMPTS)
    ce = -lp.sum() / sum(ntok)
    mask = torch.zeros(len(LENGTHS), T, 1, dtype=torch.float64)
    for b, n in enumerate(LENGTHS):
        mask[b, :n] = 1
    fx["logits"] = (logits * mask).detach()
    fx["seq_logp"] = lp.detach()
    fx["ntok"] = torch.tensor(ntok, dtype=torch.float32)
    fx["rewards"] = rewards.detach()
    fx["ce.loss"] = ce.detach().reshape(1)
    for n, g in grads_of(ce, P).items():
        fx["ce.grad." + n] = g

    # DPO on sums: pairs (0, 1), (2, 3)
    P = fresh()
    logits, _, _ = forward(P, cfg, tok, LENGTHS)
    lp, _ = seq_logprobs(logits, tok, LENGTHS, PROMPTS)
    ref = torch.tensor(REF_LOGP, dtype=torch.float64)
    h = (lp[0::2] - ref[0::2]) - (lp[1::2] - ref[1::2])
    dpo = -torch.nn.functional.logsigmoid(DPO_BETA * h).mean()
    fx["dpo.loss"] = dpo.detach().reshape(1)
    for n, g in grads_of(dpo, P).items():
        fx["dpo.grad." + n] = g

    # Bradley-Terry with margin, label smoothing and centering
    P = fresh()
    _, _, r = forward(P, cfg, tok, LENGTHS)
    d = r[0::2] - r[1::2] - torch.tensor(RM_MARGIN, dtype=torch.float64)
    ls = torch.nn.functional.logsigmoid
    rm = (-(1 - RM_SMOOTH) * ls(d) - RM_SMOOTH * ls(-d)).mean() + \
        RM_CENTER * ((r[0::2] + r[1::2]) ** 2).mean()
    fx["rm.loss"] = rm.detach().reshape(1)
    for n, g in grads_of(rm, P).items():
        fx["rm.grad." + n] = g

    # SimCSE on differences of the last hidden states, pairs (0, 1), (2, 3); both views are the
    # same forward (no dropout), so the gradient is the sum of both views' gradients; tau 0.5,
    # as with identical views and the paper's 0.05 the loss and gradients all but vanish
    P = fresh()
    _, xf, _ = forward(P, cfg, tok, LENGTHS)
    last = xf[torch.arange(len(LENGTHS)), torch.tensor(LENGTHS) - 1]
    hcat = torch.cat((last[0::2], last[1::2]))  # [h(y+); h(y-)]
    cl = simcse(hcat, hcat, "differences", MODEL_SIMCSE_TAU)
    fx["simcse.loss"] = cl.detach().reshape(1)
    for n, g in grads_of(cl, P).items():
        fx["simcse.grad." + n] = g

    contrastive_fixtures(fx)
    st_write(os.path.join(OUT, "ref_fixtures.safetensors"), fx, {"generator": "nn_reference.py"})
    rope_fixtures()

    # The C-written checkpoint, loaded here: its logits on a fixed batch.
    cdir = os.path.join(OUT, "c_model")
    if os.path.exists(os.path.join(cdir, "model.safetensors")):
        with open(os.path.join(cdir, "config.json")) as f:
            ccfg = json.load(f)
        ccfg.setdefault("oaif_reward_head", False)
        CP = {n: v.to(torch.float64) for n, v in st_read(os.path.join(cdir, "model.safetensors")).items()}
        missing = [n for n in names(ccfg) if n not in CP]
        if missing:
            sys.exit(f"{cdir}: missing tensors {missing}")
        ctok = batch_tokens(ccfg["vocab_size"], 7)[:, :T]
        ctok[:, :] = torch.where(ctok > 0, ctok, torch.ones_like(ctok))
        lens = [T] * ctok.shape[0]
        with torch.no_grad():
            clog, _, _ = forward(CP, ccfg, ctok, lens)
        st_write(os.path.join(OUT, "c_model_logits.safetensors"),
                 {"tokens": ctok.to(torch.float32), "logits": clog}, {"generator": "nn_reference.py"})
        print("c_model logits written")
    else:
        print(f"no {cdir}/model.safetensors yet: run OAIF_NN_WRITE_FIXTURES=1 build/tests/test_nn_reference")
    print("fixtures written to", OUT)


if __name__ == "__main__":
    main()
