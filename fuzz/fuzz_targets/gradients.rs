//! Gradient payloads off the wire, decoded as f32 and as bf16: never a panic, `None` exactly for
//! lengths that are not whole values, and a decoded payload re-encodes to the same bytes (NaN
//! payloads aside, which bf16 encoding quiets). Mirrors proto/tests/fuzz_gradients.rs, on the same
//! corpus (fuzz/corpus/gradients).

#![no_main]

use facetrain_proto::job::GradientDtype;
use facetrain_proto::{decode_gradients, encode_gradients, gradient_element_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for dtype in [GradientDtype::F32, GradientDtype::Bf16] {
        let width = gradient_element_bytes(dtype);
        let Some(values) = decode_gradients(data, dtype) else {
            assert!(!data.len().is_multiple_of(width), "{dtype:?} refused {} bytes", data.len());
            continue;
        };
        assert_eq!(values.len() * width, data.len());
        let again = encode_gradients(&values, dtype);
        for ((sent, received), value) in again.chunks_exact(width).zip(data.chunks_exact(width)).zip(&values) {
            assert!(value.is_nan() || sent == received, "{dtype:?} {value:e}: {sent:?} != {received:?}");
        }
    }
});
