#!/usr/bin/python3
"""HessGPT in PyTorch: the numerical oracle for the C++ engine (SPEC §1, §5).

Written from the specification, independently of the C++ code, the way llm.c keeps a
PyTorch reference next to its C and CUDA trainers.  It reads and writes checkpoint
directories (config.json + model.safetensors, HF Qwen3-style names) without the
`safetensors` package, and by default computes in float64 so that it is the most exact
party in any comparison.

    h = E[tokens]
    for each block:  h += Wo·attn(RoPE(QKNorm(Wq·n), QKNorm(Wk·n)), Wv·n)  with n = RMSNorm(h)
                     h += Wdown(silu(Wgate·f) * Wup·f)                     with f = RMSNorm(h)
    logits = softcap(RMSNorm(h) E^T),  loss = mean CE over targets != -100

Usage (see tests/oracle/README.md):
    hessgpt_torch.py --checkpoint DIR --inputs X.npy [--targets Y.npy] --out OUT [--dtype float64]
    hessgpt_torch.py --init-random --config tiny|CONFIG.json --seed S --out-checkpoint DIR
    hessgpt_torch.py --self-test
"""

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, asdict
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_np import read_safetensors, write_safetensors  # noqa: E402,F401 (re-exported)

IGNORE_INDEX = -100

# Shapes of SPEC §1.  Everything else takes its default (theta 1e4, eps 1e-6, cap 30, ...).
PRESETS = {
    "model1": dict(vocab_size=32008, hidden_size=1280, num_hidden_layers=22, num_attention_heads=20,
                   num_key_value_heads=5, head_dim=64, intermediate_size=3413),
    "model2": dict(vocab_size=32008, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                   num_key_value_heads=4, head_dim=64, intermediate_size=2816),
    "small": dict(vocab_size=32008, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=64, intermediate_size=683),
    "tiny": dict(vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, intermediate_size=176),
}
EXPECTED_PARAMETERS = {"model1": 419_472_896, "model2": 303_362_048}


# ----------------------------------------------------------------------------------------
# Config (SPEC §5 field names)

@dataclass
class HessGPTConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True
    max_position_embeddings: int = 1024
    rope_scaling: Optional[dict] = None
    logit_softcap: float = 30.0
    qk_norm: bool = True

    REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "intermediate_size")

    @classmethod
    def from_dict(cls, d: dict) -> "HessGPTConfig":
        for name in cls.REQUIRED:
            if name not in d:
                raise ValueError(f"model config: missing field '{name}'")
        known = set(cls.__dataclass_fields__)
        # Unknown keys (architectures, model_type, torch_dtype, ...) are ignored; null means
        # the default, except rope_scaling (null = off) and logit_softcap (null = no cap).
        values = {k: v for k, v in d.items() if k in known and v is not None}
        values["rope_scaling"] = d.get("rope_scaling")
        if "logit_softcap" in d and d["logit_softcap"] is None:
            values["logit_softcap"] = 0.0
        cfg = cls(**values)
        cfg.validate()
        return cfg

    @classmethod
    def load(cls, preset_or_path: str) -> "HessGPTConfig":
        if preset_or_path in PRESETS:
            return cls.from_dict(PRESETS[preset_or_path])
        with open(preset_or_path) as f:
            return cls.from_dict(json.load(f))

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        for name in self.REQUIRED + ("max_position_embeddings",):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"model config: {name} must be positive")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("model config: hidden_size must be divisible by num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("model config: num_attention_heads must be divisible by num_key_value_heads")
        if self.head_dim % 2:
            raise ValueError("model config: head_dim must be even (RoPE)")
        if not self.tie_word_embeddings:
            raise ValueError("model config: tie_word_embeddings must be true (HessGPT ties the head)")
        if self.rope_scaling is not None:
            rs = self.rope_scaling
            kind = rs.get("rope_type", rs.get("type"))
            if kind != "yarn":
                raise ValueError(f"model config: rope_scaling.rope_type '{kind}' unsupported (only 'yarn')")
            if "factor" not in rs:
                raise ValueError("model config: missing field 'rope_scaling.factor'")
            for unsupported in ("mscale", "mscale_all_dim"):
                if rs.get(unsupported) is not None:
                    raise ValueError(f"model config: rope_scaling.{unsupported} is not supported")


# ----------------------------------------------------------------------------------------
# RoPE and YaRN

def yarn_correction_range(beta_fast: float, beta_slow: float, dim: int, base: float,
                          original_max_pos: int, truncate: bool = True) -> Tuple[float, float]:
    """Dimension-pair indices [low, high] between which YaRN blends (HF find_correction_range).

    A pair i rotates original_max_pos * base^(-2i/dim) / (2 pi) times over the original
    context; solving for the pair that makes `r` rotations gives the correction dim."""
    def correction_dim(num_rotations: float) -> float:
        return dim * math.log(original_max_pos / (num_rotations * 2 * math.pi)) / (2 * math.log(base))
    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, dim - 1)


