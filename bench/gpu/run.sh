#!/usr/bin/env bash
# The one prepared script for a lent GPU machine (H100/H200, NVIDIA driver, python3 with torch and transformers, no
# .NET, no network). Run from anywhere; it works in the repository root. NOTHING HERE HAS RUN ON A GPU YET.
#
#   bash bench/gpu/run.sh          (about 4-6 minutes; QVL_GPU_BUDGET=seconds caps the whole run, default 360,
#                                   so that a 15-minute device allowance holds a machine start and two tries)
#
# Needs the published bundle (models/qwen2vl/cli/bundle.sh, made on the CPU machine): artifacts/publish/linux-x64/qwen2vl/
# or its archive qwen2vl-linux-x64.tar.xz beside it (what to carry: 13 MiB), or QVL_BUNDLE=DIR.
# Steps, each with its own timeout, none stopping the others:
#   1. the machine: nvidia-smi, kernel, python/torch/transformers versions;
#   2. `qwen2vl info`: which CUDA device the runtime sees, or why none (no LD_LIBRARY_PATH help: this checks the
#      runtime's own libcuda.so.1 resolution);
#   3. the four fixture cases on CUDA with the bundle's precompiled PTX (--no-jit), each compared with the fixture's
#      expected numbers by compare_fixture.py (tolerance 1e-4);
#   4. PyTorch + transformers on a random-weight Qwen2-VL-2B (bf16): prefill tok/s, decode tok/s at batch 1 and 8,
#      eager and sdpa (hf_baseline.py);
#   5. the same fixture cases through ILGPU's own JIT (the bundle's kernels/ moved aside);
#   6. only when 2 or 3 failed: gpu_probe.py (driver-level checks of every attribute ILGPU reads, PTX JIT logs);
#   7. report.py: bench/results/<date>-<gpu>.md.
# What comes back in $OUT (at most 8 files): the report, console.txt if the caller tees into it, and run-files.tar.gz
# with every step's output.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
G=bench/gpu
F=tests/fixtures/qwen2vl-tiny/cases
O=${OUT:-$PWD/out-gpu}
W=$(mktemp -d /tmp/qvl-gpu-run.XXXXXX)
mkdir -p "$O"
BUDGET=${QVL_GPU_BUDGET:-360}
CASES="a_image_text b_batch2_two_images_leftpad c_video_text d_text_only"
echo "$CASES" > "$W/cases.txt"

# t NAME SECONDS CMD…: one step, its timeout cut to what is left of the budget, its exit code and time in steps.txt
# and on the console (fd 3), never in the step's own redirected output.
exec 3>&1
t() {
    local name=$1 limit=$2; shift 2
    local left=$((BUDGET - SECONDS))
    echo "== $name" | tee -a "$W/steps.txt" >&3
    if ((left < 10)); then echo "-- rc=124 0 s (skipped: budget spent)" | tee -a "$W/steps.txt" >&3; return 124; fi
    ((limit > left)) && limit=$left
    local t0=$SECONDS
    timeout -k 5 "$limit" "$@"
    local rc=$?
    echo "-- rc=$rc $((SECONDS - t0)) s" | tee -a "$W/steps.txt" >&3
    return $rc
}

# The bundle, unpacked from its archive when only that was carried.
B=${QVL_BUNDLE:-artifacts/publish/linux-x64/qwen2vl}
if [[ ! -x $B/qwen2vl && -f artifacts/publish/linux-x64/qwen2vl-linux-x64.tar.xz ]]; then
    mkdir -p /tmp/qvl-bundle && tar -C /tmp/qvl-bundle -xJf artifacts/publish/linux-x64/qwen2vl-linux-x64.tar.xz
    B=/tmp/qvl-bundle/qwen2vl
fi
[[ -x $B/qwen2vl ]] || echo "no bundle at $B: build it with models/qwen2vl/cli/bundle.sh and carry it" | tee "$W/info.txt"

# 1. the machine
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$W/gpu.csv" 2> "$W/nvidia-smi.err" || : > "$W/gpu.csv"
nvidia-smi > "$W/nvidia-smi.txt" 2>&1
python3 -c 'import platform, torch, transformers; print(f"kernel {platform.release()}, {__import__("os").cpu_count()} CPUs, python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}")' \
    > "$W/host.txt" 2>&1 || uname -r > "$W/host.txt"
cat "$W/gpu.csv" "$W/host.txt"

# 2. what the runtime sees
failed=0
if [[ -x $B/qwen2vl ]]; then
    t info 30 "$B/qwen2vl" info > "$W/info.txt" 2>&1
    cat "$W/info.txt"
    grep -q '^cuda: unavailable' "$W/info.txt" && failed=1
else
    failed=1
fi

# forward_case CASE SUFFIX [EXTRA…]: one fixture case on CUDA, compared with its expected numbers.
forward_case() {
    local c=$1 suffix=$2; shift 2
    local log="$W/$c$suffix.txt"
    if t "forward $c$suffix" 60 "$B/qwen2vl" forward --device cuda "$@" --model "$B/default-model" \
        --inputs "$F/$c/inputs.safetensors" --out "$W/$c$suffix.safetensors" --generate 8 > "$log" 2>&1; then
        python3 "$G/compare_fixture.py" "$W/$c$suffix.safetensors" "$F/$c/expected.safetensors" "$F/$c/inputs.safetensors" >> "$log" 2>&1
    else
        echo "forward failed: $(grep -v -e '^\s*$' -e '^== ' -e '^-- rc=' "$log" | tail -n 1)" >> "$log"
        return 1
    fi
}

# 3. fixture parity, precompiled PTX
if [[ -x $B/qwen2vl ]]; then
    for c in $CASES; do
        forward_case "$c" "" --no-jit || failed=1
        tail -n 1 "$W/$c.txt"
        grep -q '^ALL MATCH$' "$W/$c.txt" || failed=1
    done
fi

# 4. PyTorch + transformers
t hf 200 python3 "$G/hf_baseline.py" "$W/hf.json" > "$W/hf.txt" 2>&1
cat "$W/hf.txt"

# 5. fixture parity through ILGPU's JIT (the CLI uses the bundle's kernels/ whenever it exists)
if [[ -x $B/qwen2vl && -d $B/kernels ]]; then
    mv "$B/kernels" "$B/kernels.off"
    for c in $CASES; do
        forward_case "$c" ".jit"
        tail -n 1 "$W/$c.jit.txt"
    done
    mv "$B/kernels.off" "$B/kernels"
fi

# 6. driver-level diagnosis, only when the runtime's own path failed
if ((failed)); then
    t probe 120 python3 "$G/gpu_probe.py" "$B/kernels" "$W/probe" > "$W/probe.log" 2>&1
    tail -n 5 "$W/probe.log"
fi

# 7. the report, and everything else packed into one file (a lent machine returns at most 8)
python3 "$G/report.py" "$W" bench/results | while read -r path; do cp "$path" "$O/" 2>/dev/null; echo "report: $path"; done
tar -C "$W" -czf "$O/run-files.tar.gz" --exclude='*.safetensors' . && echo "step outputs: $O/run-files.tar.gz"
