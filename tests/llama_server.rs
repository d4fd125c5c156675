//! The remote backend (`--llm-endpoint`) against a server medlit did not write: llama.cpp's
//! `llama-server` (built once by `medlit bench llama-server`, from the source distribution
//! `bench generate` builds llama-bench from) serving the fetched Gemma 3 270M GGUF. Streamed
//! and whole replies, citations verified here, and a server that goes away mid-answer.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

struct LlamaServer {
    child: Child,
    port: u16,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// llama-server, built once for the test binary (the tests share one build folder, so two
/// builds at once would race in it).
fn llama_server_bin() -> &'static PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let built = ok_json(&["bench", "llama-server", "--json"]);
        PathBuf::from(built["path"].as_str().unwrap())
    })
}

fn start_llama_server() -> LlamaServer {
    let bin = llama_server_bin();
    let gguf = medlit_corpus::MedlitHome::from_env()
        .unwrap()
        .assets()
        .join("models/gemma-3-270m-q4_k_m.gguf");
    assert!(gguf.is_file(), "{}", gguf.display());
    let port = free_port();
    let child = Command::new(bin)
        .arg("-m")
        .arg(&gguf)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "-c",
            "4096",
            "-t",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let server = LlamaServer { child, port };
    let t = Instant::now();
    loop {
        let up = agent()
            .get(&format!("http://127.0.0.1:{port}/health"))
            .call()
            .is_ok_and(|r| r.status().as_u16() == 200);
        if up {
            return server;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "llama-server did not come up"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn ask_remote(endpoint: &str, extra: &[&str]) -> std::process::Output {
    let idx = index_path();
    let idx = idx.to_str().unwrap();
    let mut args = vec![
        "ask",
        BRUCELLA,
        "--index",
        idx,
        "--llm-endpoint",
        endpoint,
        "--llm-model",
        "gemma-3-270m",
        "--max-tokens",
        "96",
        "--json",
    ];
    args.extend_from_slice(extra);
    medlit(&args)
}

fn checked_answer(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    let a: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        a["model"]
            .as_str()
            .unwrap()
            .starts_with("gemma-3-270m at http://127.0.0.1"),
        "{a}"
    );
    assert!(!a["draft"].as_str().unwrap().trim().is_empty(), "{a}");
    let evidence: Vec<&str> = a["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pmid"].as_str().unwrap())
        .collect();
    assert!(!evidence.is_empty(), "{a}");
    // Verified here: every citation is among the evidence, and what the draft cited from
    // elsewhere is removed from the answer.
    for c in a["citations"].as_array().unwrap() {
        assert!(evidence.contains(&c["pmid"].as_str().unwrap()), "{a}");
    }
    for p in a["removed_pmids"].as_array().unwrap() {
        assert!(
            !a["answer"].as_str().unwrap().contains(p.as_str().unwrap()),
            "{a}"
        );
    }
    a
}

#[test]
fn the_remote_backend_works_against_llama_server_streamed_or_not() {
    let server = start_llama_server();
    let endpoint = format!("http://127.0.0.1:{}", server.port);
    let streamed = checked_answer(&ask_remote(&endpoint, &[]));
    let whole = checked_answer(&ask_remote(&endpoint, &["--llm-no-stream"]));
    // Greedy decoding: the same draft whether it came as a stream or in one piece.
    assert_eq!(streamed["draft"], whole["draft"], "{streamed} / {whole}");
    assert_eq!(streamed["answer"], whole["answer"]);
    assert_eq!(streamed["removed_pmids"], whole["removed_pmids"]);
}

/// Relays one request to `upstream` and the first `keep` bytes of the reply, then closes the
/// connection: a server that goes away mid-answer.
fn cutting_proxy(upstream: u16, keep: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                return;
            };
            let mut to_server = client.try_clone().unwrap();
            let mut from_client = server.try_clone().unwrap();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut to_server, &mut from_client);
            });
            let mut sent = 0;
            let mut buf = [0u8; 256];
            while sent < keep {
                match server.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let n = n.min(keep - sent);
                        if client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n;
                    }
                }
            }
            let _ = client.shutdown(std::net::Shutdown::Both);
            let _ = server.shutdown(std::net::Shutdown::Both);
        }
    });
    port
}

#[test]
fn a_server_that_goes_away_mid_answer_is_an_error_not_half_an_answer() {
    let server = start_llama_server();
    // Headers and a few events of the stream get through, then the connection closes.
    let proxy = cutting_proxy(server.port, 900);
    let out = ask_remote(&format!("http://127.0.0.1:{proxy}"), &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = stderr(&out);
    assert!(
        err.contains("closed the reply before it finished") || err.contains("the reply broke off"),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "no answer is printed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
