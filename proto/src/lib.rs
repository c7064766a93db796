//! The contracts of facetrain: the gRPC API (`facetrain.v1`, the public job API, and
//! `facetrain.internal.v1`, the worker protocol: generated types and services, the descriptor set
//! for reflection, wire conversions, error codes mapped to gRPC status codes) and the job file
//! (`job.toml`) that travels inside it.

/// The public job API, `facetrain.v1`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("facetrain.v1");
}

/// The worker protocol, `facetrain.internal.v1`: coordinator and workers of one release only.
pub mod internal {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("facetrain.internal.v1");
}

pub mod auth;
mod error;
pub mod incidents;
pub mod job;
pub mod ledger;
pub mod plan;
pub mod schedule;
pub mod tls;
pub mod wire;

pub use error::ErrorCode;

/// Encoded `FileDescriptorSet` of every facetrain proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/facetrain_descriptor.bin"));

/// gRPC message limit on both sides: gradients and states travel in chunks far below it.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// HTTP/2 flow-control windows on the connections that carry gradients and states: a whole
/// gradient (12 MB as f32) in flight without waiting for window updates. The defaults (1-2 MiB
/// per stream) stall a 12 MB push on round trips.
pub const STREAM_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
pub const CONNECTION_WINDOW_BYTES: u32 = 64 * 1024 * 1024;

/// Largest HTTP/2 frame a peer may send us: a gradient chunk in a few frames, not 64 of 16 KiB.
pub const MAX_FRAME_BYTES: u32 = 1024 * 1024;

/// Elements of f32 per gradient chunk (1 MiB of payload).
pub const GRADIENT_CHUNK_ELEMENTS: usize = 256 * 1024;

/// Bytes per state chunk.
pub const STATE_CHUNK_BYTES: usize = 1024 * 1024;

/// Gradients on the wire in the job's dtype: little-endian f32, or bf16 (the upper 16 bits of
/// each f32, rounded to nearest even).
pub fn encode_gradients(values: &[f32], dtype: job::GradientDtype) -> Vec<u8> {
    match dtype {
        job::GradientDtype::F32 => f32_to_bytes(values),
        job::GradientDtype::Bf16 => values.iter().flat_map(|v| f32_to_bf16(*v).to_le_bytes()).collect(),
    }
}

/// Inverse of [`encode_gradients`]; `None` when the length is not whole values.
pub fn decode_gradients(bytes: &[u8], dtype: job::GradientDtype) -> Option<Vec<f32>> {
    let mut values = vec![0.0f32; bytes.len() / gradient_element_bytes(dtype)];
    decode_gradients_into(bytes, dtype, &mut values).then_some(values)
}

/// [`decode_gradients`] straight into `out`, without an intermediate vector; false (and `out`
/// unspecified) when `bytes` is not exactly `out.len()` values.
pub fn decode_gradients_into(bytes: &[u8], dtype: job::GradientDtype, out: &mut [f32]) -> bool {
    if bytes.len() != out.len() * gradient_element_bytes(dtype) {
        return false;
    }
    match dtype {
        job::GradientDtype::F32 if cfg!(target_endian = "little") => {
            bytemuck::cast_slice_mut::<f32, u8>(out).copy_from_slice(bytes);
        }
        job::GradientDtype::F32 => {
            for (value, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *value = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        job::GradientDtype::Bf16 => {
            for (value, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *value = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
            }
        }
    }
    true
}

/// Bytes per element on the wire.
pub fn gradient_element_bytes(dtype: job::GradientDtype) -> usize {
    match dtype {
        job::GradientDtype::F32 => 4,
        job::GradientDtype::Bf16 => 2,
    }
}

fn f32_to_bf16(value: f32) -> u16 {
    let bits = value.to_bits();
    if value.is_nan() {
        return ((bits >> 16) | 0x40) as u16; // stays a (quiet) NaN
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// Encodes f32 values as little-endian bytes: one copy on a little-endian machine (a gradient
/// is 12 MB per step; byte-by-byte collection cost more than the wire).
pub fn f32_to_bytes(values: &[f32]) -> Vec<u8> {
    if cfg!(target_endian = "little") {
        return bytemuck::cast_slice(values).to_vec();
    }
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Decodes little-endian f32 bytes; `None` when the length is not a multiple of four.
pub fn bytes_to_f32(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    if cfg!(target_endian = "little") {
        // A copy into aligned memory: the received bytes need not be 4-aligned.
        let mut values = vec![0.0f32; bytes.len() / 4];
        bytemuck::cast_slice_mut::<f32, u8>(&mut values).copy_from_slice(bytes);
        return Some(values);
    }
    Some(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_keeps_three_significant_digits_and_exact_values_stay_exact() {
        let values = [1.0f32, -2.5, 0.1, 1.2345, 1e-8, 0.0];
        let back =
            decode_gradients(&encode_gradients(&values, job::GradientDtype::Bf16), job::GradientDtype::Bf16).unwrap();
        assert_eq!(&back[..2], &[1.0, -2.5]);
        for (a, b) in values.iter().zip(&back) {
            assert!((a - b).abs() <= a.abs() / 128.0, "{a} -> {b}");
        }
        assert_eq!(encode_gradients(&values, job::GradientDtype::Bf16).len(), 12);
        assert!(decode_gradients(&[1, 2, 3], job::GradientDtype::Bf16).is_none());
    }

    #[test]
    fn f32_bytes_round_trip_and_reject_ragged_input() {
        let values = [1.5f32, -0.0, f32::MAX, 3.25e-8];
        assert_eq!(bytes_to_f32(&f32_to_bytes(&values)).unwrap(), values);
        assert!(bytes_to_f32(&[0, 1, 2]).is_none());
    }

    #[test]
    fn decoding_into_a_slice_matches_decoding_to_a_vector() {
        let values = [1.5f32, -0.0, f32::MAX, 3.25e-8, 7.0];
        for dtype in [job::GradientDtype::F32, job::GradientDtype::Bf16] {
            let bytes = encode_gradients(&values, dtype);
            let mut out = [0.0f32; 5];
            assert!(decode_gradients_into(&bytes, dtype, &mut out));
            assert_eq!(out.to_vec(), decode_gradients(&bytes, dtype).unwrap(), "{dtype:?}");
            assert!(!decode_gradients_into(&bytes, dtype, &mut [0.0f32; 4]), "{dtype:?}: a short slice");
            assert!(!decode_gradients_into(&bytes[1..], dtype, &mut out[1..]), "{dtype:?}: ragged bytes");
        }
    }
}
