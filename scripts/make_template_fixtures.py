#!/usr/bin/env python3
"""Renders Tests/TokenizersTests/Fixtures/templates/*.jinja with transformers' own jinja2 environment.

Developers only; the output (templates/expected.json) is committed so `swift test` needs no Python.
    /tmp/fixtures-venv/bin/pip install transformers==5.23.0 jinja2==3.1.6
    /tmp/fixtures-venv/bin/python scripts/make_template_fixtures.py
"""
import json
import os

from transformers.utils.chat_template_utils import _compile_jinja_template

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DIR = os.path.join(ROOT, "Tests", "TokenizersTests", "Fixtures", "templates")

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city, in °C.",
                                      "parameters": {"type": "object", "properties": {
                                          "city": {"type": "string", "description": "e.g. \"Zürich\""},
                                          "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                                          "required": ["city"]}}},
    {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {
        "a": {"type": "number"}, "b": {"type": "number", "default": 0.5}}}}},
]

CONVERSATIONS = {
    "single": [{"role": "user", "content": "What is 2+2?"}],
    "system": [
        {"role": "system", "content": "  You are terse.\n"},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "<think>\nplanning\n</think>\n\nHello!"},
        {"role": "user", "content": "Multi\nline\n  indented\ttabs 日本語 😀"},
    ],
    "tools": [
        {"role": "user", "content": "Weather in Zürich and 1+2?"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}},
                        {"type": "function", "function": {"name": "add", "arguments": {"a": 1, "b": 2}}}]},
        {"role": "tool", "content": "{\"temp\": 21}"},
        {"role": "tool", "content": "3"},
        {"role": "assistant", "content": "21 °C, and 3."},
    ],
}

CASES = []
for template in ["chatml", "llama3", "qwen", "everything"]:
    for conversation in CONVERSATIONS:
        for add_generation_prompt in [False, True]:
            for tools in ([None, TOOLS] if template in ("llama3", "qwen") else [None]):
                if conversation == "tools" and template in ("chatml",):
                    continue
                extra = {"bos_token": "<s>", "eos_token": "</s>"}
                if template == "qwen" and add_generation_prompt:
                    extra["enable_thinking"] = conversation != "single"
                if template == "everything" and conversation == "system":
                    extra["extra"] = "value"
                CASES.append({"template": template, "conversation": conversation,
                              "add_generation_prompt": add_generation_prompt, "tools": tools, "kwargs": extra})

if __name__ == "__main__":
    out = []
    for case in CASES:
        with open(os.path.join(DIR, case["template"] + ".jinja"), encoding="utf-8") as f:
            source = f.read()
        compiled = _compile_jinja_template(source)
        # The variables transformers' render_jinja_template passes.
        rendered = compiled.render(messages=CONVERSATIONS[case["conversation"]], tools=case["tools"], documents=None,
                                   add_generation_prompt=case["add_generation_prompt"], **case["kwargs"])
        out.append({**case, "messages": CONVERSATIONS[case["conversation"]], "expected": rendered})
    with open(os.path.join(DIR, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print(f"{len(out)} renderings")
