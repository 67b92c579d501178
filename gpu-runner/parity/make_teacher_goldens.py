#!/usr/bin/env python3
"""Teacher parity goldens: z_yes - z_no from transformers' Qwen3ForCausalLM.

The model is the tiny random-weight teacher that our own binary writes deterministically:

    gpu-runner new-model --arch qwen3-reranker --preset tiny --seed 0 --tokenizer TOKENIZER_JSON --out MODEL_DIR
    python make_teacher_goldens.py MODEL_DIR gpu-runner/tests/goldens/teacher_tiny.json

Prompt ids are built here independently (official prompt, single newlines, default
instruction): prefix + middle + suffix, each piece tokenized without special tokens. All pairs
run in ONE left-padded batch with an attention mask and position ids counted over real tokens,
in float32 with eager attention. The Rust test `teacher_parity` must match within 1e-4.
"""
import hashlib
import json
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import Qwen3ForCausalLM

SYSTEM = ('Judge whether the Document meets the requirements based on the Query and the '
          'Instruct provided. Note that the answer can only be "yes" or "no".')
PREFIX = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
YES, NO = 9693, 2152

LONG = " ".join(f"step {i}: call foo(x[{i}]) and check the result;" for i in range(40))
PAIRS = [
    ("How do I reverse a list in Python?", "Use list.reverse() or reversed(lst)."),
    ("How do I reverse a list in Python?", "Chocolate cake recipe"),
    ("Convert a String to an int in Java", "Integer.parseInt(s) converts a String to an int."),
    ("Convert a String to an int in Java", "x"),
    ("Why is my JavaScript Promise never resolved?", "You forgot to call resolve() inside the executor:\n\nnew Promise((resolve) => { /* ... */ })"),
    ("Python: merge two dicts", "{**a, **b} or a | b in Python 3.9+"),
    ("Python: merge two dicts", LONG),
    ("What does `yield` do?", "It turns a function into a generator; each `yield` hands a value to the caller."),
    ("如何在Python中读取文件？", "使用 open() 函数并配合 with 语句。"),
    ("Emoji in Java strings 😀", "Use code points: s.codePointAt(i) handles surrogate pairs 👍."),
    ("", "Empty query, non-empty document."),
    ("Query with an empty document", ""),
    ("Trailing spaces   ", "   leading spaces and\ttabs"),
    ("java.lang.NullPointerException when calling method", "Check the object for null before calling the method; use Optional."),
    ("Regex to match an email address", r"^[\w.+-]+@[\w-]+\.[\w.-]+$ is a simple, imperfect pattern."),
    ("How to sort a HashMap by values", "Stream the entrySet, sort with Map.Entry.comparingByValue() and collect into a LinkedHashMap." * 3),
    ("numpy array to list", "arr.tolist()"),
    ("Difference between == and === in JavaScript", "=== compares without type coercion; == coerces the operands first."),
    ("Flatten a list of lists", "[x for sub in lists for x in sub]\n\nor itertools.chain.from_iterable(lists)"),
    ("Get the current time in milliseconds in Java", "System.currentTimeMillis()"),
]


def main():
    model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    enc = lambda s: tok.encode(s, add_special_tokens=False).ids
    prefix, suffix = enc(PREFIX), enc(SUFFIX)
    prompts = [
        prefix + enc(f"<Instruct>: {INSTRUCTION}\n<Query>: {q}\n<Document>: {d}") + suffix
        for q, d in PAIRS
    ]
    width = max(map(len, prompts))
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):  # left padding
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)

    model = Qwen3ForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits[:, -1, :]
    scores = (logits[:, YES] - logits[:, NO]).tolist()

    config_sha = hashlib.sha256((model_dir / "config.json").read_bytes()).hexdigest()
    golden = {
        "about": "z_yes - z_no of transformers Qwen3ForCausalLM (float32, eager, one left-padded batch) "
                 "on `gpu-runner new-model --arch qwen3-reranker --preset tiny --seed 0`; made by "
                 "gpu-runner/parity/make_teacher_goldens.py",
        "preset": "tiny",
        "seed": 0,
        "config_sha256": config_sha,
        "prefix_ids": prefix,
        "suffix_ids": suffix,
        "pairs": [
            {"query": q, "passage": d, "ids": p, "score": s}
            for (q, d), p, s in zip(PAIRS, prompts, scores)
        ],
    }
    out.write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(PAIRS)} goldens to {out}; lengths {min(map(len, prompts))}..{width}")


if __name__ == "__main__":
    main()
