"""Peer for `medlit bench search`: the same questions over the same articles, in Python.

BM25 with bm25s (Lucene variant, k1 1.2, b 0.75, English stop words, Snowball stemmer), dense
as exact cosine in numpy over medlit's own stored vectors with the query embedded by
onnxruntime + tokenizers on the same ONNX file, hybrid as reciprocal rank fusion of the two.

Usage: python search_peer.py CONFIG.json
CONFIG: {"corpus": JSONL of {"pmid","text"}, "questions": [{"q","pmid"}], "k", "depth",
         "rrf_k", "dense_weight", "runs", "dense": null | {"vectors": [chunk files],
         "docmap": [chunk files], "tombstones", "dim", "model_dir", "threads", "max_tokens"}}
Prints one JSON line: {"modes": {mode: {"ms": [per-question best of runs], "hits@k": n}}}.
"""
import json
import sys
import time

import bm25s
import numpy as np
import Stemmer

cfg = json.load(open(sys.argv[1]))
k, depth, rrf_k, runs = cfg["k"], cfg["depth"], cfg["rrf_k"], cfg["runs"]
dense_weight = cfg.get("dense_weight", 1.0)
questions = cfg["questions"]

pmids, texts = [], []
with open(cfg["corpus"]) as f:
    for line in f:
        d = json.loads(line)
        pmids.append(d["pmid"])
        texts.append(d["text"])

stemmer = Stemmer.Stemmer("english")
bm25 = bm25s.BM25(k1=1.2, b=0.75)
bm25.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
           show_progress=False)


def bm25_rank(q, n):
    toks = bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False)
    if not toks.vocab:
        return []
    n = min(n, len(pmids))
    docs, _ = bm25.retrieve(toks, k=n, show_progress=False, n_threads=1)
    return [pmids[i] for i in docs[0]]


modes = {"bm25": bm25_rank}

dense = cfg.get("dense")
if dense:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    # One file per chunk; tombstoned rows (replaced or deleted PMIDs) are dropped.
    vectors = np.concatenate(
        [np.fromfile(f, dtype="<f4").reshape(-1, dense["dim"]) for f in dense["vectors"]]
    )
    docmap = np.concatenate(
        [np.fromfile(f, dtype=np.dtype([("pmid", "<u8"), ("no", "<u4")])) for f in dense["docmap"]]
    )
    live = np.ones(len(docmap), dtype=bool)
    live[np.fromfile(dense["tombstones"], dtype="<u8").astype(np.int64)] = False
    vectors, docmap = vectors[live], docmap[live]
    row_pmid = [str(p) for p in docmap["pmid"]]
    tok = Tokenizer.from_file(f"{dense['model_dir']}/tokenizer.json")
    tok.enable_truncation(max_length=dense["max_tokens"])
    tok.no_padding()  # the shipped tokenizer.json pads to 128; pads would join the mean
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = dense["threads"]
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(f"{dense['model_dir']}/model.onnx", opts,
                                providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}

    def embed(q):
        e = tok.encode(q)
        ids = np.array([e.ids], dtype=np.int64)
        mask = np.array([e.attention_mask], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = sess.run(None, feed)[0][0]
        m = mask[0][:, None].astype(np.float32)
        v = (hidden * m).sum(0) / m.sum()
        return v / np.linalg.norm(v)

    def dense_rank(q, n):
        scores = vectors @ embed(q)
        rows = min(n * 3, len(scores))  # articles have several passages, as in medlit
        top = np.argpartition(-scores, rows - 1)[:rows]
        top = top[np.argsort(-scores[top])]
        out, seen = [], set()
        for r in top:
            p = row_pmid[r]
            if p not in seen:
                seen.add(p)
                out.append(p)
                if len(out) == n:
                    break
        return out

    def hybrid_rank(q, n):
        fused = {}
        for w, ranked in ((1.0, bm25_rank(q, depth)), (dense_weight, dense_rank(q, depth))):
            for i, p in enumerate(ranked):
                fused[p] = fused.get(p, 0.0) + w / (rrf_k + i + 1)
        return sorted(fused, key=lambda p: -fused[p])[:n]

    modes["dense"] = dense_rank
    modes["hybrid"] = hybrid_rank

out = {}
for name, rank in modes.items():
    rank(questions[0]["q"], k)  # warm-up
    best = [float("inf")] * len(questions)
    hits = 0
    for run in range(runs):
        for i, item in enumerate(questions):
            t0 = time.perf_counter()
            got = rank(item["q"], k)
            best[i] = min(best[i], (time.perf_counter() - t0) * 1000.0)
            if run == 0 and item["pmid"] in got:
                hits += 1
    out[name] = {"ms": best, "hits@k": hits}
print(json.dumps({"modes": out}))
