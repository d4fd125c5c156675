//! The integration tests: one binary, so the real PubMed sample is fetched and indexed once
//! (`common::sample_index`) for every module.
//!
//! Module map:
//! - [`common`]: the harness (the `medlit` binary, the sample index, fixtures, a server, HTTP).
//! - [`cli`]: every command end to end on the real sample.
//! - [`crash`]: a build killed mid-write and resumed; nothing half-written.
//! - [`serve`]: the HTTP API, the OpenAI-compatible route (with the official client), limits.
//! - [`web_page`]: the page in a real Chromium.
//! - [`filters`]: field filters and PubMed field tags, the dense half filtered before fusion.
//! - [`llama_server`]: the remote backend against llama.cpp's llama-server.
//! - [`lookup`]: `show`, citation export read back by other readers, the parser against
//!   pubmed_parser.
//! - [`mcp`]: `medlit mcp` driven by the official Python MCP client.
//! - [`model_folder`]: `ask --model FOLDER` on the tiny Gemma 4 fixture.
//! - [`prompt_fuzz_corpus`]: the prompt filler's fuzz corpus replayed.
mod common;

mod cli;
mod crash;
mod filters;
mod llama_server;
mod lookup;
mod mcp;
mod model_folder;
mod prompt_fuzz_corpus;
mod serve;
mod web_page;
