#!/usr/bin/env python3
"""Does the generator's confidence in its span tell answerable questions from unanswerable ones
beyond the answerability model's seven signals? A measurement, not part of medlit.

Inputs, for one question set with both kinds (as policy/answerability_train.jsonl):
  SIGNALS  `medlit eval answerability --dataset SET --json`      (the seven signals per question)
  ANSWERS  `medlit eval qa --dataset SET --min-coverage 0 --json` (every question answered, so
           every one has its candidate spans and their log-probabilities)
  SET      the question set itself (for each question's article: the cross-validation keeps an
           article's questions in one fold, as `eval answerability --fit` does)

It fits the same model as `eval answerability --fit` (logistic, standardised inputs, L2 0.05)
on the seven signals alone and with the generator's signals added, cross-validated by article
over several random fold assignments, and prints the decisions right, answerable abstained,
unanswerable answered and log loss of each, then each generator signal's AUC alone and the
weights of a fit on every question.
Standard library only.

  python3 scripts/answerability_signal.py SIGNALS ANSWERS SET [REPEATS]
"""
import json
import math
import random
import sys

SIGNALS = ["coverage", "similarity", "sentence_similarity", "unknown", "rare_coverage",
           "missing_rarity", "agreement"]
GENERATOR = ["greedy first-token log-prob", "greedy mean log-prob", "chosen mean log-prob",
             "chosen share of the candidates' first-token mass"]
# What a question with no span read counts as: below any copied span's log-probability.
NO_SPAN = -12.0
L2 = 0.05


def generator_signals(item):
    """From `eval qa` span_candidates (features: first_logprob, mean_logprob, greedy, ...)."""
    cands = item.get("span_candidates") or []
    if not cands:
        return [NO_SPAN, NO_SPAN, NO_SPAN, 0.0]
    value = lambda c, i: c["features"][i] if c["features"][i] is not None else NO_SPAN
    greedy = next((c for c in cands if c["features"][2] == 1.0), cands[0])
    chosen = next((c for c in cands if c["chosen"]), cands[0])
    firsts = [value(c, 0) for c in cands]
    top = max(firsts)
    mass = sum(math.exp(v - top) for v in firsts)
    return [value(greedy, 0), value(greedy, 1), value(chosen, 1),
            math.exp(value(chosen, 0) - top) / mass]


def fit(rows, labels, iters=4000, rate=0.5):
    """src/logistic.rs's `fit`, step for step: its iterations, step size and scale rule."""
    n, d = len(rows), len(rows[0])
    mean = [sum(r[j] for r in rows) / n for j in range(d)]
    spread = [math.sqrt(sum((r[j] - mean[j]) ** 2 for r in rows) / n) for j in range(d)]
    # A feature constant over the data carries nothing: scale 1 keeps it harmless.
    scale = [v if v > 1e-6 else 1.0 for v in spread]
    z = [[(r[j] - mean[j]) / scale[j] for j in range(d)] for r in rows]
    w, b = [0.0] * d, 0.0
    for _ in range(iters):
        gw, gb = [0.0] * d, 0.0
        for x, y in zip(z, labels):
            e = 1 / (1 + math.exp(-(b + sum(a * c for a, c in zip(x, w))))) - (1.0 if y else 0.0)
            gb += e
            for j in range(d):
                gw[j] += e * x[j]
        w = [w[j] - rate * (gw[j] / n + 2 * L2 * w[j]) for j in range(d)]
        b -= rate * gb / n
    return (lambda r: 1 / (1 + math.exp(-(b + sum((r[j] - mean[j]) / scale[j] * w[j]
                                                   for j in range(d)))))), w


def cross_validated(rows, labels, keys, seed, k=5):
    groups = sorted(set(keys))
    random.Random(seed).shuffle(groups)
    fold = {g: i % k for i, g in enumerate(groups)}
    p = [0.0] * len(labels)
    for f in range(k):
        train = [i for i in range(len(labels)) if fold[keys[i]] != f]
        model, _ = fit([rows[i] for i in train], [labels[i] for i in train])
        for i in range(len(labels)):
            if fold[keys[i]] == f:
                p[i] = model(rows[i])
    return p


def figures(p, labels):
    yes = [i for i, y in enumerate(labels) if y]
    no = [i for i, y in enumerate(labels) if not y]
    right = sum((p[i] >= 0.5) == labels[i] for i in range(len(labels))) / len(labels)
    loss = -sum(math.log(max(1e-6, p[i] if labels[i] else 1 - p[i]))
                for i in range(len(labels))) / len(labels)
    return (right, sum(p[i] < 0.5 for i in yes) / len(yes),
            sum(p[i] >= 0.5 for i in no) / len(no), loss)


def main():
    signals, answers, dataset = (sys.argv[1], sys.argv[2], sys.argv[3])
    repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    article = {}
    for line in open(dataset):
        if line.strip():
            q = json.loads(line)
            article[q["id"]] = q.get("pmid") or q["id"]
    answered = {i["id"]: i for i in json.load(open(answers))["items"]}
    rows, labels, keys = [], [], []
    for item in json.load(open(signals))["items"]:
        if item["id"] in answered:
            rows.append(([item["signals"][s] for s in SIGNALS],
                         generator_signals(answered[item["id"]])))
            labels.append(item["answerable"])
            keys.append(article[item["id"]])
    print(f"{len(rows)} questions, {sum(labels)} answerable; {repeats} random 5-fold "
          f"assignments by article, mean of each figure")
    variants = [
        ("seven signals", lambda r: r[0]),
        ("seven + greedy first/mean log-prob", lambda r: r[0] + r[1][:2]),
        ("seven + all four generator signals", lambda r: r[0] + r[1]),
        ("generator signals alone", lambda r: r[1]),
    ]
    print(f"{'model':38s} {'right':>6s} {'ans. abstained':>15s} {'unans. answered':>16s} "
          f"{'log loss':>9s}")
    for name, columns in variants:
        x = [columns(r) for r in rows]
        runs = [figures(cross_validated(x, labels, keys, s), labels) for s in range(repeats)]
        m = [sum(r[j] for r in runs) / len(runs) for j in range(4)]
        print(f"{name:38s} {m[0]:6.3f} {m[1]:15.3f} {m[2]:16.3f} {m[3]:9.3f}")
    for j, name in enumerate(GENERATOR):
        yes = [r[1][j] for r, y in zip(rows, labels) if y]
        no = [r[1][j] for r, y in zip(rows, labels) if not y]
        auc = sum((a > b) + 0.5 * (a == b) for a in yes for b in no) / (len(yes) * len(no))
        print(f"{name:48s} median answerable {sorted(yes)[len(yes) // 2]:7.3f}, "
              f"unanswerable {sorted(no)[len(no) // 2]:7.3f}; AUC {auc:.3f}")
    _, weights = fit([r[0] + r[1] for r in rows], labels)
    print("standardised weights fitted on all questions, seven signals + all four generator "
          "signals:")
    for name, w in zip(SIGNALS + GENERATOR, weights):
        print(f"  {name:48s} {w:7.3f}")


if __name__ == "__main__":
    main()