def rope_inv_freq(cfg: HessGPTConfig) -> Tuple[torch.Tensor, float]:
    """Inverse frequencies [head_dim/2] (float64) and the cos/sin attention factor.

    Without rope_scaling: theta^(-2i/hd).  With YaRN: transformers'
    `_compute_yarn_parameters` (NTK-by-parts): pairs below `low` keep their frequency
    (extrapolation), pairs above `high` are divided by `factor` (interpolation), a linear ramp
    in between; attention_factor = 0.1 ln(factor) + 1 multiplies cos and sin.  The correction
    range uses rope_scaling.original_max_position_embeddings (the pre-YaRN context;
    falls back to max_position_embeddings, as HF does), and `factor` is the explicit
    rope_scaling.factor.  Computed in float64 (HF uses float32; differences ~1e-7 relative)."""
    dim = cfg.head_dim
    base = float(cfg.rope_theta)
    pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    inv_freq_extrapolation = 1.0 / pos_freqs
    rs = cfg.rope_scaling
    if rs is None:
        return inv_freq_extrapolation, 1.0

    factor = float(rs["factor"])
    original = int(rs.get("original_max_position_embeddings") or cfg.max_position_embeddings)
    beta_fast = float(rs.get("beta_fast") or 32)
    beta_slow = float(rs.get("beta_slow") or 1)
    attention_factor = rs.get("attention_factor")
    if attention_factor is None:
        attention_factor = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0

    inv_freq_interpolation = 1.0 / (factor * pos_freqs)
    low, high = yarn_correction_range(beta_fast, beta_slow, dim, base, original,
                                      bool(rs.get("truncate", True)))
    if low == high:
        high += 0.001  # avoid a division by zero, as HF does
    ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    extrapolation_factor = 1.0 - ramp
    inv_freq = (inv_freq_interpolation * (1 - extrapolation_factor)
                + inv_freq_extrapolation * extrapolation_factor)
    return inv_freq, float(attention_factor)


def rope_cos_sin(cfg: HessGPTConfig, seq_len: int, dtype: torch.dtype,
                 device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [T, head_dim] for positions 0..T-1 (rotate-half layout: both halves equal).

    Angles position*inv_freq are formed in float64 and only the final cos/sin (times the
    YaRN attention factor) are rounded to the working dtype (SPEC §1)."""
    inv_freq, attention_factor = rope_inv_freq(cfg)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    cos = (angles.cos() * attention_factor).to(dtype=dtype, device=device)
    sin = (angles.sin() * attention_factor).to(dtype=dtype, device=device)
    return cos, sin


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, T, heads, hd]; dimension i is paired with i + hd/2."""
    cos = cos[None, :, None, :]
    sin = sin[None, :, None, :]
    return x * cos + rotate_half(x) * sin


# ----------------------------------------------------------------------------------------
# Layers

class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * w over the last dimension; weight only."""

    def __init__(self, dim: int, eps: float, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


def causal_gqa_attention_reference(q, k, v):
    """Plain causal softmax attention.  q [B,T,H,hd], k/v [B,T,KV,hd] -> [B,T,H,hd].
    Query head h reads KV head h // (H/KV) (HF repeat_kv order)."""
    B, T, H, hd = q.shape
    group = H // k.shape[2]
    k = k.repeat_interleave(group, dim=2)
    v = v.repeat_interleave(group, dim=2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, hd]
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    probs = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    return (probs @ v).transpose(1, 2)


_MASK_CACHE: Dict[tuple, torch.Tensor] = {}


def causal_gqa_attention_fast(q, k, v):
    """Same result, shaped for speed (torch 1.13 has no fused SDPA): the H/KV query heads of
    a group are stacked along the rows so each KV head is used by one big matmul and K/V are
    never repeated.  Scores [B, KV, G*T, T]."""
    B, T, H, hd = q.shape
    KV = k.shape[2]
    G = H // KV
    key = (T, G, q.device)
    mask = _MASK_CACHE.get(key)
    if mask is None:
        mask = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1).repeat(G, 1)
        _MASK_CACHE[key] = mask
    qg = (q * (1.0 / math.sqrt(hd))).view(B, T, KV, G, hd).permute(0, 2, 3, 1, 4).reshape(B, KV, G * T, hd)
    scores = torch.matmul(qg, k.permute(0, 2, 3, 1))        # [B, KV, G*T, T]
    scores.masked_fill_(mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs, v.transpose(1, 2))              # [B, KV, G*T, hd]
    return out.view(B, KV, G, T, hd).permute(0, 3, 1, 2, 4).reshape(B, T, H, hd)


