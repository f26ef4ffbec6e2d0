//! Fuzz target: every message decoder of the cluster, and statistics built from what decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    loads::__private::internals::decode_any(data);
});
