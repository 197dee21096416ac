#!/usr/bin/env python3
"""PyTorch reference for `npm run bench`: a plain eager Gemma 3 text model, written from
/work/shared/reference/gemma3-spec.md and src/model/gemma3.ts (not from transformers), so that bench/bench.ts can time
PyTorch side by side with gemma-tune in the same run, on the same machine, shapes and tokens.

A dev-only tool (Debian `python3-torch`); never a dependency of gemma-tune. Two commands, each reading a JSON input
file {"config": <HF config.json dict>, "examples": [{"inputIds": [...], "labels": [...]}]} (labels -100 = not
supervised) and printing one JSON object as its last stdout line:

  torch_ref.py bench INPUT --precision fp32|bf16 --threads N --steps 3 --warmup 1 [--forward-steps 3]
      times the training step (forward, loss at the supervised rows only, backward, global-norm clipping at 1.0,
      AdamW lr 1e-5 constant) and the forward pass; random init from --seed. bf16 = torch.autocast("cpu", bfloat16)
      with fp32 master weights and optimizer state, what `bf16=True` gives a TRL user on a CPU.
  torch_ref.py check INPUT --weights FILE.safetensors
      loads float32 weights (HF names) and prints the supervised rows' logits, the mean loss and the global gradient
      norm, for the numerical comparison with ours (test/bench/torch-ref.test.ts).
"""
import argparse
import json
import math
import os
import resource
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100


class Cfg:
    def __init__(self, raw):
        self.vocab = raw["vocab_size"]
        self.hidden = raw["hidden_size"]
        self.inter = raw["intermediate_size"]
        self.layers = raw["num_hidden_layers"]
        self.heads = raw["num_attention_heads"]
        self.kv_heads = raw["num_key_value_heads"]
        self.head_dim = raw["head_dim"]
        self.qscale = raw["query_pre_attn_scalar"] ** -0.5
        self.eps = raw["rms_norm_eps"]
        self.rope_global = raw["rope_theta"]
        self.rope_local = raw["rope_local_base_freq"]
        self.window = raw["sliding_window"]
        pattern = raw.get("_sliding_window_pattern", 6)
        self.layer_types = raw.get("layer_types") or [
            "full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(self.layers)
        ]
        for key in ("attn_logit_softcapping", "final_logit_softcapping"):
            if raw.get(key) is not None:
                raise SystemExit(f"torch_ref: {key} is not supported (Gemma 3 has none)")
        if raw.get("hidden_activation", "gelu_pytorch_tanh") != "gelu_pytorch_tanh":
            raise SystemExit("torch_ref: only hidden_activation gelu_pytorch_tanh is supported")


class RMSNorm(nn.Module):
    """x / rms(x) * (1 + w), computed in fp32 (Gemma's norm; the weight is stored as an offset from 1)."""

    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * (1.0 + self.weight.float())).to(x.dtype)


def rope_tables(head_dim, base, T):
    """cos/sin [T, head_dim], the half-split layout (rotate_half), angles in float64 then rounded to fp32."""
    inv = 1.0 / (base ** (torch.arange(0, head_dim // 2, dtype=torch.float64) * 2 / head_dim))
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().float(), ang.sin().float()


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


def mask(T, window):
    """Additive [T, T] mask: key j visible from query i iff 0 <= i - j (and i - j <= window - 1 when sliding)."""
    d = torch.arange(T)[:, None] - torch.arange(T)[None, :]
    ok = d >= 0
    if window is not None:
        ok &= d <= window - 1
    return torch.zeros(T, T).masked_fill(~ok, float("-inf"))


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.q_proj = nn.Linear(c.hidden, c.heads * c.head_dim, bias=False)
        self.k_proj = nn.Linear(c.hidden, c.kv_heads * c.head_dim, bias=False)
        self.v_proj = nn.Linear(c.hidden, c.kv_heads * c.head_dim, bias=False)
        self.o_proj = nn.Linear(c.heads * c.head_dim, c.hidden, bias=False)
        self.q_norm = RMSNorm(c.head_dim, c.eps)
        self.k_norm = RMSNorm(c.head_dim, c.eps)

    def forward(self, x, cos, sin, m):
        c = self.c
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, c.heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, c.kv_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, c.kv_heads, c.head_dim).transpose(1, 2)
        q, k = self.q_norm(q), self.k_norm(k)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        g = c.heads // c.kv_heads  # query head h reads KV head h // g
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
        scores = torch.matmul(q * c.qscale, k.transpose(-1, -2)) + m
        probs = torch.softmax(scores.float(), dim=-1).to(v.dtype)
        o = torch.matmul(probs, v).transpose(1, 2).reshape(B, T, c.heads * c.head_dim)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden, c.inter, bias=False)
        self.up_proj = nn.Linear(c.hidden, c.inter, bias=False)
        self.down_proj = nn.Linear(c.inter, c.hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c.hidden, c.eps)
        self.post_attention_layernorm = RMSNorm(c.hidden, c.eps)
        self.pre_feedforward_layernorm = RMSNorm(c.hidden, c.eps)
        self.post_feedforward_layernorm = RMSNorm(c.hidden, c.eps)

    def forward(self, h, cos, sin, m):
        h = h + self.post_attention_layernorm(self.self_attn(self.input_layernorm(h), cos, sin, m))
        return h + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(h)))


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab, c.hidden)
        self.layers = nn.ModuleList([Layer(c) for _ in range(c.layers)])
        self.norm = RMSNorm(c.hidden, c.eps)


