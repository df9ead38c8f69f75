#!/usr/bin/python3
"""Checks of the PyTorch oracle against things it does not share code with: hand-computed
YaRN frequencies, an explicit-loop NumPy forward pass, finite differences (gradcheck), the
SPEC parameter counts, and the CLI end to end.  Run: hessgpt_torch.py --self-test."""

import contextlib
import io
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch
from torch.nn.utils.stateless import functional_call

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hessgpt_torch as ht  # noqa: E402
import safetensors_np  # noqa: E402

YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024,
        "beta_fast": 32.0, "beta_slow": 1.0}


def micro_config(**overrides) -> ht.HessGPTConfig:
    """A shape small enough for finite differences; H*hd != d and GQA on purpose."""
    d = dict(vocab_size=13, hidden_size=8, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=4, intermediate_size=12, logit_softcap=2.0,
             rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4,
                           "beta_fast": 32.0, "beta_slow": 1.0},
             max_position_embeddings=16)
    d.update(overrides)
    return ht.HessGPTConfig.from_dict(d)


def random_model(cfg, seed=0, scale=8.0, attn_impl="reference", dtype=torch.float64):
    """Weights large enough that soft-capping and the norms are far from linear."""
    model = ht.HessGPT(cfg, attn_impl=attn_impl, dtype=dtype)
    ht.init_weights(model, seed, norm_noise=0.3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ht.is_matrix(name):
                p.mul_(scale)
    return model


def random_batch(cfg, B, T, seed=1, n_ignored=3):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (B, T), generator=gen)
    targets = torch.randint(0, cfg.vocab_size, (B, T), generator=gen)
    targets.view(-1)[torch.randperm(B * T, generator=gen)[:n_ignored]] = ht.IGNORE_INDEX
    return ids, targets


# ----------------------------------------------------------------------------------------
# Independent references

def hand_inv_freq(head_dim, theta, yarn=None, max_pos=1024):
    """YaRN inverse frequencies in plain Python floats, straight from the paper/HF formulas."""
    half = head_dim // 2
    plain = [theta ** (-2.0 * i / head_dim) for i in range(half)]
    if yarn is None:
        return plain, 1.0, None
    s = yarn["factor"]
    orig = yarn.get("original_max_position_embeddings") or max_pos
    # pair i completes orig * theta^(-2i/hd) / (2 pi) turns; solve for beta turns
    dim_for = lambda turns: head_dim * math.log(orig / (turns * 2 * math.pi)) / (2 * math.log(theta))
    low = max(math.floor(dim_for(yarn["beta_fast"])), 0)
    high = min(math.ceil(dim_for(yarn["beta_slow"])), head_dim - 1)
    top = high + 0.001 if low == high else high
    out = []
    for i in range(half):
        ramp = min(max((i - low) / (top - low), 0.0), 1.0)  # 0: keep, 1: interpolate
        out.append(plain[i] / s * ramp + plain[i] * (1.0 - ramp))
    return out, 0.1 * math.log(s) + 1.0, (low, high)


