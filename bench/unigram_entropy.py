#!/usr/bin/env python3
"""Unigram entropy (nats per token) of a prepared dataset's train split: the
loss of a model that knows token frequencies but no context. A language
model's validation loss should fall well below it.
Usage: /usr/bin/python3 bench/unigram_entropy.py DATA_DIR"""
import glob, json, math, sys
import numpy as np

data = sys.argv[1]
counts = np.zeros(65536, dtype=np.int64)
for path in sorted(glob.glob(f"{data}/chunk_*_train.npy")):
    rows = np.load(path, mmap_mode="r")
    counts += np.bincount(np.asarray(rows).ravel(), minlength=65536)
total = counts.sum()
p = counts[counts > 0] / total
entropy = float(-(p * np.log(p)).sum())
print(json.dumps({"tokens": int(total), "distinct": int((counts > 0).sum()),
                  "unigram_entropy_nats": entropy, "unigram_perplexity": math.exp(entropy)}))
