"""Peer for `medlit bench ingest --compare`: every record of each file as pubmed_parser reads
it, one JSON object per line, written to the file named first. Nothing is normalised here:
the comparison (in medlit-bench) says what it normalises and why."""
import json
import sys

import pubmed_parser as pp

out_path, files = sys.argv[1], sys.argv[2:]
n = 0
with open(out_path, "w", encoding="utf-8") as out:
    for path in files:
        for r in pp.parse_medline_xml(
            path, year_info_only=True, author_list=True, parse_downto_mesh_subterms=True
        ):
            if r.get("delete"):
                continue
            keep = {
                k: r.get(k, "")
                for k in (
                    "pmid", "title", "abstract", "journal", "pubdate", "mesh_terms",
                    "publication_types", "keywords", "doi", "pmc", "languages", "issue",
                    "pages",
                )
            }
            keep["authors"] = [
                [a.get("lastname", ""), a.get("forename", ""), a.get("initials", "")]
                for a in r.get("authors", [])
            ]
            out.write(json.dumps(keep, ensure_ascii=False) + "\n")
            n += 1
print(json.dumps({"records": n}))
