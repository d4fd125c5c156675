"""Peer for `medlit bench embed`: the same ONNX model through Python onnxruntime + tokenizers.

Usage: python onnx_embed_peer.py MODEL_DIR RUNTIME_THREADS BATCH MAX_TOKENS TEXTS.json
Prints one JSON line: {"passages", "seconds", "dim"}.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

model_dir, threads, batch, max_tokens, texts_path = sys.argv[1:6]
threads, batch, max_tokens = int(threads), int(batch), int(max_tokens)
texts = json.load(open(texts_path))

tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
tok.enable_truncation(max_length=max_tokens)
tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pads to the longest in each batch
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
sess = ort.InferenceSession(f"{model_dir}/model.onnx", opts, providers=["CPUExecutionProvider"])
names = {i.name for i in sess.get_inputs()}

t0 = time.perf_counter()
dim = 0
for i in range(0, len(texts), batch):
    enc = tok.encode_batch(texts[i : i + batch])
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in names:
        feed["token_type_ids"] = np.zeros_like(ids)
    hidden = sess.run(None, feed)[0]
    m = mask[..., None].astype(np.float32)
    pooled = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    dim = pooled.shape[1]
print(json.dumps({"passages": len(texts), "seconds": time.perf_counter() - t0, "dim": int(dim)}))
