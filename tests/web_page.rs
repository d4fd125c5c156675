//! The web page end to end in headless Chromium (Debian's `chromium` and `chromium-driver`,
//! driven over the WebDriver protocol): a dev-set question typed into the page, the streamed
//! answer, a citation link to the source article. A screenshot is saved as a test artifact in
//! `target/test-artifacts/`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

/// dev_qa q0128 (golden answer "95%", source PMID 34097189), written out so the test does not
/// depend on the evaluation folder.
const QUESTION: &str = "According to a review of the Pan-Cancer Analysis of Whole Genomes (PCAWG) papers published in February 2020, in what percentage of cancers was at least one causative driver mutation found?";
const SOURCE_PMID: &str = "34097189";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium and its driver: Debian's packages, installed with apt-get when missing and this
/// runs as root (as in CI); otherwise the test fails and says what to install.
fn browser() -> (PathBuf, PathBuf) {
    let find = |names: &[&str]| {
        names
            .iter()
            .map(|n| Path::new("/usr/bin").join(n))
            .find(|p| p.is_file())
    };
    let found = || {
        Some((
            find(&["chromium", "chromium-browser"])?,
            find(&["chromedriver"])?,
        ))
    };
    if let Some(f) = found() {
        return f;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if root {
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let status = Command::new("apt-get")
            .args(["install", "-y", "-qq", "chromium", "chromium-driver"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "apt-get install chromium chromium-driver failed"
        );
    }
    found().expect(
        "the web page test needs Chromium and its WebDriver: apt-get install chromium chromium-driver",
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A chromedriver process and one headless browser session in it.
struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = agent()
            .delete(&format!("{}/session/{}", self.base, self.session))
            .call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    fn start(width: u32, height: u32) -> Browser {
        let (chromium, chromedriver) = browser();
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        let ready = || {
            let mut r = agent().get(&format!("{base}/status")).call().ok()?;
            let v: Value = serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()?;
            v["value"]["ready"].as_bool()
        };
        while ready() != Some(true) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let (status, v) = post_json(
            &format!("{base}/session"),
            &json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", format!("--window-size={width},{height}")],
                },
            }}}),
        );
        assert_eq!(status, 200, "no browser session: {v}");
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        let mut b = Browser {
            driver,
            base,
            session,
        };
        b.base = format!("{}/session/{}", b.base, b.session);
        b
    }

    fn cmd(&self, path: &str, body: Value) -> Value {
        let (status, v) = post_json(&format!("{}{path}", self.base), &body);
        assert_eq!(status, 200, "{path}: {v}");
        v["value"].clone()
    }

    fn element(&self, css: &str) -> String {
        let v = self.cmd("/element", json!({"using": "css selector", "value": css}));
        v[ELEMENT].as_str().unwrap().to_string()
    }

    fn script(&self, js: &str) -> Value {
        self.cmd("/execute/sync", json!({"script": js, "args": []}))
    }

    fn screenshot(&self, file: &Path) {
        let (_, v) = get(&format!("{}/screenshot", self.base));
        let png = base64_decode(v["value"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, png).unwrap();
    }
}

/// Standard base64 (the screenshot), without a crate for one call.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| value(c) as u32).collect();
        let n = v.iter().fold(0u32, |acc, x| acc << 6 | x) << (6 * (4 - v.len()));
        out.extend_from_slice(&n.to_be_bytes()[1..v.len()]);
    }
    out
}

fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-artifacts")
        .join(name)
}