def numpy_forward(weights, cfg, ids):
    """Loop-by-loop float64 forward of one sequence: logits [T, V] after the soft-cap."""
    T, H, KV, hd = len(ids), cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    half, eps = hd // 2, cfg.rms_norm_eps
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    inv, m, _ = hand_inv_freq(hd, cfg.rope_theta, cfg.rope_scaling, cfg.max_position_embeddings)

    def rms(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g

    def rope(x):  # x [T, heads, hd]
        y = np.empty_like(x)
        for t in range(T):
            for i in range(half):
                c, s = math.cos(t * inv[i]) * m, math.sin(t * inv[i]) * m
                x1, x2 = x[t, :, i], x[t, :, i + half]
                y[t, :, i], y[t, :, i + half] = x1 * c - x2 * s, x2 * c + x1 * s
        return y

    h = w["model.embed_tokens.weight"][ids]
    for layer in range(cfg.num_hidden_layers):
        p = f"model.layers.{layer}."
        a = rms(h, w[p + "input_layernorm.weight"])
        q = (a @ w[p + "self_attn.q_proj.weight"].T).reshape(T, H, hd)
        k = (a @ w[p + "self_attn.k_proj.weight"].T).reshape(T, KV, hd)
        v = (a @ w[p + "self_attn.v_proj.weight"].T).reshape(T, KV, hd)
        if cfg.qk_norm:
            q, k = rms(q, w[p + "self_attn.q_norm.weight"]), rms(k, w[p + "self_attn.k_norm.weight"])
        q, k = rope(q), rope(k)
        o = np.zeros((T, H, hd))
        for head in range(H):
            kv = head // (H // KV)
            for t in range(T):
                scores = np.array([q[t, head] @ k[s, kv] for s in range(t + 1)]) / math.sqrt(hd)
                probs = np.exp(scores - scores.max())
                probs /= probs.sum()
                o[t, head] = sum(probs[s] * v[s, kv] for s in range(t + 1))
        h = h + o.reshape(T, H * hd) @ w[p + "self_attn.o_proj.weight"].T
        f = rms(h, w[p + "post_attention_layernorm.weight"])
        g, u = f @ w[p + "mlp.gate_proj.weight"].T, f @ w[p + "mlp.up_proj.weight"].T
        h = h + (g / (1 + np.exp(-g)) * u) @ w[p + "mlp.down_proj.weight"].T
    z = rms(h, w["model.norm.weight"]) @ w["model.embed_tokens.weight"].T
    cap = cfg.logit_softcap
    return cap * np.tanh(z / cap) if cap > 0 else z


def numpy_loss(logits, targets):
    total, n = 0.0, 0
    for z, t in zip(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)):
        if t != ht.IGNORE_INDEX:
            total += np.log(np.exp(z - z.max()).sum()) + z.max() - z[t]
            n += 1
    return total / max(n, 1), n


# ----------------------------------------------------------------------------------------
# Checks (each returns a short detail string or raises AssertionError)

def check_yarn_hand():
    cfg = ht.HessGPTConfig.from_dict(dict(ht.PRESETS["model1"], rope_scaling=YARN,
                                          max_position_embeddings=4096))
    inv, m = ht.rope_inv_freq(cfg)
    hand, hand_m, (low, high) = hand_inv_freq(64, 10000.0, YARN)
    # By hand: 64 ln(1024 / (32 * 2pi)) / (2 ln 1e4) = 5.657 -> 5; 64 ln(1024 / 2pi) / (2 ln 1e4) = 17.70 -> 18
    assert (low, high) == (5, 18), (low, high)
    assert ht.yarn_correction_range(32, 1, 64, 10000.0, 1024) == (5, 18)
    err = max(abs(a - b) / b for a, b in zip(inv.tolist(), hand))
    assert err < 1e-15, err
    assert abs(m - 1.1386294361119891) < 1e-15 and abs(hand_m - m) < 1e-15, m
    close = lambda a, b: abs(a / b - 1) < 1e-15
    assert inv[0] == 1.0 and close(inv[5], 10000 ** (-10 / 64))     # pairs <= low: untouched
    assert close(inv[18], 10000 ** (-36 / 64) / 4)                  # pairs >= high: / factor
    mid = 10000 ** (-22 / 64) * (1 - 6 / 13 * 0.75)                  # pair 11: ramp 6/13
    assert close(inv[11], mid), (inv[11].item(), mid)
    # transformers computes the same in float32
    pos = 10000.0 ** (torch.arange(0, 64, 2).float() / 64)
    ramp = ((torch.arange(32, dtype=torch.float32) - 5) / (18 - 5)).clamp(0, 1)
    hf = 1.0 / (4 * pos) * ramp + 1.0 / pos * (1 - ramp)
    hf_err = ((inv - hf.double()).abs() / inv).max().item()
    assert hf_err < 1e-6, hf_err
    # degenerate range: low == high gets the +0.001 and the ramp stays 0 below it
    assert ht.yarn_correction_range(32, 1, 4, 10000.0, 300_000_000) == (3, 3)
    deg = ht.HessGPTConfig.from_dict(dict(ht.PRESETS["tiny"], head_dim=4, rope_scaling=dict(
        YARN, original_max_position_embeddings=300_000_000)))
    want, _, _ = hand_inv_freq(4, 10000.0, deg.rope_scaling)
    assert torch.allclose(ht.rope_inv_freq(deg)[0], torch.tensor(want, dtype=torch.float64), rtol=1e-15)
    assert torch.equal(ht.rope_inv_freq(deg)[0], 1 / 10000.0 ** (torch.arange(0, 4, 2).double() / 4))
    return f"low/high=5/18, max rel err vs hand {err:.1e}, vs HF float32 {hf_err:.1e}, m={m:.16f}"


