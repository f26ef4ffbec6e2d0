//! Fuzz target: the HTTP/1.1 codec of loads' client (response heads, interim 1xx heads,
//! Content-Length, chunked and until-close bodies, keep-alive sequences of responses), read whole
//! and split into arbitrary pieces, which must decode the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    loads::__private::internals::decode_responses(data);
});
