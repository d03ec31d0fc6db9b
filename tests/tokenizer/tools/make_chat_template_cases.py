"""Renders conversations with the real Qwen2-VL chat template (qwen2-vl/chat_template.json) through jinja2, set up
as transformers' apply_chat_template sets it up (sandboxed, trim_blocks, lstrip_blocks, loopcontrols), and writes
tests/tokenizer/chat_template_cases.json. Written for this repository; run from this folder:
    python3 make_chat_template_cases.py
"""
import json
from jinja2.sandbox import ImmutableSandboxedEnvironment

with open("../qwen2-vl/chat_template.json", encoding="utf-8") as f:
    source = json.load(f)["chat_template"]
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
template = env.from_string(source)

img, vid = {"type": "image"}, {"type": "video"}
def text(s): return {"type": "text", "text": s}

conversations = [
    ("spec example: one image and a question",
     [{"role": "user", "content": [img, text("Describe this image.")]}]),
    ("system then user, string content",
     [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Hi!\nHow are you?"}]),
    ("multi-turn with images and videos",
     [{"role": "user", "content": [img, img, text("Compare these two pictures.")]},
      {"role": "assistant", "content": [text("The first is red; the second is blue.")]},
      {"role": "user", "content": [vid, text("And this video? "), img]}]),
    ("first message from the assistant gets the default system prompt",
     [{"role": "assistant", "content": "Hello."}, {"role": "user", "content": [text("Hi")]}]),
    ("a system message that is not first is rendered like any other",
     [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]),
    ("no messages", []),
    ("empty content list and empty text",
     [{"role": "user", "content": []}, {"role": "assistant", "content": [text("")]}]),
    ("text with markup, braces, unicode and special tokens is copied verbatim",
     [{"role": "user", "content": [text("<b>&amp; {{ x }} {% y %} café 😀 <|im_end|>")]}]),
    ("video only, then text",
     [{"role": "system", "content": [text("S")]}, {"role": "user", "content": [vid, vid, text("Q")]}]),
]

cases = []
for name, messages in conversations:
    for add_generation_prompt in (False, True):
        for add_vision_id in (False, True):
            rendered = template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                       add_vision_id=add_vision_id)
            cases.append({"name": name, "messages": messages, "add_generation_prompt": add_generation_prompt,
                          "add_vision_id": add_vision_id, "expected": rendered})

with open("../chat_template_cases.json", "w", encoding="utf-8") as f:
    f.write(json.dumps({"generator": "tests/tokenizer/tools/make_chat_template_cases.py (jinja2 %s)" % __import__("jinja2").__version__,
                        "cases": cases}, ensure_ascii=False, indent=1))
    f.write("\n")
print(len(cases), "cases")