#[test]
fn a_question_typed_into_the_page_gets_an_answer_citing_the_source_article() {
    let server = Server::start(&[]);
    // A phone-width window: the page must work there.
    let browser = Browser::start(412, 915);
    browser.cmd("/url", json!({"url": server.url("/")}));
    let box_ = browser.element("#question");
    browser.cmd(&format!("/element/{box_}/value"), json!({"text": QUESTION}));
    // Enter asks (keyboard use), as the page says.
    browser.cmd(
        &format!("/element/{box_}/value"),
        json!({"text": "\u{E007}"}),
    );

    let t = Instant::now();
    let links = loop {
        let links = browser.script(
            "return [...document.querySelectorAll('#references a.citation')].map(a => a.href)",
        );
        let error = browser.script("return document.querySelector('#status.error')?.textContent");
        assert!(error.is_null(), "the page shows an error: {error}");
        if links.as_array().is_some_and(|l| !l.is_empty()) {
            break links;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no answer on the page after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    browser.screenshot(&artifact("web_page_answer.png"));

    let want = format!("https://pubmed.ncbi.nlm.nih.gov/{SOURCE_PMID}/");
    assert!(
        links.as_array().unwrap().iter().any(|l| l == &want),
        "no citation link to the source article: {links}"
    );
    let answer = browser.script("return document.querySelector('#answer').textContent");
    assert!(answer.as_str().unwrap().contains("95%"), "{answer}");
    // The answer's "[PMID n]" is a numbered link to its reference.
    let marker = browser.script(
        "const m = document.querySelector('#answer a.marker'); \
         return m && [m.textContent, document.querySelector(m.getAttribute('href')).textContent]",
    );
    assert_eq!(marker[0], "[1]", "{marker}");
    assert!(
        marker[1].as_str().unwrap().contains(SOURCE_PMID),
        "{marker}"
    );
    // The cited passage is shown with the supporting sentence marked.
    let marked = browser.script("return document.querySelector('#evidence mark')?.textContent");
    assert!(
        marked.as_str().is_some_and(|m| m.contains("95%")),
        "{marked}"
    );
    // The sentence the span was copied from is quoted under the answer, with its PMID, and it
    // is the one marked in the passage.
    let quote = browser.script(
        "const q = document.querySelector('#quote');          return q && !q.hidden && [q.textContent, q.querySelector('a.quote-pmid')?.href]",
    );
    let quoted = quote[0]
        .as_str()
        .unwrap_or_else(|| panic!("no quote shown: {quote}"));
    assert!(quoted.contains("95%"), "{quote}");
    assert_eq!(quote[1], json!(want), "{quote}");
    assert!(
        quoted.contains(marked.as_str().unwrap().trim()),
        "{quote} / {marked}"
    );
    // The cited references download for a reference manager: the RIS link's file holds the
    // source article's record.
    let ris =
        browser.script("return document.querySelector('#export a.export[data-format=ris]')?.href");
    let ris = ris
        .as_str()
        .unwrap_or_else(|| panic!("no RIS download link: {ris}"));
    let body = agent()
        .get(ris)
        .call()
        .expect("downloading the references")
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(body.starts_with("TY  - JOUR"), "{body}");
    assert!(body.contains(&format!("AN  - {SOURCE_PMID}\n")), "{body}");
    // Every reference links "similar articles": clicking lists articles like it, on the page.
    browser.script("document.querySelector('#references a.similar').click(); return null");
    let t = Instant::now();
    let similar = loop {
        let v = browser.script(
            "const h = document.querySelector('#results-heading'); \
             return !document.querySelector('#results-section').hidden && \
               [h.textContent, [...document.querySelectorAll('#results a.citation')].map(a => a.dataset.pmid)]",
        );
        if v.is_array() && v[1].as_array().is_some_and(|l| !l.is_empty()) {
            break v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no similar articles listed: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let first_ref =
        browser.script("return document.querySelector('#references a.similar').dataset.pmid");
    assert_eq!(
        similar[0],
        json!(format!(
            "Articles like PMID {}",
            first_ref.as_str().unwrap()
        ))
    );
    let listed = similar[1].as_array().unwrap();
    assert!(
        !listed.contains(&first_ref),
        "the article itself is listed: {similar}"
    );
    let (_, api) = get(&server.url(&format!("/api/similar/{}", first_ref.as_str().unwrap())));
    let api: Vec<Value> = api["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["pmid"].clone())
        .collect();
    assert_eq!(listed, &api);
    let notice = browser.script("return document.querySelector('#notice').textContent");
    assert!(notice.as_str().unwrap().contains("not medical advice"));
    // The page says what the corpus covers, from /api/stats.
    let coverage = browser.script("return document.querySelector('#coverage').textContent");
    let coverage = coverage.as_str().unwrap();
    assert!(
        coverage.contains("50,783")
            && coverage.contains("pubmed21n1298.xml.gz")
            && coverage.contains("2021"),
        "{coverage}"
    );

    // Search-only mode lists articles without generating.
    browser.cmd(
        &format!("/element/{}/click", browser.element("input[value=search]")),
        json!({}),
    );
    let label = browser.script("return document.querySelector('#ask-button').textContent");
    assert_eq!(label, "Search", "the button says what it does");
    let search = |browser: &Browser| {
        browser.script("document.querySelector('#results').replaceChildren(); document.querySelector('#status').textContent = ''");
        browser.cmd(
            &format!("/element/{}/click", browser.element("#ask-button")),
            json!({}),
        );
        let t = Instant::now();
        loop {
            let n = browser.script("return document.querySelectorAll('#results li').length");
            let status = browser.script("return document.querySelector('#status').textContent");
            let done = status
                .as_str()
                .is_some_and(|s| s.contains("articles") || s.contains("No articles"));
            if n.as_u64().unwrap_or(0) > 0 || done {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "no search results");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    search(&browser);
    browser.screenshot(&artifact("web_page_search.png"));
    // The matched words are marked in the snippets, as in the CLI.
    let marks = browser.script("return document.querySelectorAll('#results mark').length");
    assert!(marks.as_u64().unwrap() > 0, "{marks}");
    let pmids = browser.script(
        "return [...document.querySelectorAll('#results a.citation')].map(a => a.dataset.pmid)",
    );
    assert!(
        pmids.as_array().unwrap().iter().any(|p| p == SOURCE_PMID),
        "{pmids}"
    );

    // The year control restricts the results.
    let year = browser.element("#year");
    browser.cmd(&format!("/element/{year}/value"), json!({"text": "1977"}));
    search(&browser);
    browser.screenshot(&artifact("web_page_search_1977.png"));
    let metas = browser.script(
        "return [...document.querySelectorAll('#results li > span.meta')].map(s => s.textContent)",
    );
    let metas = metas.as_array().unwrap();
    assert!(!metas.is_empty(), "no 1977 results");
    assert!(
        metas.iter().all(|m| m.as_str().unwrap().contains("1977")),
        "{metas:?}"
    );

    // No results: the page says so, and what it searched.
    browser.cmd(
        &format!("/element/{}/clear", browser.element("#year")),
        json!({}),
    );
    let q = browser.element("#question");
    browser.cmd(&format!("/element/{q}/clear"), json!({}));
    browser.cmd(
        &format!("/element/{q}/value"),
        json!({"text": "qwzxv blorptastic"}),
    );
    search(&browser);
    let status = browser.script("return document.querySelector('#status').textContent");
    let status = status.as_str().unwrap();
    assert!(
        status.contains("No articles") && status.contains("50,783"),
        "{status}"
    );
    browser.screenshot(&artifact("web_page_no_results.png"));
}