ATTENTION = {"reference": causal_gqa_attention_reference, "fast": causal_gqa_attention_fast}


def _record(trace, name, tensor):
    if trace is not None:
        trace[name] = tensor.detach().clone()


class Attention(nn.Module):
    def __init__(self, cfg: HessGPTConfig, attn_impl: str, device=None, dtype=None):
        super().__init__()
        d, H, KV, hd = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        kw = dict(bias=False, device=device, dtype=dtype)
        self.q_proj = nn.Linear(d, H * hd, **kw)
        self.k_proj = nn.Linear(d, KV * hd, **kw)
        self.v_proj = nn.Linear(d, KV * hd, **kw)
        self.o_proj = nn.Linear(H * hd, d, **kw)
        self.qk_norm = cfg.qk_norm
        if cfg.qk_norm:
            self.q_norm = RMSNorm(hd, cfg.rms_norm_eps, device, dtype)
            self.k_norm = RMSNorm(hd, cfg.rms_norm_eps, device, dtype)
        self.H, self.KV, self.hd = H, KV, hd
        self.attend = ATTENTION[attn_impl]

    def forward(self, x, cos, sin, trace=None, prefix=""):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.H, self.hd)
        k = self.k_proj(x).view(B, T, self.KV, self.hd)
        v = self.v_proj(x).view(B, T, self.KV, self.hd)
        _record(trace, prefix + "q", q)
        _record(trace, prefix + "k", k)
        _record(trace, prefix + "v", v)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
            _record(trace, prefix + "q_normed", q)
            _record(trace, prefix + "k_normed", k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        _record(trace, prefix + "q_rope", q)
        _record(trace, prefix + "k_rope", k)
        o = self.attend(q, k, v).reshape(B, T, self.H * self.hd)
        _record(trace, prefix + "attn_out", o)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, cfg: HessGPTConfig, device=None, dtype=None):
        super().__init__()
        kw = dict(bias=False, device=device, dtype=dtype)
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, **kw)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, **kw)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, **kw)

    def forward(self, x, trace=None, prefix=""):
        act = F.silu(self.gate_proj(x)) * self.up_proj(x)
        _record(trace, prefix + "mlp_act", act)
        return self.down_proj(act)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: HessGPTConfig, attn_impl: str, device=None, dtype=None):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, device, dtype)
        self.self_attn = Attention(cfg, attn_impl, device, dtype)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, device, dtype)
        self.mlp = MLP(cfg, device, dtype)

    def forward(self, h, cos, sin, trace=None, prefix=""):
        a = self.input_layernorm(h)
        _record(trace, prefix + "attn_norm", a)
        h = h + self.self_attn(a, cos, sin, trace, prefix)
        _record(trace, prefix + "h_attn", h)
        f = self.post_attention_layernorm(h)
        _record(trace, prefix + "mlp_norm", f)
        h = h + self.mlp(f, trace, prefix)
        _record(trace, prefix + "h_out", h)
        return h


class HessGPTModel(nn.Module):
    """The `model.` part of the parameter names."""

    def __init__(self, cfg: HessGPTConfig, attn_impl: str, device=None, dtype=None):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size, device=device, dtype=dtype)
        self.layers = nn.ModuleList(DecoderLayer(cfg, attn_impl, device, dtype)
                                    for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, device, dtype)