def check_rope_geometry():
    cfg = ht.HessGPTConfig.from_dict(dict(ht.PRESETS["tiny"]))
    cos, sin = ht.rope_cos_sin(cfg, 64, torch.float64)
    x = torch.zeros(1, 64, 1, 16, dtype=torch.float64)
    x[..., 0] = 1.0  # unit vector on dim 0 must rotate towards dim 8 (= i + hd/2)
    y = ht.apply_rope(x, cos, sin)
    t = torch.arange(64, dtype=torch.float64)
    assert torch.allclose(y[0, :, 0, 0], torch.cos(t)) and torch.allclose(y[0, :, 0, 8], torch.sin(t))
    assert y[0, :, 0, [i for i in range(16) if i not in (0, 8)]].abs().max() == 0
    # relative-position property: <R_m q, R_n k> depends on m - n only; YaRN scales it by m^2
    for scaling in (None, dict(YARN, original_max_position_embeddings=16)):
        c = ht.HessGPTConfig.from_dict(dict(ht.PRESETS["tiny"], rope_scaling=scaling))
        cos, sin = ht.rope_cos_sin(c, 40, torch.float64)
        gen = torch.Generator().manual_seed(3)
        q, k = torch.randn(16, generator=gen, dtype=torch.float64), torch.randn(16, generator=gen, dtype=torch.float64)
        qs = ht.apply_rope(q.expand(1, 40, 1, 16), cos, sin)[0, :, 0]
        ks = ht.apply_rope(k.expand(1, 40, 1, 16), cos, sin)[0, :, 0]
        m2 = ht.rope_inv_freq(c)[1] ** 2
        for shift in (0, 3, 17):
            dots = torch.stack([qs[i + shift] @ ks[i] for i in range(40 - shift)])
            assert (dots - dots[0]).abs().max() < 1e-12
        assert abs(qs[0] @ ks[0] - m2 * (q @ k)) < 1e-12
    return "rotate-half pairing i<->i+hd/2, relative-position invariance, YaRN m^2 scaling"


def check_parameter_counts():
    counts = {}
    for name in ("model1", "model2", "small", "tiny"):
        cfg = ht.HessGPTConfig.from_dict(ht.PRESETS[name])
        n = ht.count_parameters(cfg)
        d, hd, f = cfg.hidden_size, cfg.head_dim, cfg.intermediate_size
        per_layer = (2 * d * cfg.num_attention_heads * hd + 2 * d * cfg.num_key_value_heads * hd
                     + 3 * d * f + 2 * d + 2 * hd)
        assert n == cfg.vocab_size * d + cfg.num_hidden_layers * per_layer + d, name
        counts[name] = n
    for name, want in ht.EXPECTED_PARAMETERS.items():
        assert counts[name] == want, (name, counts[name], want)
    no_qk = ht.count_parameters(ht.HessGPTConfig.from_dict(dict(ht.PRESETS["tiny"], qk_norm=False)))
    assert no_qk == counts["tiny"] - 2 * 2 * 16
    return ", ".join(f"{k}={v:,}" for k, v in counts.items())


