#!/usr/bin/env bash
# The deployable linux-x64 bundle of the qwen2vl CLI, built, checked and packed in one command:
#
#   models/qwen2vl/cli/bundle.sh [OUT]        (default OUT: artifacts/publish/linux-x64)
#
# 1. dotnet publish with the checked-in profile (Properties/PublishProfiles/linux-x64.pubxml): self-contained,
#    trimmed, with the embedded default models (shapes-model/ for generate, default-model/ = the tiny fixture model);
# 2. the bundle's own (trimmed) binary compiles every kernel to PTX for sm_80 and sm_90 into OUT/qwen2vl/kernels/,
#    which the CLI picks up by itself (manifest checked at every load; used on cuda, checked only on cpu);
# 3. smoke tests on this machine's CPU: generate answers "purple" and forward matches the fixture's numbers, both
#    with --no-jit; serve (ASP.NET Core inside the trimmed bundle) answers "purple" over HTTP (curl) and stops on SIGTERM; with QVL_BUNDLE_ILGPU=1 also generate and one forward on ILGPU's CPU accelerator, which runs
#    ILGPU's IL compiler inside the trimmed bundle (minutes on 2 cores);
# 4. OUT/qwen2vl-linux-x64.tar.xz, with its compressed and uncompressed sizes printed and checked against the budget
#    (30 MiB compressed).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
out=$(mkdir -p "${1:-$repo/artifacts/publish/linux-x64}" && cd "${1:-$repo/artifacts/publish/linux-x64}" && pwd)
bundle=$out/qwen2vl
archive=$out/qwen2vl-linux-x64.tar.xz
budget=$((30 * 1024 * 1024))

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'bundle.sh: %s\n' "$*" >&2; exit 1; }

step "publish (self-contained, trimmed, linux-x64) into $bundle"
rm -rf "$bundle" "$archive"
dotnet publish "$repo/models/qwen2vl/cli" -p:PublishProfile=linux-x64 -p:PublishDir="$bundle/" -nologo -v:q

step "precompiled PTX (sm_80, sm_90) with the bundle's own binary"
"$bundle/qwen2vl" compile --model "$bundle/shapes-model" --arch sm_80 --arch sm_90 --out "$bundle/kernels"

step "smoke test: generate on the cpu (--no-jit)"
answer=$("$bundle/qwen2vl" generate --no-jit)
echo "$answer"
[[ $answer == purple ]] || fail "generate answered '$answer', expected 'purple'"

step "smoke test: forward on the fixture model on the cpu (--no-jit)"
"$bundle/qwen2vl" forward --no-jit | tee "$out/forward.txt" | tail -n 1
grep -q '^All outputs match.$' "$out/forward.txt" || fail "forward does not match the fixture (see $out/forward.txt)"
rm -f "$out/forward.txt"

step "smoke test: serve (ASP.NET Core, trimmed) answers the sample image over HTTP, then stops on SIGTERM"
log=$(mktemp)
"$bundle/qwen2vl" serve --port 0 --device cpu 2> "$log" &
server=$!
for _ in $(seq 100); do grep -q 'serving' "$log" && break; sleep 0.1; done
url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$log" | head -n 1)
[[ -n $url ]] || { kill "$server"; fail "serve printed no address: $(cat "$log")"; }
image=$(base64 -w0 "$bundle/shapes-model/sample.png")
reply=$(curl -s "$url/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"data:image/png;base64,$image\"}}, {\"type\": \"text\", \"text\": \"What colour is the shape?\"}]}], \"max_tokens\": 8}")
kill -TERM "$server"
wait "$server" || fail "serve exited with $? on SIGTERM"
echo "$reply"
[[ $reply == *'"content":"purple"'* ]] || fail "serve answered '$reply', expected purple"
rm -f "$log"

if [[ ${QVL_BUNDLE_ILGPU:-0} == 1 ]]; then
    step "smoke test: ILGPU's CPU accelerator (ILGPU compiles the kernels from IL inside the trimmed bundle)"
    answer=$("$bundle/qwen2vl" generate --device ilgpu-cpu)
    [[ $answer == purple ]] || fail "generate --device ilgpu-cpu answered '$answer', expected 'purple'"
    tmp=$(mktemp -d)
    "$bundle/qwen2vl" forward --device ilgpu-cpu --model "$bundle/default-model" \
        --inputs "$bundle/default-model/example/inputs.safetensors" --out "$tmp/out.safetensors"
    rm -rf "$tmp"
    echo "ilgpu-cpu: generate answered purple, forward ran"
fi

step "archive"
tar -C "$out" -cf - qwen2vl | xz -9e -T0 > "$archive"
uncompressed=$(du -sb "$bundle" | cut -f1)
compressed=$(stat -c %s "$archive")
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "bundle:     $bundle  $(mib "$uncompressed") ($uncompressed bytes, $(find "$bundle" -type f | wc -l) files)"
echo "  kernels/: $(mib "$(du -sb "$bundle/kernels" | cut -f1)")"
echo "archive:    $archive  $(mib "$compressed") ($compressed bytes)"
(( compressed < budget )) || fail "the archive is $(mib "$compressed"), over the $(mib "$budget") budget"
echo "within the $(mib "$budget") budget"