class HessGPT(nn.Module):
    """Parameter names are exactly those of SPEC §5 (model.embed_tokens.weight, ...)."""

    def __init__(self, cfg: HessGPTConfig, attn_impl: str = "reference", device=None, dtype=None):
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.model = HessGPTModel(cfg, attn_impl, device, dtype)
        self._rope_cache = {}

    def rope(self, seq_len: int, dtype, device):
        key = (seq_len, dtype, device)
        if key not in self._rope_cache:
            self._rope_cache[key] = rope_cos_sin(self.config, seq_len, dtype, device)
        return self._rope_cache[key]

    def hidden(self, input_ids: torch.Tensor, trace: Optional[dict] = None) -> torch.Tensor:
        """input_ids [B, T] -> final RMSNorm output [B, T, d] (the head's input)."""
        B, T = input_ids.shape
        emb = self.model.embed_tokens.weight
        cos, sin = self.rope(T, emb.dtype, emb.device)
        h = self.model.embed_tokens(input_ids)
        _record(trace, "embed", h)
        for i, layer in enumerate(self.model.layers):
            h = layer(h, cos, sin, trace, f"layers.{i}.")
        h = self.model.norm(h)
        _record(trace, "final_norm", h)
        return h

    def forward(self, input_ids: torch.Tensor, targets: Optional[torch.Tensor] = None,
                trace: Optional[dict] = None):
        """input_ids [B, T] -> (logits [B, T, V] after soft-cap, loss or None, n_targets).

        The loss is sum of the token NLLs / number of targets != -100 (0 when there are none).
        `trace`, when a dict, receives every named intermediate (see README)."""
        h = self.hidden(input_ids, trace)
        logits = F.linear(h, self.model.embed_tokens.weight)  # tied head: h E^T
        cap = float(self.config.logit_softcap)
        if cap > 0:
            _record(trace, "logits_raw", logits)
            logits = cap * torch.tanh(logits / cap)
        if targets is None:
            return logits, None, 0
        flat_targets = targets.reshape(-1)
        n_targets = int((flat_targets != IGNORE_INDEX).sum())
        nll_sum = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), flat_targets,
                                  ignore_index=IGNORE_INDEX, reduction="sum")
        return logits, nll_sum / max(n_targets, 1), n_targets


class FusedSoftcapHeadLoss(torch.autograd.Function):
    """loss = mean CE(softcap(h E^T), targets) for training, never materialising [N, V] whole:
    rows go through in chunks whose logits stay in cache, and the gradients w.r.t. h and E
    are formed during the forward pass (llm.c's fused classifier; Liger's fused linear CE).
    h [N, d], E [V, d], targets [N]."""

    @staticmethod
    def forward(ctx, h, E, targets, cap: float, chunk: int):
        valid_all = targets != IGNORE_INDEX
        n = max(int(valid_all.sum()), 1)
        grad_h, grad_E = torch.empty_like(h), torch.zeros_like(E)
        total = 0.0
        for s in range(0, h.shape[0], chunk):
            hc, valid = h[s:s + chunk], valid_all[s:s + chunk]
            tc = targets[s:s + chunk].clamp(min=0)[:, None]
            weight = valid.to(h.dtype) / n
            if cap > 0:
                t = (hc * (1.0 / cap)) @ E.t()            # z / cap
                t.tanh_()
                logits = t * cap
            else:
                logits = hc @ E.t()
            picked = logits.gather(1, tc).squeeze(1)
            row_max = logits.amax(dim=-1, keepdim=True)
            g = logits.sub_(row_max).exp_()               # one exp pass serves loss and grad
            row_sum = g.sum(dim=-1, keepdim=True)
            lse = (row_max + row_sum.log()).squeeze(1)
            total += float(((lse - picked) * weight).sum())
            g.mul_(weight[:, None] / row_sum)              # softmax / n on counted rows
            g.scatter_add_(1, tc, -weight[:, None])         # - onehot(target) / n
            if cap > 0:
                g.addcmul_(g, t.mul_(t), value=-1.0)       # * (1 - tanh^2)
            torch.mm(g, E, out=grad_h[s:s + chunk])
            grad_E.addmm_(g.t(), hc)
        ctx.save_for_backward(grad_h, grad_E)
        return h.new_tensor(total)

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_E = ctx.saved_tensors
        return grad_h * grad_out, grad_E * grad_out, None, None, None