class Gemma3(nn.Module):
    """Parameter names as in HF checkpoints (model.layers.N....), so a safetensors file of ours loads directly."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = Inner(c)

    def hidden(self, ids):
        c = self.c
        T = ids.shape[1]
        h = self.model.embed_tokens(ids) * torch.tensor(math.sqrt(c.hidden), dtype=torch.float32)
        tables = {"sliding_attention": rope_tables(c.head_dim, c.rope_local, T), "full_attention": rope_tables(c.head_dim, c.rope_global, T)}
        masks = {"sliding_attention": mask(T, c.window), "full_attention": mask(T, None)}
        for layer, kind in zip(self.model.layers, c.layer_types):
            cos, sin = tables[kind]
            h = layer(h, cos, sin, masks[kind])
        return self.model.norm(h)

    def supervised_logits(self, ids, labels):
        """Logits only at the supervised rows (a fair implementation does not compute the 262k-wide head elsewhere)."""
        h = self.hidden(ids)
        sel = labels != IGNORE
        return F.linear(h[sel], self.model.embed_tokens.weight), labels[sel]  # tied LM head

    def loss(self, ids, labels):
        logits, target = self.supervised_logits(ids, labels)
        return F.cross_entropy(logits.float(), target)


def init_random(model, seed, std=0.02):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=g) * std)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise SystemExit(f"torch_ref: {path}: tensor {name} is {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").copy().reshape(t["shape"]))
    return out


def batch_tensors(examples):
    T = max(len(e["inputIds"]) for e in examples)
    ids = torch.zeros(len(examples), T, dtype=torch.long)
    labels = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, : len(e["inputIds"])] = torch.tensor(e["inputIds"])
        labels[i, : len(e["labels"])] = torch.tensor(e["labels"])
    return ids, labels


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: KiB


def cmd_bench(args, cfg, examples):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = Gemma3(cfg)
    init_random(model, args.seed)
    ids, labels = batch_tensors(examples)
    tokens = ids.numel()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    bf16 = args.precision == "bf16"

    def loss_fn():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model.loss(ids, labels)

    step_s, losses, loads = [], [], []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if i >= args.warmup:
            step_s.append(dt)
            loads.append(os.getloadavg()[0])
        print(f"  torch {args.precision} {'warm-up' if i < args.warmup else 'step'} {i + 1}: {dt:.2f} s, loss {losses[-1]:.4f}", file=sys.stderr, flush=True)
    peak_train = peak_rss_gb()
    fwd_s = []
    with torch.no_grad():
        for i in range(1 + args.forward_steps):
            t0 = time.perf_counter()
            loss_fn().item()
            if i > 0:
                fwd_s.append(time.perf_counter() - t0)
    step_med = statistics.median(step_s)
    fwd_med = statistics.median(fwd_s) if fwd_s else None
    return {
        "impl": "pytorch", "torch": torch.__version__, "precision": args.precision, "threads": torch.get_num_threads(),
        "onednn": torch.backends.mkldnn.is_available(), "batch": ids.shape[0], "seq": ids.shape[1], "supervised_tokens": int((labels != IGNORE).sum()),
        "params": sum(p.numel() for p in model.parameters()), "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "step_s": step_s, "step_s_median": step_med, "train_tokens_per_s": tokens / step_med,
        "forward_s_median": fwd_med, "forward_tokens_per_s": tokens / fwd_med if fwd_med else None,
        "peak_rss_gb": peak_rss_gb(), "peak_rss_train_gb": peak_train, "losses": losses, "load_avg": loads,
    }


def cmd_check(args, cfg, examples):
    torch.set_num_threads(args.threads)
    model = Gemma3(cfg)
    weights = read_safetensors(args.weights)
    missing = set(dict(model.named_parameters())) ^ set(weights)
    if missing:
        raise SystemExit(f"torch_ref: {args.weights}: names differ from the model's: {sorted(missing)[:5]}")
    model.load_state_dict(weights, strict=True)
    ids, labels = batch_tensors(examples)
    logits, target = model.supervised_logits(ids, labels)
    loss = F.cross_entropy(logits, target)
    loss.backward()
    grad_norm = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in model.parameters() if p.grad is not None))
    return {"impl": "pytorch", "torch": torch.__version__, "loss": loss.item(), "grad_norm": grad_norm, "logits": logits.detach().tolist()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["bench", "check"])
    ap.add_argument("input", help="JSON file: {config, examples}")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--forward-steps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", help="check: float32 safetensors file with HF tensor names")
    args = ap.parse_args()
    with open(args.input) as f:
        inp = json.load(f)
    cfg = Cfg(inp["config"])
    if args.command == "check" and not args.weights:
        raise SystemExit("torch_ref: check needs --weights")
    out = cmd_bench(args, cfg, inp["examples"]) if args.command == "bench" else cmd_check(args, cfg, inp["examples"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
