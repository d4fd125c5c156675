// medlit's page: asks /api/ask (streamed) or /api/search and shows the result.
// Text from the server is only ever set as textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const pubmed = (pmid) => `https://pubmed.ncbi.nlm.nih.gov/${encodeURIComponent(pmid)}/`;

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function reset() {
  for (const id of ["answer-section", "evidence-section", "results-section", "safety",
                    "refs-heading", "related-heading", "quote", "export"]) $(id).hidden = true;
  for (const id of ["references", "related", "evidence", "results", "export"]) $(id).replaceChildren();
  $("answer").textContent = "";
  $("answer").className = "";
  $("status").textContent = "";
  $("status").className = "";
}

// What the index covers, from /api/stats: said on the page and in "no results".
let coverage = "";
async function loadCoverage() {
  try {
    const stats = await (await fetch("/api/stats")).json();
    const c = stats.corpus || {};
    const files = (c.files || []).join(", ");
    const years = c.years ? `, ${c.years[0]}–${c.years[1]}` : "";
    coverage = `${(c.citations || 0).toLocaleString("en-US")} PubMed citations (${files}${years})`;
    $("coverage").textContent = `Searches ${coverage}.`;
  } catch (e) {
    $("coverage").textContent = "";
  }
}

// The options set on the page, as request fields (empty ones left out).
function options() {
  const o = {};
  const year = $("year").value.trim(), k = $("k").value.trim(), mode = $("mode").value;
  if (year) o.year = year;
  if (k) o.k = Number(k);
  if (mode) o.mode = mode;
  return o;
}

// `text` with the byte ranges `ranges` (UTF-8 offsets, as the API gives them) marked.
function marked(text, ranges) {
  const bytes = new TextEncoder().encode(text);
  const dec = new TextDecoder();
  const p = el("p", null, { class: "meta" });
  let at = 0;
  for (const [from, to] of ranges || []) {
    if (from < at || to > bytes.length) continue;
    p.append(document.createTextNode(dec.decode(bytes.slice(at, from))),
             el("mark", dec.decode(bytes.slice(from, to))));
    at = to;
  }
  p.append(document.createTextNode(dec.decode(bytes.slice(at))));
  return p;
}

function showError(message) {
  $("status").textContent = message;
  $("status").className = "error";
}

function refItem(n, pmid, title, journal, year) {
  const li = el("li");
  const a = el("a", `PMID ${pmid}`, { href: pubmed(pmid), target: "_blank", rel: "noopener",
    "data-pmid": pmid, class: "citation" });
  // "Similar articles", as on PubMed: listed under Articles without leaving the page.
  const like = el("a", "similar articles", { href: `#similar-${pmid}`, class: "similar",
    "data-pmid": pmid });
  like.addEventListener("click", (ev) => {
    ev.preventDefault();
    showSimilar(pmid).catch((e) => showError(e.message));
  });
  li.append(a, " ", el("span", title || ""), " ",
            el("span", `(${journal || ""}${year ? ", " + year : ""})`, { class: "meta" }),
            " ", like);
  return li;
}

async function showSimilar(pmid) {
  $("status").textContent = `Finding articles like PMID ${pmid}…`;
  $("status").className = "";
  const res = await fetch(`/api/similar/${encodeURIComponent(pmid)}?k=10`);
  const body = await res.json();
  if (!res.ok) throw new Error((body.error && body.error.message) || `HTTP ${res.status}`);
  $("results").replaceChildren();
  $("results-heading").textContent = `Articles like PMID ${pmid}`;
  $("results-section").hidden = false;
  for (const h of body.hits) {
    $("results").append(refItem(h.rank, h.pmid, h.title, h.journal, h.year));
  }
  $("status").textContent = `${body.hits.length} articles like PMID ${pmid} (${body.mode})`;
  $("results-section").scrollIntoView();
}

// The passage with the sentence that supports the answer marked: the quoted sentence when the
// answer quotes this passage (the sentence a span was copied from), else the one sharing most
// words with `claim`.
function highlighted(text, claim, quoted) {
  if (quoted) {
    const at = text.indexOf(quoted);
    if (at >= 0) {
      const p = el("p");
      p.append(document.createTextNode(text.slice(0, at)), el("mark", quoted),
               document.createTextNode(text.slice(at + quoted.length)));
      return p;
    }
  }
  const sentences = text.match(/[^.!?]+[.!?]*\s*/g) || [text];
  const words = new Set((claim || "").toLowerCase().match(/[a-z0-9]+/g) || []);
  let best = -1, bestScore = 0;
  sentences.forEach((s, i) => {
    const sw = s.toLowerCase().match(/[a-z0-9]+/g) || [];
    const score = sw.filter((w) => words.has(w)).length;
    if (score > bestScore) { best = i; bestScore = score; }
  });
  const p = el("p");
  sentences.forEach((s, i) => p.append(i === best ? el("mark", s) : document.createTextNode(s)));
  return p;
}