def fused_train_loss(model: HessGPT, input_ids: torch.Tensor, targets: torch.Tensor,
                     chunk: int = 256) -> torch.Tensor:
    """Same loss as model(input_ids, targets)[1], cheaper for training (no logits returned)."""
    h = model.hidden(input_ids)
    return FusedSoftcapHeadLoss.apply(h.reshape(-1, h.shape[-1]), model.model.embed_tokens.weight,
                                      targets.reshape(-1), float(model.config.logit_softcap), chunk)


def count_parameters(cfg: HessGPTConfig) -> int:
    """Built on the meta device, so model1-sized configs cost no memory."""
    model = HessGPT(cfg, device="meta")
    return sum(p.numel() for p in model.parameters())


def is_matrix(name: str) -> bool:
    return not name.endswith("norm.weight")


@torch.no_grad()
def init_weights(model: HessGPT, seed: int, norm_noise: float = 0.0) -> None:
    """SPEC §1: N(0, 0.02) for matrices, Wo and Wdown scaled by 1/sqrt(2L), norms = 1.
    `norm_noise` > 0 draws the norm weights from 1 + N(0, norm_noise) instead (for tests that
    must see the norm weights used)."""
    gen = torch.Generator().manual_seed(seed)
    n_layers = model.config.num_hidden_layers
    for name, p in model.named_parameters():
        if is_matrix(name):
            std = 0.02
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                std /= math.sqrt(2 * n_layers)
            p.copy_(torch.empty(p.shape, dtype=torch.float32).normal_(0.0, std, generator=gen))
        elif norm_noise > 0:
            p.copy_(1 + torch.empty(p.shape, dtype=torch.float32).normal_(0.0, norm_noise, generator=gen))
        else:
            p.fill_(1.0)


# ----------------------------------------------------------------------------------------
# Checkpoint directories

def load_checkpoint(directory: str, dtype=torch.float64, attn_impl: str = "reference") -> HessGPT:
    with open(os.path.join(directory, "config.json")) as f:
        cfg = HessGPTConfig.from_dict(json.load(f))
    rs = cfg.rope_scaling
    if rs is not None and rs.get("original_max_position_embeddings") is not None:
        implied = cfg.max_position_embeddings / rs["original_max_position_embeddings"]
        if abs(implied - float(rs["factor"])) > 1e-9:
            print(f"hessgpt_torch: note: max_position_embeddings / original_max_position_embeddings "
                  f"= {implied:g} differs from rope_scaling.factor = {rs['factor']}; using factor "
                  f"(as current transformers does; transformers 4.5x used the ratio)", file=sys.stderr)
    weights, _ = read_safetensors(os.path.join(directory, "model.safetensors"))
    model = HessGPT(cfg, attn_impl=attn_impl, dtype=dtype)
    expected = dict(model.named_parameters())
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{directory}/model.safetensors: missing tensors {missing[:8]}, "
                         f"unexpected tensors {unexpected[:8]}")
    with torch.no_grad():
        for name, p in expected.items():
            w = weights[name]
            if tuple(w.shape) != tuple(p.shape):
                raise ValueError(f"tensor '{name}' has shape {list(w.shape)}, config needs {list(p.shape)}")
            p.copy_(torch.from_numpy(w.astype(np.float64)))
    return model


def save_checkpoint(model: HessGPT, directory: str, weights_dtype: str = "F32") -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(model.config.to_dict(), f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(directory, "model.safetensors"),
                      {n: p.detach().float() for n, p in model.named_parameters()}, weights_dtype)


# ----------------------------------------------------------------------------------------
# Oracle run

