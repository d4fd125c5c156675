//! `medlit bench serve`: load on a real `medlit serve` process — searches at high
//! concurrency, then questions beyond the queue's bound — with throughput, latency
//! percentiles, errors and the server's memory.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use medlit_corpus::datasets::read_qa;
use serde::Serialize;

use crate::args::BenchServeArgs;
use medlit::commands::print_json;
use medlit::eval::retrieval::percentile;
use medlit::generate::device::proc_kb;

#[derive(Debug, Serialize)]
struct Phase {
    concurrency: usize,
    seconds: f64,
    requests: usize,
    /// Successful responses (200) per second.
    ok_per_s: f64,
    ok: usize,
    p50_ms: f64,
    p99_ms: f64,
    /// 503 with a JSON error body and Retry-After: the bound doing its job (the client then
    /// waits as long as Retry-After says before its next request).
    rejected: usize,
    /// Anything else: failed connections, other statuses, malformed rejections.
    errors: usize,
    first_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    dataset: String,
    queue: usize,
    search: Phase,
    ask: Phase,
    rss_mb: Rss,
}

#[derive(Debug, Serialize)]
struct Rss {
    after_start: f64,
    after_search: f64,
    after_ask: f64,
    peak: f64,
}

/// The server under load; killed when dropped.
struct ServerProcess {
    child: Child,
    base: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    fn start(args: &BenchServeArgs) -> Result<Self> {
        let mut cmd = Command::new(crate::medlit_exe()?);
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--queue"])
            .arg(args.queue.to_string());
        if let Some(dir) = &args.index.index {
            cmd.arg("--index").arg(dir);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting medlit serve")?;
        let stdout = child.stdout.take().context("the server's output")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the server's address")?;
        let Some(base) = line.trim().strip_prefix("medlit serve: listening on ") else {
            let _ = child.kill();
            bail!("medlit serve did not start (run it alone to see why)");
        };
        Ok(ServerProcess {
            base: base.to_string(),
            child,
        })
    }

    /// (current, peak) resident memory in MB, from /proc.
    fn rss_mb(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| proc_kb(&status, name).map_or(0.0, |kb| kb as f64 / 1024.0);
        (field("VmRSS:"), field("VmHWM:"))
    }
}

enum Outcome {
    Ok(f64),
    /// Rejected, with the seconds the server asked the client to wait.
    Rejected(u64),
    Error(String),
}

/// `concurrency` threads send `request(i)` for `seconds`, each on its own connection.
fn load(
    concurrency: usize,
    seconds: f64,
    request: &(dyn Fn(&ureq::Agent, usize) -> Outcome + Sync),
) -> Phase {
    let next = AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let t = Instant::now();
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                scope.spawn(|| {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(300)))
                        .build()
                        .into();
                    let mut mine = Vec::new();
                    while Instant::now() < deadline {
                        let o = request(&agent, next.fetch_add(1, Ordering::Relaxed));
                        // A well-behaved client waits as long as the server asked.
                        if let Outcome::Rejected(s) = o {
                            let left = deadline.saturating_duration_since(Instant::now());
                            std::thread::sleep(Duration::from_secs(s).min(left));
                        }
                        mine.push(o);
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let elapsed = t.elapsed().as_secs_f64();
    let mut ms: Vec<f64> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Ok(ms) => Some(*ms),
            _ => None,
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let first_error = outcomes.iter().find_map(|o| match o {
        Outcome::Error(e) => Some(e.clone()),
        _ => None,
    });
    Phase {
        concurrency,
        seconds: elapsed,
        requests: outcomes.len(),
        ok_per_s: ms.len() as f64 / elapsed,
        ok: ms.len(),
        p50_ms: percentile(&ms, 0.5),
        p99_ms: percentile(&ms, 0.99),
        rejected: outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Rejected(_)))
            .count(),
        errors: outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Error(_)))
            .count(),
        first_error,
    }
}

/// Classifies one response: 200, a well-formed 503 (JSON error and Retry-After), or an error.
fn outcome(
    started: Instant,
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Outcome {
    let mut r = match result {
        Ok(r) => r,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = r.body_mut().read_to_string().unwrap_or_default();
    let json: Option<serde_json::Value> = serde_json::from_str(&body).ok();
    match status {
        200 if json.is_some() => Outcome::Ok(started.elapsed().as_secs_f64() * 1000.0),
        503 if retry.is_some()
            && json.is_some_and(|v| v["error"]["code"] == "server_overloaded") =>
        {
            Outcome::Rejected(retry.unwrap_or(1))
        }
        _ => Outcome::Error(format!(
            "HTTP {status}: {}",
            body.chars().take(200).collect::<String>()
        )),
    }
}

pub fn run(args: &BenchServeArgs) -> Result<()> {
    let questions: Vec<String> = read_qa(&args.dataset)
        .context("reading the dataset")?
        .into_iter()
        .map(|q| q.question)
        .collect();
    if questions.is_empty() {
        bail!("{} holds no questions", args.dataset.display());
    }
    let server = ServerProcess::start(args)?;
    let after_start = server.rss_mb().0;
    let quiet = args.json;
    let search_url = format!("{}/api/search", server.base);
    let ask_url = format!("{}/api/ask", server.base);

    if !quiet {
        eprintln!(
            "searches: {} clients for {} s…",
            args.search_concurrency, args.search_secs
        );
    }
    let search = load(args.search_concurrency, args.search_secs, &|agent, i| {
        let q = &questions[i % questions.len()];
        let t = Instant::now();
        outcome(
            t,
            agent.get(&search_url).query("q", q).query("k", "10").call(),
        )
    });
    let after_search = server.rss_mb().0;
    if !quiet {
        eprintln!(
            "questions: {} clients for {} s (queue bound {})…",
            args.ask_concurrency, args.ask_secs, args.queue
        );
    }
    let ask = load(args.ask_concurrency, args.ask_secs, &|agent, i| {
        let q = &questions[i % questions.len()];
        let t = Instant::now();
        outcome(
            t,
            agent
                .post(&ask_url)
                .send_json(serde_json::json!({ "question": q })),
        )
    });
    let (after_ask, peak) = server.rss_mb();
    let report = Report {
        dataset: args.dataset.display().to_string(),
        queue: args.queue,
        search,
        ask,
        rss_mb: Rss {
            after_start,
            after_search,
            after_ask,
            peak,
        },
    };
    if args.json {
        return print_json(&report);
    }
    println!("phase   clients  requests  ok/s    p50 ms   p99 ms  rejected (503)  errors");
    for (name, p) in [("search", &report.search), ("ask", &report.ask)] {
        println!(
            "{name:<7} {:>7}  {:>8}  {:>6.1}  {:>7.1}  {:>7.1}  {:>14}  {:>6}",
            p.concurrency, p.requests, p.ok_per_s, p.p50_ms, p.p99_ms, p.rejected, p.errors
        );
        if let Some(e) = &p.first_error {
            println!("        first error: {e}");
        }
    }
    println!(
        "server RSS: {:.0} MB after start, {:.0} after searches, {:.0} after questions (peak {:.0})",
        after_start, after_search, after_ask, peak
    );
    Ok(())
}
