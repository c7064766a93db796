//! Gradient payloads arrive from the network: decoding any bytes must not panic, must refuse a
//! length that is not whole values, and what the encoder writes must come back exactly (f32) or
//! within bf16's rounding (relative 2^-8).

#[path = "../../fuzz/proptest_support.rs"]
mod fuzz_support;

use facetrain_proto::job::GradientDtype;
use facetrain_proto::{decode_gradients, encode_gradients, gradient_element_bytes};
use proptest::prelude::*;

const DTYPES: [GradientDtype; 2] = [GradientDtype::F32, GradientDtype::Bf16];

/// Halfway between the largest finite bf16 (0x7F7F) and the step after it: from here on,
/// round-to-nearest-even gives infinity, as IEEE rounding does.
const BF16_OVERFLOW: f32 = f32::from_bits(0x7F7F_8000);

/// Decoding never panics, and answers `Some` exactly when the length is whole values.
fn check_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    for dtype in DTYPES {
        let width = gradient_element_bytes(dtype);
        match decode_gradients(bytes, dtype) {
            Some(values) => prop_assert_eq!(values.len() * width, bytes.len()),
            None => prop_assert!(!bytes.len().is_multiple_of(width), "{dtype:?} refused {} bytes", bytes.len()),
        }
    }
    Ok(())
}

/// 2^-134, half a bf16 step among subnormals (2^15 of f32's smallest step): the absolute error
/// bound where a relative one means nothing.
const BF16_SUBNORMAL_HALF_ULP: f32 = f32::from_bits(0x8000);

fn check_bf16_rounding(value: f32, back: f32) -> Result<(), TestCaseError> {
    if value.is_nan() {
        prop_assert!(back.is_nan(), "NaN became {back}");
    } else if value.abs() >= BF16_OVERFLOW {
        prop_assert_eq!(back, f32::INFINITY.copysign(value));
    } else if value.abs() >= f32::MIN_POSITIVE {
        let relative = ((back - value) / value).abs();
        prop_assert!(relative <= 1.0 / 256.0, "{value:e} -> {back:e}: relative error {relative:e}");
    } else {
        prop_assert!((back - value).abs() <= BF16_SUBNORMAL_HALF_ULP, "{value:e} -> {back:e}");
        prop_assert_eq!(back.is_sign_negative(), value.is_sign_negative());
    }
    Ok(())
}

proptest! {
    #![proptest_config(fuzz_support::config(256))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        check_decode(&bytes)?;
    }

    #[test]
    fn f32_round_trip_is_bit_exact(values in proptest::collection::vec(any::<f32>(), 0..64)) {
        let back = decode_gradients(&encode_gradients(&values, GradientDtype::F32), GradientDtype::F32).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&back), bits(&values));
    }

    #[test]
    fn bf16_round_trip_is_within_half_an_ulp(values in proptest::collection::vec(any::<f32>(), 0..64)) {
        let bytes = encode_gradients(&values, GradientDtype::Bf16);
        prop_assert_eq!(bytes.len(), values.len() * 2);
        let back = decode_gradients(&bytes, GradientDtype::Bf16).unwrap();
        for (value, back) in values.iter().zip(back) {
            check_bf16_rounding(*value, back)?;
        }
    }

    /// A received bf16 payload re-encodes to itself (what a ring hop does), NaN payloads aside.
    #[test]
    fn bf16_payloads_survive_a_relay(bytes in proptest::collection::vec(any::<u8>(), 0..32).prop_map(|mut b| {
        b.truncate(b.len() / 2 * 2);
        b
    })) {
        let values = decode_gradients(&bytes, GradientDtype::Bf16).unwrap();
        let again = encode_gradients(&values, GradientDtype::Bf16);
        for ((sent, received), value) in again.chunks_exact(2).zip(bytes.chunks_exact(2)).zip(&values) {
            if !value.is_nan() {
                prop_assert_eq!(sent, received);
            }
        }
    }
}

#[test]
fn values_beyond_bf16_range_become_infinities_of_the_same_sign() {
    let back = decode_gradients(&encode_gradients(&[f32::MAX, f32::MIN], GradientDtype::Bf16), GradientDtype::Bf16);
    assert_eq!(back.unwrap(), [f32::INFINITY, f32::NEG_INFINITY]);
}

#[test]
fn corpus_replays_without_panics() {
    for (name, bytes) in fuzz_support::corpus("gradients") {
        check_decode(&bytes).unwrap_or_else(|e| panic!("corpus file {name}: {e}"));
    }
}
