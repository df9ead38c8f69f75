#!/usr/bin/python3
"""PyTorch training-speed baseline for `hessgpt bench train` (CPU, float32).

The model is the oracle's (tests/oracle/hessgpt_torch.py) with its batched GQA attention
(matmul + causal mask + softmax; torch 1.13 has no fused scaled_dot_product_attention).
The loss head is by default a chunked fused soft-cap + cross-entropy (--head plain for the
autograd one).  A step is what the trainer does: forward, soft-capped cross-entropy, backward,
torch.optim.AdamW (lr 4e-4, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on matrices only,
SPEC §4), zero_grad.  Random token ids; timing starts after the warm-up steps.

    /usr/bin/python3 bench/torch_train_step.py --model small --batch 8 --seq 256 --steps 5 --threads 2 --json

On a GPU (--device cuda) it is the overview's own stack: FP32 master weights and AdamW state,
AdamW's fused CUDA kernel, BF16 autocast (--precision bf16), scaled_dot_product_attention
(causal, GQA) and, with --compile, torch.compile; it reports peak GPU memory too:

    python3 bench/torch_train_step.py --device cuda --precision bf16 --compile --head plain \
        --model model1 --batch 32 --seq 1024 --steps 10 --json
"""

import argparse
import json
import os
import re
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--model", default="small", help="preset (tiny small model1 model2) or config JSON")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--head", choices=["fused", "plain"], default="fused",
                   help="fused: chunked soft-capped CE computing its gradients in the forward "
                   "(as llm.c fuses its classifier); plain: logits [B*T, V] through autograd")
    p.add_argument("--chunk", type=int, default=256, help="rows per chunk of the fused head")
    p.add_argument("--clip", type=float, default=0.0, help="global-norm clip (0 = off)")
    p.add_argument("--foreach", choices=["auto", "on", "off"], default="auto",
                   help="AdamW multi-tensor path (auto = torch's default) where it is not fused")
    p.add_argument("--fused", choices=["auto", "on", "off"], default="auto",
                   help="AdamW's fused CUDA kernel (auto = on CUDA, as the overview's stack "
                   "runs it: 'AdamW (fused on CUDA)'; torch 1.13's CPU AdamW has none)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: autocast matrix products to BF16 (FP32 master weights)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--profile", action="store_true",
                   help="one more step under torch.profiler: its kernel time per category "
                   "(products, attention, elementwise, optimizer, other: hessgpt's bench train "
                   "--profile categories) and the top "
                   "kernels, in the JSON's \"profile\"")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = p.parse_args(argv)
    for name in ("batch", "seq", "steps", "threads", "chunk"):
        if getattr(args, name) <= 0:
            p.error(f"--{name} must be positive")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


# Kernel names to the parts of a step that hessgpt's `bench train --profile` reports,
# first match wins: attention before products (CUTLASS attention kernels say "cutlass").
PROFILE_CATEGORIES = (
    ("attention", r"flash|fmha|attention|sdpa|softmax_.*_kernel"),
    ("products", r"gemm|nvjet|cutlass|xmma|matmul|\bmm\b|addmm|sm90_|sm80_|cublas|aten::bmm"),
    ("optimizer", r"adam|multi_tensor|foreach"),
    # Inductor's fused kernels, and ATen's own elementwise and reductions:
    # hessgpt's norms, RoPE, SwiGLU, loss and conversions (TimedBackend::category).
    ("elementwise", r"^triton_|elementwise_kernel|reduce_kernel"),
)


def categorise(name):
    for category, pattern in PROFILE_CATEGORIES:
        if re.search(pattern, name, re.IGNORECASE):
            return category
    return "other"