def check_init():
    cfg = ht.HessGPTConfig.from_dict(ht.PRESETS["tiny"])  # L = 2: Wo, Wdown std 0.02 / 2
    model = ht.HessGPT(cfg, dtype=torch.float32)
    ht.init_weights(model, seed=11)
    stds = {}
    for name, p in model.named_parameters():
        if not ht.is_matrix(name):
            assert torch.all(p == 1), name
            continue
        want = 0.01 if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.02
        assert abs(p.std().item() / want - 1) < 0.05 and abs(p.mean().item()) < want / 10, name
        stds[name.split(".")[-2]] = round(p.std().item(), 4)
    again = ht.HessGPT(cfg, dtype=torch.float32)
    ht.init_weights(again, seed=11)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    return f"N(0, 0.02), Wo/Wdown / sqrt(2L), norms 1, seeded: {stds}"


def check_safetensors_roundtrip():
    gen = np.random.default_rng(0)
    tensors = {"a.weight": gen.standard_normal((3, 5)).astype(np.float32), "b": np.arange(7.0)}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("F32", "F64", "BF16"):
            path = os.path.join(tmp, f"{dtype}.safetensors")
            ht.write_safetensors(path, tensors, dtype)
            with open(path, "rb") as f:
                header_len = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(header_len))
            assert (8 + header_len) % 8 == 0 and header["a.weight"]["dtype"] == dtype
            back, meta = ht.read_safetensors(path)
            assert meta.get("format") == "pt" and set(back) == set(tensors)
            tol = {"F32": 1e-7, "F64": 1e-7, "BF16": 2 ** -8}[dtype]
            for k in tensors:
                assert back[k].shape == tensors[k].shape
                assert np.allclose(back[k], tensors[k], rtol=tol, atol=0), (dtype, k)
        exact = np.array([1.0, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5, 3e38], dtype=np.float32)
        bits = safetensors_np._f32_to_bf16(exact)  # ties round to even
        assert bits.tolist() == [0x3F80, 0x3F80, 0x3F82, 0xC020, 0x7F62], [hex(b) for b in bits]
    return "F32/F64/BF16 write+read, 8-byte aligned data, BF16 round-to-nearest-even"


def check_numpy_forward():
    details = []
    for overrides in ({}, dict(qk_norm=False, logit_softcap=0.0, rope_scaling=None),
                      dict(num_key_value_heads=4), dict(num_key_value_heads=1)):
        cfg = micro_config(**overrides)
        model = random_model(cfg, seed=4, scale=12.0)
        ids, targets = random_batch(cfg, 2, 9)
        logits, loss, n = model(ids, targets)
        weights = {k: v.detach().numpy() for k, v in model.named_parameters()}
        ref = np.stack([numpy_forward(weights, cfg, ids[b].numpy()) for b in range(2)])
        ref_loss, ref_n = numpy_loss(ref, targets.numpy())
        err = np.abs(logits.detach().numpy() - ref).max()
        assert err < 1e-12 and abs(loss.item() - ref_loss) < 1e-12 and n == ref_n, (overrides, err)
        assert ref.std() > 0.3, "logits too small to exercise the soft-cap"
        details.append(f"{err:.0e}")
    return "torch vs loop NumPy max |dlogit| " + "/".join(details) + " (yarn+qknorm+cap, plain, MHA, MQA)"