function showAnswer(a) {
  $("answer-section").hidden = false;
  const ans = $("answer");
  ans.className = "";
  // "[PMID n]" in the answer becomes a numbered link to its reference below.
  const number = new Map(a.citations.map((c, i) => [c.pmid, i + 1]));
  ans.replaceChildren();
  a.answer.split(/(\[PMID \d+\])/).forEach((part) => {
    const m = part.match(/^\[PMID (\d+)\]$/);
    if (m && number.has(m[1])) {
      ans.append(el("a", `[${number.get(m[1])}]`, { href: `#ref-${number.get(m[1])}`,
        title: `PMID ${m[1]}`, class: "marker" }));
    } else {
      ans.append(document.createTextNode(part));
    }
  });
  if (a.quote) {
    $("quote").hidden = false;
    $("quote").replaceChildren(el("span", `“${a.quote.sentence}”`), " ",
      el("a", `PMID ${a.quote.pmid}`, { href: pubmed(a.quote.pmid), target: "_blank",
        rel: "noopener", class: "quote-pmid" }));
  }
  if (a.safety && a.safety.decision !== "answer") {
    $("safety").hidden = false;
    $("safety").textContent = a.safety.decision === "refuse"
      ? "This request is outside what medlit answers."
      : "This asks for personal medical advice: please ask a health professional.";
  }
  if (a.citations.length) {
    $("refs-heading").hidden = false;
    a.citations.forEach((c, i) => {
      const li = refItem(i + 1, c.pmid, c.title, c.journal, c.year);
      li.id = `ref-${i + 1}`;
      $("references").append(li);
    });
    // The cited references as a file for a reference manager.
    const pmids = a.citations.map((c) => c.pmid).join(",");
    $("export").hidden = false;
    $("export").append("Download the references: ");
    [["ris", "RIS"], ["bibtex", "BibTeX"], ["csl-json", "CSL-JSON"], ["medline", "MEDLINE"]]
      .forEach(([format, name], i) => {
        if (i) $("export").append(" · ");
        $("export").append(el("a", name, { class: "export", "data-format": format,
          href: `/api/export?pmids=${encodeURIComponent(pmids)}&format=${format}`, download: "" }));
      });
  }
  if ((a.abstained || (a.safety && a.safety.decision !== "answer")) && a.related.length) {
    $("related-heading").hidden = false;
    for (const pmid of a.related) {
      const e = a.evidence.find((x) => x.pmid === pmid) || {};
      $("related").append(refItem(0, pmid, e.title, e.journal, e.year));
    }
  }
  // Each cited passage, with the sentence that supports the answer marked.
  const cited = new Set(a.citations.map((c) => c.pmid));
  const shown = a.evidence.filter((e) => cited.has(e.pmid));
  if (shown.length) {
    $("evidence-section").hidden = false;
    for (const e of shown) {
      const claim = (a.sentences.find((s) => s.pmids.includes(e.pmid)) || {}).text || a.answer;
      const div = el("div", null, { class: "evidence-item" });
      const h = el("h3");
      h.append(el("a", `PMID ${e.pmid}`, { href: pubmed(e.pmid), target: "_blank", rel: "noopener" }),
               " ", e.title);
      div.append(h, el("p", `${e.journal}${e.year ? ", " + e.year : ""}`, { class: "meta" }),
                 highlighted(e.text, claim, a.quote && a.quote.pmid === e.pmid ? a.quote.sentence : null));
      $("evidence").append(div);
    }
  }
  $("status").textContent = `Answered in ${(a.timings_ms.total / 1000).toFixed(1)} s` +
    (a.abstained ? ` — the ${coverage || "index"} did not cover the question` : "");
}

async function ask(question) {
  const res = await fetch("/api/ask", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify({ question, stream: true, ...options() }),
  });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new Error((body.error && body.error.message) || `HTTP ${res.status}`);
  }
  $("answer-section").hidden = false;
  $("answer").className = "draft";
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (!data) continue;
      const payload = JSON.parse(data);
      if (event === "token") $("answer").textContent += payload.text;
      else if (event === "answer") { showAnswer(payload); return; }
      else if (event === "error") throw new Error(payload.error.message);
    }
  }
  throw new Error("the answer stream ended early");
}

async function search(question) {
  const o = options();
  const params = new URLSearchParams({ q: question, k: String(o.k || 10) });
  if (o.year) params.set("year", o.year);
  if (o.mode) params.set("mode", o.mode);
  const res = await fetch(`/api/search?${params}`);
  const body = await res.json();
  if (!res.ok) throw new Error((body.error && body.error.message) || `HTTP ${res.status}`);
  $("results-heading").textContent = "Articles";
  $("results-section").hidden = false;
  if (body.message) {
    $("answer-section").hidden = false;
    $("answer").textContent = body.message;
  }
  for (const h of body.hits) {
    const li = refItem(h.rank, h.pmid, h.title, h.journal, h.year);
    li.append(marked(h.snippet, h.highlights));
    $("results").append(li);
  }
  $("status").textContent = body.hits.length
    ? `${body.hits.length} articles (${body.mode})`
    : `No articles matched in the ${coverage || "index"}.`;
}

$("ask-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  reset();
  const button = $("ask-button");
  button.disabled = true;
  const what = document.querySelector('input[name="what"]:checked').value;
  $("status").textContent = what === "search"
    ? "Searching…"
    : "Retrieving the evidence, then answering from it (the draft appears as it is written)…";
  try {
    if (what === "search") await search(question);
    else await ask(question);
  } catch (e) {
    showError(e.message);
  } finally {
    button.disabled = false;
  }
});

// The button says what it will do.
for (const r of document.querySelectorAll('input[name="what"]')) {
  r.addEventListener("change", () => {
    $("ask-button").textContent = r.value === "search" && r.checked ? "Search" : "Ask";
  });
}
loadCoverage();

// Enter asks; Shift+Enter adds a line.
$("question").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) {
    ev.preventDefault();
    $("ask-form").requestSubmit();
  }
});