def profile_step(step, cuda, top=15):
    """One step under torch.profiler: each kernel's (CPU: each op's) own time,
    summed per category and listed for the most expensive ones, in ms."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, record_shapes=True) as prof:
        step()
        if cuda:
            torch.cuda.synchronize()
    kernels = {}
    for e in prof.key_averages():
        if cuda:
            # Kernels are the events that ran on the device; the CPU-side ops
            # that launched them would count the same time twice.
            if getattr(e, "device_type", None) != torch.autograd.DeviceType.CUDA:
                continue
            us = getattr(e, "self_device_time_total", None)
            if us is None:
                us = e.self_cuda_time_total
        else:
            us = e.self_cpu_time_total
        if us > 0:
            kernels[e.key] = (us / 1000.0, e.count)
    categories = {}
    for name, (ms, _) in kernels.items():
        c = categorise(name)
        categories[c] = categories.get(c, 0.0) + ms
    ranked = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:top]
    return {
        "device": "cuda" if cuda else "cpu",
        "total_ms": sum(ms for ms, _ in kernels.values()),
        "categories_ms": dict(sorted(categories.items(), key=lambda kv: -kv[1])),
        "top": [{"name": n, "ms": ms, "calls": calls, "category": categorise(n)}
                for n, (ms, calls) in ranked],
        "products": products_by_shape(prof, cuda),
    }


# The ATen ops that are one matrix product each, and where their operands sit among
# the inputs (addmm's first is the addend).
PRODUCT_OPS = {"aten::mm": (0, 1), "aten::addmm": (1, 2), "aten::bmm": (0, 1),
               "aten::baddbmm": (1, 2)}


def products_by_shape(prof, cuda):
    """Each matrix product's time by shape, m x n over k (c[m, n] = a[m, k] b[k, n],
    times the batch for bmm), to set beside hessgpt's per-shape profile rows: the
    device time of the kernels an op launched (on the CPU: the op's own time), in ms."""
    rows = []
    for e in prof.key_averages(group_by_input_shape=True):
        where = PRODUCT_OPS.get(e.key)
        shapes = getattr(e, "input_shapes", None) or []
        if where is None or len(shapes) <= max(where):
            continue
        a, b = shapes[where[0]], shapes[where[1]]
        if len(a) < 2 or len(b) < 2:
            continue
        if cuda:
            us = getattr(e, "device_time_total", None)
            if us is None:
                us = e.cuda_time_total
        else:
            us = e.self_cpu_time_total
        batch = a[0] if len(a) == 3 else 1
        rows.append({"op": e.key, "m": a[-2], "n": b[-1], "k": a[-1], "batch": batch,
                     "ms": us / 1000.0, "calls": e.count})
    return sorted(rows, key=lambda r: -r["ms"])


def main(argv=None) -> int:
    args = parse_args(argv)
    # OpenBLAS and OpenMP read these when torch loads; torch.set_num_threads covers ATen.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    # Idle OpenMP workers sleep instead of spinning: with spinning, a core shared with
    # OpenBLAS's own threads or another process made steps 2-4x slower and erratic.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "tests", "oracle"))
    import hessgpt_torch as ht

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        cfg = ht.HessGPTConfig.load(args.model)
    except (ValueError, OSError) as e:
        print(f"torch_train_step: error: --model {args.model}: not a preset "
              f"({', '.join(ht.PRESETS)}) or a valid config JSON ({e})", file=sys.stderr)
        return 1
    cuda = args.device == "cuda"
    if cuda:
        def sdpa_attention(q, k, v):
            # q [B,T,H,hd], k/v [B,T,KV,hd]; SDPA wants heads before time.
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                   enable_gqa=True)
            return out.transpose(1, 2)
        ht.ATTENTION["sdpa"] = sdpa_attention
    model = ht.HessGPT(cfg, attn_impl="sdpa" if cuda else "fast", dtype=torch.float32)
    ht.init_weights(model, args.seed)
    model.to(args.device)
    model.train()
    compiled = torch.compile(model) if args.compile else model

    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if ht.is_matrix(n)], "weight_decay": 0.1},
              {"params": [p for n, p in named if not ht.is_matrix(n)], "weight_decay": 0.0}]
    fused = args.fused == "on" or (args.fused == "auto" and cuda)
    if fused:
        opt = torch.optim.AdamW(groups, lr=4e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    else:
        foreach = {"auto": None, "on": True, "off": False}[args.foreach]
        opt = torch.optim.AdamW(groups, lr=4e-4, betas=(0.9, 0.95), eps=1e-8, foreach=foreach)

    gen = torch.Generator().manual_seed(args.seed + 1)
    B, T = args.batch, args.seq

    import contextlib
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                if cuda and args.precision == "bf16" else contextlib.nullcontext())

    def step():
        seq = torch.randint(0, cfg.vocab_size, (B, T + 1), generator=gen).to(args.device)
        with autocast:
            if args.head == "fused":
                loss = ht.fused_train_loss(model, seq[:, :-1], seq[:, 1:], args.chunk)
            else:
                loss = compiled(seq[:, :-1], seq[:, 1:])[1]
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    losses = [step() for _ in range(args.warmup)]
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - start)

    elapsed = sum(times)
    profile = profile_step(step, cuda) if args.profile else None
    result = {
        "tokens_per_s": B * T * args.steps / elapsed,
        "seconds_per_step": elapsed / args.steps,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "model": args.model,
        "batch": B,
        "seq": T,
        "head": args.head,
        "steps": args.steps,
        "warmup": args.warmup,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds_per_step_min": min(times),
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "device": args.device,
        "precision": args.precision,
        "compile": args.compile,
        "adamw": "fused" if fused else {"auto": "torch's default", "on": "foreach",
                                         "off": "per tensor"}[args.foreach],
    }
    if cuda:
        result["gpu"] = torch.cuda.get_device_name()
        result["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
    if profile is not None:
        result["profile"] = profile
    if args.json:
        print(json.dumps(result))
    else:
        print(f"torch {result['torch']} {args.model} B={B} T={T} threads={result['threads']}: "
              f"{result['tokens_per_s']:.0f} tokens/s, {result['seconds_per_step']:.3f} s/step "
              f"(loss {losses[0]:.3f} -> {losses[-1]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
