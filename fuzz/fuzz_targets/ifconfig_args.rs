//! ifconfig's command-line grammar: any argument vector, no panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Arguments are NUL-separated, so the fuzzer can vary their number.
    let args: Vec<String> = data
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let _ = ifnet::ifconfig::parse::parse(&args);
});
