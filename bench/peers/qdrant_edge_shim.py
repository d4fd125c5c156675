"""Qdrant's own engine (qdrant-edge, in-process) behind the REST shapes medlit speaks.

  load EXPORT_DIR SHARD_DIR      create a shard from `medlit export qdrant`'s output
  query SHARD_DIR BODIES OUT     run each line of BODIES (a `POST .../points/query` body,
                                 as medlit sends it) and write one JSON line of results each
  serve SHARD_DIR PORT [NAME]    answer `POST /collections/NAME/points/query` on 127.0.0.1
                                 (NAME: medlit); another collection is a 404, as in Qdrant

Only what medlit sends is translated: a nearest query on a named dense or sparse vector, or
prefetches fused by RRF (`{"rrf": {"k": K, "weights": [...]}}`), `limit`, `with_payload`
and `params.exact`. Anything else is an error, so a request shape medlit starts to send
without this shim knowing it fails the test instead of being ignored.
"""
import glob
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import qdrant_edge as q


def config(collection):
    dense = collection.get("vectors", {}).get("dense")
    vectors = {}
    if dense:
        assert dense["distance"] == "Cosine", dense
        vectors["dense"] = q.EdgeVectorParams(size=dense["size"], distance=q.Distance.Cosine)
    sparse = {}
    for name, p in collection.get("sparse_vectors", {}).items():
        modifier = q.Modifier.Idf if p.get("modifier") == "idf" else None
        sparse[name] = q.EdgeSparseVectorParams(modifier=modifier)
    hnsw = collection.get("hnsw_config")
    scalar = (collection.get("quantization_config") or {}).get("scalar")
    return q.EdgeConfig(
        vectors=vectors,
        sparse_vectors=sparse,
        hnsw_config=q.HnswIndexConfig(
            m=hnsw["m"], ef_construct=hnsw["ef_construct"], full_scan_threshold=10000
        )
        if hnsw
        else None,
        quantization_config=q.ScalarQuantizationConfig(
            type=q.ScalarType.Int8, always_ram=scalar.get("always_ram")
        )
        if scalar
        else None,
    )


def named_vector(v):
    if isinstance(v, dict):
        return q.SparseVector(indices=v["indices"], values=v["values"])
    return v


def load(export_dir, shard_dir):
    with open(os.path.join(export_dir, "collection.json")) as f:
        collection = json.load(f)
    shard = q.EdgeShard.create(shard_dir, config(collection))
    points = 0
    started = time.time()
    for path in sorted(glob.glob(os.path.join(export_dir, "points-*.json"))):
        with open(path) as f:
            body = json.load(f)
        batch = [
            q.Point(
                id=p["id"],
                vector={name: named_vector(v) for name, v in p["vector"].items()},
                payload=p.get("payload"),
            )
            for p in body["points"]
        ]
        shard.update(q.UpdateOperation.upsert_points(batch))
        points += len(batch)
    shard.flush()
    # Build the HNSW and sparse indexes now, not at the first query.
    shard.optimize()
    shard.close()
    print(json.dumps({"points": points, "seconds": time.time() - started}))


def nearest(body):
    using = body.get("using")
    if "query" not in body or isinstance(body["query"], dict) and "rrf" in body["query"]:
        raise ValueError(f"not a nearest query: {body}")
    return q.Query.Nearest(named_vector(body["query"]), using=using)


def search_params(body):
    p = body.get("params") or {}
    unknown = set(p) - {"exact", "hnsw_ef"}
    if unknown:
        raise ValueError(f"unsupported params {unknown}")
    if not p:
        return None
    return q.SearchParams(exact=p.get("exact", False), hnsw_ef=p.get("hnsw_ef"))


def request(body):
    known = {"query", "using", "prefetch", "limit", "with_payload", "params"}
    unknown = set(body) - known
    if unknown:
        raise ValueError(f"unsupported fields {unknown}")
    with_payload = body.get("with_payload", False)
    if "prefetch" in body:
        rrf = body.get("query", {}).get("rrf")
        if rrf is None:
            raise ValueError("prefetches without an RRF query")
        prefetches = [
            q.Prefetch(limit=p["limit"], query=nearest(p), params=search_params(p))
            for p in body["prefetch"]
        ]
        fusion = q.Fusion.Rrf(k=int(rrf.get("k", 2)), weights=rrf.get("weights"))
        return q.QueryRequest(
            limit=body["limit"], query=fusion, prefetches=prefetches, with_payload=with_payload
        )
    return q.QueryRequest(
        limit=body["limit"],
        query=nearest(body),
        with_payload=with_payload,
        params=search_params(body),
    )


def result(points):
    return [
        {"id": p.id, "score": p.score, "payload": p.payload}
        if p.payload is not None
        else {"id": p.id, "score": p.score}
        for p in points
    ]


def query(shard_dir, bodies, out):
    shard = q.EdgeShard.load(shard_dir)
    n = 0
    with open(bodies) as f, open(out, "w") as w:
        for line in f:
            started = time.perf_counter()
            points = shard.query(request(json.loads(line)))
            ms = (time.perf_counter() - started) * 1e3
            w.write(json.dumps({"points": result(points), "ms": ms}) + "\n")
            n += 1
    print(json.dumps({"queries": n}))


def serve(shard_dir, port, collection="medlit"):
    shard = q.EdgeShard.load(shard_dir)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            parts = self.path.strip("/").split("/")
            if len(parts) != 4 or parts[0] != "collections" or parts[2:] != ["points", "query"]:
                return self.reply(404, {"status": {"error": f"no route {self.path}"}})
            if parts[1] != collection:
                return self.reply(
                    404, {"status": {"error": f"Not found: Collection `{parts[1]}` doesn't exist!"}}
                )
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                started = time.perf_counter()
                points = shard.query(request(body))
                took = time.perf_counter() - started
            except (ValueError, KeyError, TypeError) as e:
                return self.reply(400, {"status": {"error": str(e)}})
            self.reply(200, {"result": {"points": result(points)}, "status": "ok", "time": took})

        def reply(self, code, value):
            data = json.dumps(value).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    print(json.dumps({"listening": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"load": load, "query": query, "serve": serve}[cmd](*args)
