"""Draws background research text for the `answer` class of policy/safety_corpus.jsonl.

Sentences of the PubMed sample's abstracts (the files `medlit fetch` brings), 60-250
characters, drawn at random with a fixed seed, one family each, as category
`literature_sentence`. Prints JSON lines in the corpus format; ids s0000...

    python3 policy/draw_background.py ~/.local/share/medlit/assets/corpus/*.xml.gz --n 300 --seed 11
"""
import argparse
import gzip
import html
import json
import random
import re

p = argparse.ArgumentParser()
p.add_argument("files", nargs="+")
p.add_argument("--n", type=int, default=300)
p.add_argument("--seed", type=int, default=11)
a = p.parse_args()

sentences = []
for path in sorted(a.files):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        text = f.read()
    for m in re.finditer(r"<AbstractText[^>]*>(.*?)</AbstractText>", text, re.S):
        body = html.unescape(re.sub(r"<[^>]+>", "", m.group(1)))
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", body):
            s = " ".join(s.split())
            if 60 <= len(s) <= 250:
                sentences.append(s)
sentences = sorted(set(sentences))
random.Random(a.seed).shuffle(sentences)
for i, s in enumerate(sentences[: a.n]):
    print(json.dumps({"id": f"s{i:04d}", "prompt": s, "expected": "answer",
                      "category": "literature_sentence", "family": f"answer/literature_sentence/s{i:04d}"}))
