#!/usr/bin/env python3
"""report.py OUT_DIR RESULTS_DIR

Turns what bench/gpu/run.sh left in OUT_DIR into RESULTS_DIR/<date>-<gpu>.md (and a copy in OUT_DIR, which is what
comes back from a lent GPU machine): the machine, `qwen2vl info`, the fixture parity of the bundle on CUDA (precompiled
PTX, and ILGPU's JIT), and the PyTorch + transformers numbers. Prints the path written. Plain Python.
"""
import datetime
import json
import os
import re
import sys


def read(out, name, default="(missing)"):
    try:
        with open(os.path.join(out, name)) as f:
            return f.read().strip()
    except OSError:
        return default


def slug(name):
    name = re.sub(r"^nvidia\s+", "", name.strip(), flags=re.I)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown-gpu"


def gpu_facts(out):
    """First line of `nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader`."""
    line = read(out, "gpu.csv", "").splitlines()
    parts = [p.strip() for p in line[0].split(",")][:3] if line else []
    return parts + ["unknown GPU", "?", "?"][len(parts):]


def last_line(text):
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1] if lines else "(no output)"


def step_rc(out):
    """name -> (rc, seconds) from steps.txt lines '== name' / '-- rc=N S s'."""
    steps, current = {}, None
    for line in read(out, "steps.txt", "").splitlines():
        if line.startswith("== "):
            current = line[3:].strip()
        elif line.startswith("-- rc=") and current:
            m = re.match(r"-- rc=(\d+) (\d+) s", line)
            if m:
                steps[current] = (int(m.group(1)), int(m.group(2)))
    return steps


def hf_table(out):
    try:
        with open(os.path.join(out, "hf.json")) as f:
            hf = json.load(f)
    except (OSError, ValueError):
        return ["PyTorch + transformers: no results (see hf.txt).", ""]
    rows = [f"{hf.get('model')}; torch {hf.get('torch')} (CUDA {hf.get('cuda')}), transformers {hf.get('transformers')}; "
            f"prefill prompt {hf.get('prompt_tokens')} tokens, decode prompt {hf.get('decode_prompt_tokens')} tokens + "
            f"{hf.get('new_tokens')} new (greedy).", "",
            "| attention | prefill tok/s (batch 1) | decode tok/s batch 1 | decode tok/s batch 8 | ms/step batch 1 |",
            "|---|---|---|---|---|"]
    for impl, r in hf.get("results", {}).items():
        if "error" in r:
            rows.append(f"| {impl} | failed: {r['error']} | | | |")
            continue

        def f(key, digits=0):
            return f"{r[key]:.{digits}f}" if key in r else "—"
        rows.append(f"| {impl} ({r.get('attention_in_use', '?')}) | {f('prefill_batch1_tok_s')} | {f('decode_batch1_tok_s', 1)} | "
                    f"{f('decode_batch8_tok_s', 1)} | {f('decode_batch1_ms_per_step', 2)} |")
    return rows + [""]


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    out, results = argv[1], argv[2]
    name, driver, memory = gpu_facts(out)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    steps = step_rc(out)
    cases = [c for c in read(out, "cases.txt", "").split() if c]

    md = [f"# GPU run {date}: {name}", "",
          f"Machine: {name}, {memory}, driver {driver}; {read(out, 'host.txt', '?')}. "
          "Produced by `bench/gpu/run.sh` (see `bench/gpu/README.md`); every number below was measured in this one run.", "",
          "## qwen2vl info", "", "```", read(out, "info.txt"), "```", "",
          "## Fixture parity on CUDA (the bundle, tiny fixture model, `forward --device cuda --generate 8`)", "",
          "| case | precompiled PTX (`--no-jit`) | ILGPU JIT |", "|---|---|---|"]
    for case in cases:
        aot = last_line(read(out, f"{case}.txt"))
        jit = last_line(read(out, f"{case}.jit.txt", "(not run)"))
        md.append(f"| {case} | {aot} | {jit} |")
    md += ["", "Max differences per tensor are in the `<case>.txt` files of the run's output.", "",
           "## PyTorch + transformers on the same GPU", ""]
    md += hf_table(out)
    md += ["Ours: the CLI has no GPU tokens/s mode yet (issue 14, item 5), so there is no number of ours to set beside "
           "these; the parity rows above are the CUDA bring-up check.", "",
           "## Steps", "", "| step | exit code | seconds |", "|---|---|---|"]
    md += [f"| {s} | {rc} | {sec} |" for s, (rc, sec) in steps.items()]
    text = "\n".join(md) + "\n"

    file = f"{date}-{slug(name)}.md"
    written = []
    for folder in (results, out):
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, file)
        with open(path, "w") as f:
            f.write(text)
        written.append(path)
    print("\n".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
