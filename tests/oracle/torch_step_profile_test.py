#!/usr/bin/python3
"""bench/torch_train_step.py --profile on the CPU: the step's time per category adds
up to the profiled total, the products are found, and the top list is ranked."""
import contextlib
import io
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "bench"))
import torch_train_step as tts  # noqa: E402


def main():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = tts.main(["--model", "tiny", "--batch", "2", "--seq", "16", "--steps", "1",
                       "--warmup", "1", "--threads", "1", "--profile", "--json"])
    assert rc == 0, rc
    p = json.loads(out.getvalue())["profile"]
    total = sum(p["categories_ms"].values())
    assert abs(total - p["total_ms"]) <= 1e-6 * max(1.0, total), (total, p["total_ms"])
    assert p["categories_ms"].get("products", 0.0) > 0.0, p["categories_ms"]
    times = [t["ms"] for t in p["top"]]
    assert times == sorted(times, reverse=True) and len(times) > 0, times
    # The products by shape: the forward's over the batch's 2 x 16 rows (m = 32) and
    # the weights' gradients summed over them (k = 32).
    products = p["products"]
    assert products and all(r["ms"] >= 0 and r["calls"] > 0 for r in products), products
    shapes = {(r["m"], r["n"], r["k"]) for r in products}
    assert any(k == 32 for (_, _, k) in shapes), shapes
    assert any(m == 32 for (m, _, _) in shapes), shapes
    assert tts.categorise("flash_fwd_kernel<cutlass::bfloat16_t>") == "attention"
    assert tts.categorise("nvjet_sm90_tst_128x256") == "products"
    assert tts.categorise("triton_per_fused_add_mul_0") == "elementwise"
    assert tts.categorise("void at::native::vectorized_elementwise_kernel") == "elementwise"
    assert tts.categorise("Memcpy DtoD (Device -> Device)") == "other"
    print("torch_step_profile_test: ok,", {k: round(v, 3) for k, v in p["categories_ms"].items()})


if __name__ == "__main__":
    main()