def check_fast_paths():
    cfg = micro_config()
    ids, targets = random_batch(cfg, 3, 11)
    outs = {}
    for impl in ("reference", "fast"):
        model = random_model(cfg, attn_impl=impl)
        logits, loss, _ = model(ids, targets)
        loss.backward()
        outs[impl] = (logits, {n: p.grad for n, p in model.named_parameters()})
    err = (outs["reference"][0] - outs["fast"][0]).abs().max().item()
    gerr = max((outs["reference"][1][n] - g).abs().max().item() for n, g in outs["fast"][1].items())
    assert err < 1e-13 and gerr < 1e-12, (err, gerr)
    # the fused chunked head (bench) against the plain one, with and without soft-cap
    ferr = 0.0
    for cap in (2.0, 0.0):
        c = micro_config(logit_softcap=cap)
        plain, fused = random_model(c), random_model(c, attn_impl="fast")
        ids, targets = random_batch(c, 3, 11, n_ignored=5)
        loss = plain(ids, targets)[1]
        loss.backward()
        floss = ht.fused_train_loss(fused, ids, targets, chunk=4)  # 33 rows: ragged last chunk
        (2.5 * floss).backward()
        ferr = max(ferr, abs(loss.item() - floss.item()))
        for (n, p), q in zip(plain.named_parameters(), fused.parameters()):
            ferr = max(ferr, (2.5 * p.grad - q.grad).abs().max().item())
    assert ferr < 1e-12, ferr
    empty = ht.fused_train_loss(fused, ids, torch.full_like(targets, ht.IGNORE_INDEX))
    assert empty.item() == 0.0
    return f"fast (grouped) vs reference attention: logits {err:.0e}, grads {gerr:.0e}; fused head {ferr:.0e}"


def check_causality_and_loss():
    cfg = micro_config()
    model = random_model(cfg)
    ids, targets = random_batch(cfg, 1, 12, n_ignored=0)
    changed = ids.clone()
    changed[0, 7:] = (changed[0, 7:] + 5) % cfg.vocab_size
    a, _, _ = model(ids)
    b, _, _ = model(changed)
    assert torch.equal(a[0, :7], b[0, :7]) and not torch.allclose(a[0, 7:], b[0, 7:])
    assert a.abs().max() <= cfg.logit_softcap
    logits, loss, n = model(ids, torch.full_like(ids, ht.IGNORE_INDEX))
    assert loss.item() == 0.0 and n == 0
    masked = targets.clone()
    masked[0, ::2] = ht.IGNORE_INDEX
    logits, loss, n = model(ids, masked)
    keep = masked[0] != ht.IGNORE_INDEX
    manual = -torch.log_softmax(logits[0], -1)[keep, masked[0][keep]].mean()
    assert n == 6 and abs(loss - manual) < 1e-14
    return "future tokens do not change past logits; |logits| <= cap; mean over non-ignored targets"


