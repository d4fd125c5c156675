"""Peer for `medlit bench ingest`: times pubmed_parser.parse_medline_xml on each file."""
import json
import sys
import time

import pubmed_parser as pp

out = []
for path in sys.argv[1:]:
    t0 = time.perf_counter()
    records = list(pp.parse_medline_xml(path))
    out.append({"file": path, "records": len(records), "seconds": time.perf_counter() - t0})
print(json.dumps(out))
