//! Fuzz target for the prompt filler; the property is in `prompt_harness.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/prompt.rs"]
mod prompt;

#[path = "prompt_harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::check(data));
