#!/usr/bin/env python3
"""hf_baseline.py OUT.json [--new-tokens N] [--prompt P] [--impl eager,sdpa]

The PyTorch + transformers side of the GPU benchmark: a Qwen2-VL-2B with random weights (bf16, built from
qwen2vl-2b.config.json, the same config as `qwen2vl compile --config 2b`) on the first CUDA device, for each attention
implementation (eager, sdpa):
  - prefill tok/s: one forward over a P-token text prompt at batch 1 (median of 5 after 2 warm-ups);
  - decode tok/s at batch 1 and 8: greedy generate of N new tokens (min_new_tokens = N, so random weights cannot stop
    early) minus generate of 1 token, i.e. B*(N-1) / (t_N - t_1), median of 3 after a warm-up.
Writes OUT.json and prints one line per number. Needs torch with CUDA and transformers; nothing is downloaded.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB_TEXT = 151643  # ids below the first special token (<|endoftext|>): plain text


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("out")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--prompt", type=int, default=512)
    p.add_argument("--decode-prompt", type=int, default=64)
    p.add_argument("--impl", default="eager,sdpa")
    p.add_argument("--batches", default="1,8")
    return p.parse_args(argv)


def seconds(torch, fn, repeats, warmups):
    for _ in range(warmups):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def set_attention(config, impl):
    """transformers 4.x and 5.x keep the choice on the config and on each sub-config."""
    for c in (config, getattr(config, "text_config", None), getattr(config, "vision_config", None)):
        if c is not None:
            c._attn_implementation = impl


def build(torch, transformers, impl):
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    with open(os.path.join(HERE, "qwen2vl-2b.config.json")) as f:
        config = Qwen2VLConfig.from_dict(json.load(f))
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    assert text.hidden_size == 1536 and text.num_hidden_layers == 28, "the 2B config did not load as expected"
    set_attention(config, impl)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2VLForConditionalGeneration(config).to(torch.bfloat16).eval()
    used = getattr(getattr(model, "config", config), "_attn_implementation", impl)
    return model, used


def measure(torch, model, args):
    result = {}
    gen = torch.Generator(device="cuda").manual_seed(1)
    prompt = torch.randint(0, VOCAB_TEXT, (1, args.prompt), device="cuda", generator=gen)
    mask = torch.ones_like(prompt)

    def prefill():
        try:
            model(input_ids=prompt, attention_mask=mask, use_cache=True, logits_to_keep=1)
        except TypeError:  # an older transformers without logits_to_keep
            model(input_ids=prompt, attention_mask=mask, use_cache=True)

    with torch.inference_mode():
        t = seconds(torch, prefill, repeats=5, warmups=2)
        result["prefill_batch1_tok_s"] = args.prompt / t
        result["prefill_batch1_ms"] = t * 1e3
        for batch in (int(b) for b in args.batches.split(",")):
            ids = torch.randint(0, VOCAB_TEXT, (batch, args.decode_prompt), device="cuda", generator=gen)
            am = torch.ones_like(ids)

            def generate(n):
                return lambda: model.generate(input_ids=ids, attention_mask=am, max_new_tokens=n, min_new_tokens=n,
                                              do_sample=False, use_cache=True)

            t_n = seconds(torch, generate(args.new_tokens), repeats=3, warmups=1)
            t_1 = seconds(torch, generate(1), repeats=3, warmups=1)
            result[f"decode_batch{batch}_tok_s"] = batch * (args.new_tokens - 1) / (t_n - t_1)
            result[f"decode_batch{batch}_ms_per_step"] = (t_n - t_1) / (args.new_tokens - 1) * 1e3
    return result


def main(argv):
    args = parse(argv)
    import torch
    import transformers
    if not torch.cuda.is_available():
        print("hf_baseline: torch sees no CUDA device", file=sys.stderr)
        return 1
    report = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "model": "Qwen2-VL-2B, random weights (seed 0), bf16",
        "prompt_tokens": args.prompt,
        "decode_prompt_tokens": args.decode_prompt,
        "new_tokens": args.new_tokens,
        "results": {},
    }
    for impl in args.impl.split(","):
        started = time.perf_counter()
        try:
            model, used = build(torch, transformers, impl)
            numbers = measure(torch, model, args)
            numbers["attention_in_use"] = used
            del model
        except Exception as e:  # one implementation failing must not hide the other's numbers
            numbers = {"error": f"{type(e).__name__}: {e}"}
        torch.cuda.empty_cache()
        numbers["wall_s"] = time.perf_counter() - started
        report["results"][impl] = numbers
        print(impl, json.dumps(numbers), flush=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
