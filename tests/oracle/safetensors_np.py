"""safetensors without the `safetensors` package: an 8-byte little-endian header length,
a JSON header {name: {dtype, shape, data_offsets}} (+ optional "__metadata__"), then the raw
little-endian tensor bytes.  Reads F64/F32/F16/BF16 and integer dtypes; writes F32/F64/F16/BF16."""

import json
import os
import struct
from typing import Dict, Optional, Tuple

import numpy as np
import torch

_NP_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U8": "u1", "U16": "<u2", "BOOL": "?"}


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _f32_to_bf16(x: np.ndarray) -> np.ndarray:
    """Round to nearest even; NaN stays NaN."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(0x7FC0), rounded).astype(np.uint16)


def read_safetensors(path: str) -> Tuple[Dict[str, np.ndarray], dict]:
    """name -> numpy array (BF16 becomes float32), plus __metadata__."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for safetensors")
    (header_len,) = struct.unpack("<Q", data[:8])
    if 8 + header_len > len(data):
        raise ValueError(f"{path}: header length {header_len} exceeds the file")
    header = json.loads(data[8:8 + header_len].decode("utf-8"))
    body = memoryview(data)[8 + header_len:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
        if not 0 <= start <= end <= len(body):
            raise ValueError(f"{path}: tensor '{name}' data_offsets {start}..{end} out of range")
        count = int(np.prod(shape, dtype=np.int64))
        if dtype == "BF16":
            itemsize = 2
            raw = np.frombuffer(body[start:end], dtype="<u2")
        elif dtype in _NP_DTYPES:
            itemsize = np.dtype(_NP_DTYPES[dtype]).itemsize
            raw = np.frombuffer(body[start:end], dtype=_NP_DTYPES[dtype])
        else:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {dtype}")
        if end - start != count * itemsize:
            raise ValueError(f"{path}: tensor '{name}' holds {end - start} bytes, shape {shape} "
                             f"x {dtype} needs {count * itemsize}")
        arr = _bf16_to_f32(raw) if dtype == "BF16" else raw.astype(raw.dtype.newbyteorder("="))
        tensors[name] = arr.reshape(shape).copy()
    return tensors, metadata


def write_safetensors(path: str, tensors: Dict[str, np.ndarray], dtype: str = "F32",
                      metadata: Optional[dict] = None) -> None:
    """Writes every tensor as `dtype` (F32, F64, F16 or BF16), names in sorted order."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        arr = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        if dtype == "BF16":
            blob = _f32_to_bf16(arr.astype(np.float32)).astype("<u2").tobytes()
        else:
            blob = np.ascontiguousarray(arr, dtype=_NP_DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = {"format": "pt", **(metadata or {})}
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # data starts 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)