def _load_ids(path: str, what: str) -> np.ndarray:
    arr = np.load(path)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{path}: {what} must be an integer array, got {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{path}: {what} must be [B, T] (or [T]), got shape {list(arr.shape)}")
    return arr.astype(np.int64)


def next_token_targets(inputs: np.ndarray) -> np.ndarray:
    """targets[:, t] = inputs[:, t+1], the last position ignored (-100)."""
    targets = np.full_like(inputs, IGNORE_INDEX)
    targets[:, :-1] = inputs[:, 1:]
    return targets


def run_oracle(args) -> dict:
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    model = load_checkpoint(args.checkpoint, dtype=dtype)
    V = model.config.vocab_size
    inputs = _load_ids(args.inputs, "inputs")
    targets = _load_ids(args.targets, "targets") if args.targets else next_token_targets(inputs)
    if targets.shape != inputs.shape:
        raise ValueError(f"targets shape {list(targets.shape)} != inputs shape {list(inputs.shape)}")
    if inputs.min() < 0 or inputs.max() >= V:
        raise ValueError(f"input ids must lie in [0, {V})")
    bad = (targets != IGNORE_INDEX) & ((targets < 0) | (targets >= V))
    if bad.any():
        raise ValueError(f"targets must lie in [0, {V}) or be {IGNORE_INDEX}")

    trace = {} if args.dump_activations else None
    logits, loss, n_targets = model(torch.from_numpy(inputs), torch.from_numpy(targets), trace)
    os.makedirs(args.out, exist_ok=True)
    np.save(os.path.join(args.out, "logits.npy"), logits.detach().numpy().astype(np.float32))
    result = {"loss": float(loss), "tokens": n_targets}
    with open(os.path.join(args.out, "loss.json"), "w") as f:
        json.dump(result, f)
        f.write("\n")
    if not args.no_grads:
        loss.backward()
        write_safetensors(os.path.join(args.out, "grads.safetensors"),
                          {n: p.grad.float() for n, p in model.named_parameters()}, "F32")
    if trace is not None:
        write_safetensors(os.path.join(args.out, "activations.safetensors"),
                          {n: t.float() for n, t in trace.items()}, "F32")
    inv_freq, attention_factor = rope_inv_freq(model.config)
    with open(os.path.join(args.out, "rope.json"), "w") as f:
        json.dump({"inv_freq": inv_freq.tolist(), "attention_factor": attention_factor}, f)
        f.write("\n")
    return result


def init_random(args) -> None:
    cfg = HessGPTConfig.load(args.config)
    model = HessGPT(cfg, dtype=torch.float32)
    init_weights(model, args.seed, args.norm_noise)
    save_checkpoint(model, args.out_checkpoint, args.weights_dtype)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="HessGPT PyTorch oracle (SPEC §1, §5)")
    p.add_argument("--checkpoint", help="directory with config.json + model.safetensors")
    p.add_argument("--inputs", help=".npy int32/int64 token ids [B, T] (or [T])")
    p.add_argument("--targets", help=".npy integer targets [B, T], -100 = ignore "
                   "(default: next-token targets of --inputs, last position ignored)")
    p.add_argument("--out", help="output directory: logits.npy, loss.json, grads.safetensors, rope.json")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--no-grads", action="store_true", help="skip backward and grads.safetensors")
    p.add_argument("--dump-activations", action="store_true",
                   help="also write activations.safetensors with every named intermediate")
    p.add_argument("--init-random", action="store_true", help="write a random checkpoint")
    p.add_argument("--config", help="with --init-random: preset name (model1 model2 small tiny) or config JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-checkpoint", help="with --init-random: directory to write")
    p.add_argument("--norm-noise", type=float, default=0.0,
                   help="with --init-random: norm weights 1 + N(0, x) instead of 1")
    p.add_argument("--weights-dtype", choices=["F32", "BF16", "F64"], default="F32")
    p.add_argument("--self-test", action="store_true", help="run the built-in checks")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: the oracle's shapes are small; threads only add noise)")
    args = p.parse_args(argv)
    torch.set_num_threads(max(args.threads, 1))

    try:
        if args.self_test:
            from oracle_self_test import run_self_test  # noqa: E402 (same directory)
            return run_self_test()
        if args.init_random:
            if not (args.config and args.out_checkpoint):
                p.error("--init-random needs --config and --out-checkpoint")
            init_random(args)
            return 0
        if not (args.checkpoint and args.inputs and args.out):
            p.error("need --checkpoint, --inputs and --out (or --init-random / --self-test)")
        print(json.dumps(run_oracle(args)))
        return 0
    except (ValueError, OSError, KeyError) as e:
        print(f"hessgpt_torch: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
