#!/usr/bin/env python3
"""compare_fixture.py OURS.safetensors EXPECTED.safetensors INPUTS.safetensors [TOL]

Compares a `qwen2vl forward --out` file with a fixture case's expected.safetensors: integer tensors exactly, float
tensors by max |diff| over all positions and over the unpadded ones (attention_mask == 1) for logits [B,S,V] and
hidden_states [L+1,B,S,H]. Prints one line per shared tensor, then ALL MATCH or N MISMATCHES; exit 1 on a mismatch.
Plain Python (no numpy, no torch), so it runs, and is checked, on machines without either.
"""
import json
import math
import struct
import sys
from array import array

_FORMATS = {"F32": "f", "F64": "d", "I64": "q", "I32": "i", "I16": "h", "I8": "b", "U8": "B", "BOOL": "B"}


def load(path):
    """name -> (dtype, shape, flat list of values)."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        dtype = info["dtype"]
        if dtype == "BF16":  # the upper half of a float32
            halves = array("H", raw)
            values = array("f", b"".join(struct.pack("<I", h << 16) for h in halves))
        elif dtype == "F16":
            values = [struct.unpack("<e", raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
        elif dtype in _FORMATS:
            values = array(_FORMATS[dtype], raw)
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {dtype}, which this script does not read")
        if sys.byteorder != "little" and isinstance(values, array):
            values.byteswap()
        tensors[name] = (dtype, list(info["shape"]), list(values))
    return tensors


def is_float(dtype):
    return dtype in ("F32", "F64", "BF16", "F16")


def unpadded(key, shape, mask_shape, mask):
    """Flat indices of the positions attention_mask marks as real tokens, for logits and hidden_states; else None."""
    if mask is None or len(mask_shape) != 2:
        return None
    batch, seq = mask_shape
    if key == "logits" and len(shape) == 3 and shape[:2] == [batch, seq]:
        inner = shape[2]
        return [(b * seq + s) * inner + i for b in range(batch) for s in range(seq) if mask[b * seq + s] for i in range(inner)]
    if key == "hidden_states" and len(shape) == 4 and shape[1:3] == [batch, seq]:
        layers, inner = shape[0], shape[3]
        return [((l * batch + b) * seq + s) * inner + i
                for l in range(layers) for b in range(batch) for s in range(seq) if mask[b * seq + s] for i in range(inner)]
    return None


def compare(ours, expected, inputs, tol):
    """Lines to print and the number of mismatches."""
    mask_entry = inputs.get("attention_mask")
    mask_shape, mask = (mask_entry[1], mask_entry[2]) if mask_entry else (None, None)
    lines, bad = [], 0
    for key in sorted(set(ours) & set(expected)):
        (dtype_a, shape_a, a), (dtype_b, shape_b, b) = ours[key], expected[key]
        if shape_a != shape_b:
            lines.append(f"{key:32s} shape {tuple(shape_a)} vs {tuple(shape_b)}  MISMATCH")
            bad += 1
            continue
        if not (is_float(dtype_a) and is_float(dtype_b)):
            differ = sum(1 for x, y in zip(a, b) if x != y)
            lines.append(f"{key:32s} {'exact' if differ == 0 else f'{differ} differ  MISMATCH'}")
            bad += differ != 0
            continue
        diff = [abs(x - y) if not (math.isnan(x) or math.isnan(y)) else math.inf for x, y in zip(a, b)]
        full = max(diff, default=0.0)
        picked = unpadded(key, shape_a, mask_shape, mask)
        masked = max((diff[i] for i in picked), default=0.0) if picked is not None else full
        ok = masked <= tol
        bad += not ok
        lines.append(f"{key:32s} max|diff| {full:.2e} (unpadded {masked:.2e})  {'ok' if ok else 'MISMATCH'}")
    missing = sorted(set(expected) - set(ours))
    lines.append(f"compared {len(set(ours) & set(expected))} tensors (tolerance {tol:g}); not in ours: {len(missing)}")
    lines.append("ALL MATCH" if bad == 0 else f"{bad} MISMATCHES")
    return lines, bad


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    ours, expected, inputs = (load(p) for p in argv[1:4])
    tol = float(argv[4]) if len(argv) > 4 else 1e-4
    lines, bad = compare(ours, expected, inputs, tol)
    print("\n".join(lines))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
