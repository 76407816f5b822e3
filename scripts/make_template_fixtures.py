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

# Small templates for single behaviours where a hand-written interpreter is likely to differ from jinja2;
# each renders to text or fails with an error (its type is recorded).
SNIPPETS = [
    ("string attributes", "{{ 'abc'.nosuch is defined }}|{{ 'abc'.upper() }}|{{ m.content.foo is defined }}|"
     "{% if m.content.startswith %}callable{% endif %}", {"m": {"content": "hi"}}),
    ("star calls", "{% macro f(a, b, c='C') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}"
     "{{ f(*xs) }}|{{ f(1, *[2]) }}|{{ f(**kw) }}|{{ f(*xs[:2], **{'c': 9}) }}",
     {"xs": [1, 2, 3], "kw": {"a": "x", "b": "y", "c": "z"}}),
    ("tojson options", "{{ x|tojson }}|{{ x|tojson(separators=(',', ':')) }}|{{ x|tojson(indent=2) }}|"
     "{{ x|tojson(sort_keys=true) }}|{{ x|tojson(ensure_ascii=true) }}|{{ x|tojson(indent='\t') }}|"
     "{{ x|tojson(indent=0, separators=(';', '=')) }}",
     {"x": {"b": [1, 2.5, "\u00e9\U0001f600\x7f"], "a": None, "c": {"d": True}}}),
    ("iterating none", "{% for m in x %}{{ m }}{% endfor %}", {"x": None}),
    ("iterating undefined", "{% for m in nothing %}{{ m }}{% else %}empty{% endfor %}", {}),
    ("length of none", "{{ x|length }}", {"x": None}),
    ("in none", "{{ 'a' in x }}", {"x": None}),
    ("range at the sandbox limit", "{{ range(100000)|length }} {{ range(5, -99995, -1)|length }} {{ range(0, 10**6, 10)|length }}", {}),
    ("range past the sandbox limit", "{% for i in range(100001) %}{% endfor %}", {}),
    ("integer arithmetic", "{{ 7 // -2 }} {{ -7 % 3 }} {{ 2 ** 62 }} {{ 7 / 2 }} {{ -7 // 2 }} {{ 3 * -4 }}", {}),
    ("more string methods", "{{ 'a\nb\r\nc\n'.splitlines() }} {{ 'abc'.isalpha() }} {{ 'ab1'.isalnum() }} "
     "{{ 'ABC'.isupper() }} {{ 'abc'.islower() }} {{ '12'.islower() }}", {}),
]

# Conversations rendered by the whole of transformers' apply_chat_template (null keys dropped,
# reasoning fields aliased, template kwargs), with a tokenizer built on a committed fixture.
APPLY_TEMPLATE = (
    "{%- for m in messages %}<{{ m.role }}>{{ m|tojson }}"
    "{%- if m.thinking is defined %}[thinking={{ m.thinking }}]{% endif %}"
    "{%- if m.reasoning_content is defined %}[reasoning={{ m.reasoning_content }}]{% endif %}"
    "{%- if m.content is none %}[content none]{% elif m.content is not defined %}[no content]{% endif %}\n"
    "{%- endfor %}{% if add_generation_prompt %}<assistant>{% if enable_thinking is defined and not enable_thinking %}"
    "<think></think>{% endif %}{% endif %}{{ extra | default('') }}{{ bos_token }}"
)
APPLY_CASES = [
    ("reasoning_content", [{"role": "user", "content": "q"},
                           {"role": "assistant", "content": "a", "reasoning_content": "r1"}], {}),
    ("thinking only", [{"role": "assistant", "content": "a", "thinking": "t1"}], {}),
    ("reasoning only", [{"role": "assistant", "reasoning": "x1", "content": "a"}], {}),
    ("null keys dropped", [{"role": "assistant", "content": None, "tool_calls": None, "reasoning_content": None}], {}),
    ("kwargs", [{"role": "user", "content": "q"}], {"enable_thinking": False, "extra": "E"}),
    ("kwargs override special tokens", [{"role": "user", "content": "q"}], {"bos_token": "<B>"}),
]


def render_snippets():
    import jinja2
    out = []
    for name, source, variables in SNIPPETS:
        case = {"name": name, "source": source, "variables": variables}
        try:
            case["expected"] = _compile_jinja_template(source).render(**variables)
        except Exception as error:  # the type is what the Swift test checks
            case["error"] = type(error).__name__
        out.append(case)
    with open(os.path.join(DIR, "snippets.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    from transformers import PreTrainedTokenizerFast
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(DIR, "..", "qwen2.json"), bos_token="<|im_start|>", eos_token="<|im_end|>")
    tokenizer.chat_template = APPLY_TEMPLATE
    applied = []
    for name, messages, kwargs in APPLY_CASES:
        for add_generation_prompt in [False, True]:
            rendered = tokenizer.apply_chat_template(messages, tokenize=False,
                                                     add_generation_prompt=add_generation_prompt, **kwargs)
            applied.append({"name": name, "messages": messages, "kwargs": kwargs,
                            "add_generation_prompt": add_generation_prompt, "expected": rendered})
    with open(os.path.join(DIR, "apply.json"), "w", encoding="utf-8") as f:
        json.dump({"template": APPLY_TEMPLATE, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                   "cases": applied}, f, ensure_ascii=False, indent=1)
    print(f"{len(out)} snippets, {len(applied)} apply_chat_template renderings")


if __name__ == "__main__":
    render_snippets()
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