def check_gradcheck():
    names_for = {
        True: ["model.embed_tokens.weight", "model.layers.0.self_attn.q_norm.weight",
               "model.layers.1.self_attn.k_norm.weight", "model.layers.1.self_attn.k_proj.weight",
               "model.layers.0.self_attn.v_proj.weight", "model.layers.0.mlp.down_proj.weight",
               "model.layers.1.input_layernorm.weight", "model.norm.weight"],
        False: ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                "model.layers.1.self_attn.o_proj.weight", "model.layers.1.mlp.gate_proj.weight",
                "model.layers.0.post_attention_layernorm.weight"],
    }
    checked = 0
    for qk_norm, overrides in ((True, {}), (False, dict(qk_norm=False, logit_softcap=0.0, rope_scaling=None))):
        cfg = micro_config(**overrides)
        model = random_model(cfg, seed=7, scale=3.0)
        ids, targets = random_batch(cfg, 2, 7, seed=8)
        params = dict(model.named_parameters())
        names = names_for[qk_norm]

        def loss_of(*tensors):
            return functional_call(model, {**params, **dict(zip(names, tensors))}, (ids, targets))[1]

        inputs = tuple(params[n].detach().clone().requires_grad_(True) for n in names)
        assert torch.autograd.gradcheck(loss_of, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
        checked += sum(t.numel() for t in inputs)
    return f"torch.autograd.gradcheck float64 on {checked} weights (13 tensors, 2 configs)"


def quiet_main(argv):
    """ht.main with its stdout/stderr swallowed (the refusal test prints an error on purpose)."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        return ht.main(argv)


def check_cli_end_to_end():
    cfg_dict = dict(ht.PRESETS["tiny"], rope_scaling=dict(YARN, original_max_position_embeddings=8),
                    max_position_embeddings=32)
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path, ckpt, out = (os.path.join(tmp, n) for n in ("cfg.json", "ckpt", "out"))
        with open(cfg_path, "w") as f:
            json.dump(cfg_dict, f)
        assert quiet_main(["--init-random", "--config", cfg_path, "--seed", "5", "--out-checkpoint", ckpt,
                        "--norm-noise", "0.1"]) == 0
        gen = np.random.default_rng(1)
        inputs = gen.integers(0, 512, (2, 20)).astype(np.int32)
        targets = gen.integers(0, 512, (2, 20)).astype(np.int64)
        targets[1, :4] = -100
        np.save(os.path.join(tmp, "in.npy"), inputs)
        np.save(os.path.join(tmp, "tg.npy"), targets)
        base = ["--checkpoint", ckpt, "--inputs", os.path.join(tmp, "in.npy"),
                "--targets", os.path.join(tmp, "tg.npy")]
        assert quiet_main(base + ["--out", out, "--dump-activations"]) == 0
        logits = np.load(os.path.join(out, "logits.npy"))
        result = json.load(open(os.path.join(out, "loss.json")))
        grads, _ = ht.read_safetensors(os.path.join(out, "grads.safetensors"))
        weights, _ = ht.read_safetensors(os.path.join(ckpt, "model.safetensors"))
        acts, _ = ht.read_safetensors(os.path.join(out, "activations.safetensors"))
        assert logits.dtype == np.float32 and logits.shape == (2, 20, 512)
        assert result["tokens"] == 36 and abs(result["loss"] - math.log(512)) < 0.05, result
        assert set(grads) == set(weights) and all(grads[k].shape == weights[k].shape for k in grads)
        assert all(v.dtype == np.float32 for v in grads.values())
        assert acts["layers.1.q_rope"].shape == (2, 20, 4, 16) and "logits_raw" in acts
        # float32 run agrees with the float64 one; BF16 weights load
        assert quiet_main(base + ["--out", out + "32", "--dtype", "float32"]) == 0
        l32 = np.load(os.path.join(out + "32", "logits.npy"))
        g32, _ = ht.read_safetensors(os.path.join(out + "32", "grads.safetensors"))
        lerr = np.abs(l32 - logits).max()
        gerr = max(np.abs(g32[k] - grads[k]).max() / (np.abs(grads[k]).max() + 1e-30) for k in grads)
        assert lerr < 1e-5 and gerr < 1e-3, (lerr, gerr)
        # bad input is refused with a message, not a traceback
        np.save(os.path.join(tmp, "bad.npy"), np.array([[1, 600]]))
        assert quiet_main(["--checkpoint", ckpt, "--inputs", os.path.join(tmp, "bad.npy"), "--out", out]) == 1
        # next-token default targets
        assert quiet_main(["--checkpoint", ckpt, "--inputs", os.path.join(tmp, "in.npy"), "--out", out,
                        "--no-grads"]) == 0
        assert json.load(open(os.path.join(out, "loss.json")))["tokens"] == 38
    return f"init-random -> oracle CLI; float32 vs float64: logits {lerr:.1e}, grads rel {gerr:.1e}"


CHECKS = [check_yarn_hand, check_rope_geometry, check_parameter_counts, check_init, check_safetensors_roundtrip,
          check_numpy_forward, check_fast_paths, check_causality_and_loss, check_gradcheck,
          check_cli_end_to_end]


def run_self_test() -> int:
    failed = 0
    for check in CHECKS:
        start = time.time()
        try:
            detail = check()
            print(f"PASS {check.__name__:28s} {time.time() - start:5.1f}s  {detail}")
        except Exception as e:  # report every check, then fail
            failed += 1
            print(f"FAIL {check.__name__:28s} {type(e).__name__}: {e}")
    print(f"{len(CHECKS) - failed}/{len(CHECKS)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_self_test())
