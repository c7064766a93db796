//! Conversions between the platform's values and `facetrain.v1`'s wire types: times as
//! `google.protobuf.Timestamp`/`Duration` (an unset time is an absent field, not 0), and the
//! incident, resolver and toil enums, whose wire names are derived from the one `name()` each
//! Rust enum has (`worker_lost` <-> `INCIDENT_CAUSE_WORKER_LOST`).

use prost_types::{Duration, Timestamp};

use crate::incidents::{IncidentCause, Resolver, ToilKind};
use crate::pb;

/// A time in Unix milliseconds, 0 meaning "not yet" (how the job store keeps it), on the wire.
pub fn timestamp(unix_ms: u64) -> Option<Timestamp> {
    (unix_ms > 0).then(|| Timestamp {
        seconds: i64::try_from(unix_ms / 1000).unwrap_or(i64::MAX),
        nanos: ((unix_ms % 1000) * 1_000_000) as i32,
    })
}

/// Inverse of [`timestamp`]: absent (or before 1970) is 0.
pub fn unix_ms(time: Option<&Timestamp>) -> u64 {
    time.map_or(0, |t| {
        u64::try_from(t.seconds).unwrap_or(0).saturating_mul(1000) + u64::try_from(t.nanos / 1_000_000).unwrap_or(0)
    })
}

/// Seconds as a wire duration; non-finite or negative becomes zero (the platform never keeps
/// those: requests carrying them are refused first).
pub fn duration(seconds: f64) -> Duration {
    let seconds = if seconds.is_finite() { seconds.max(0.0) } else { 0.0 };
    let whole = seconds.trunc();
    Duration { seconds: whole as i64, nanos: ((seconds - whole) * 1e9).round().min(999_999_999.0) as i32 }
}

/// A wire duration in seconds; absent is 0. `None` for a duration that is not one by
/// `google.protobuf.Duration`'s rules (nanos outside ±999,999,999 or signed unlike the seconds).
pub fn seconds(duration: Option<&Duration>) -> Option<f64> {
    let Some(d) = duration else { return Some(0.0) };
    let valid = d.nanos.abs() < 1_000_000_000 && !(d.seconds > 0 && d.nanos < 0 || d.seconds < 0 && d.nanos > 0);
    valid.then(|| d.seconds as f64 + f64::from(d.nanos) / 1e9)
}

/// The wire value of each Rust enum, found by name so the Rust `name()` stays the one source.
fn by_name<T>(prefix: &str, name: &str, from_str_name: fn(&str) -> Option<T>) -> Option<T> {
    from_str_name(&format!("{prefix}_{}", name.to_ascii_uppercase()))
}

impl From<IncidentCause> for pb::IncidentCause {
    fn from(cause: IncidentCause) -> Self {
        by_name("INCIDENT_CAUSE", cause.name(), Self::from_str_name).unwrap_or(Self::Unspecified)
    }
}

impl From<Resolver> for pb::Resolver {
    fn from(resolver: Resolver) -> Self {
        by_name("RESOLVER", resolver.name(), Self::from_str_name).unwrap_or(Self::Unspecified)
    }
}

impl From<ToilKind> for pb::ToilKind {
    fn from(kind: ToilKind) -> Self {
        by_name("TOIL_KIND", kind.name(), Self::from_str_name).unwrap_or(Self::Unspecified)
    }
}

/// The Rust enum of a wire value: `None` for UNSPECIFIED and for values this build does not know.
pub fn incident_cause(value: i32) -> Option<IncidentCause> {
    let name = pb::IncidentCause::try_from(value).ok()?.as_str_name().strip_prefix("INCIDENT_CAUSE_")?;
    IncidentCause::parse(&name.to_ascii_lowercase())
}

/// See [`incident_cause`].
pub fn resolver(value: i32) -> Option<Resolver> {
    let name = pb::Resolver::try_from(value).ok()?.as_str_name().strip_prefix("RESOLVER_")?;
    Resolver::parse(&name.to_ascii_lowercase())
}

/// See [`incident_cause`].
pub fn toil_kind(value: i32) -> Option<ToilKind> {
    let name = pb::ToilKind::try_from(value).ok()?.as_str_name().strip_prefix("TOIL_KIND_")?;
    ToilKind::parse(&name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every wire value that `try_from` knows, UNSPECIFIED included.
    fn wire_values(known: impl Fn(i32) -> bool) -> usize {
        (0..256).filter(|v| known(*v)).count()
    }

    #[test]
    fn every_rust_enum_value_has_its_wire_value_and_back() {
        for cause in IncidentCause::ALL {
            let wire = pb::IncidentCause::from(cause);
            assert_ne!(wire, pb::IncidentCause::Unspecified, "{cause} has no wire value");
            assert_eq!(incident_cause(wire as i32), Some(cause));
        }
        for by in Resolver::ALL {
            let wire = pb::Resolver::from(by);
            assert_ne!(wire, pb::Resolver::Unspecified, "{by:?} has no wire value");
            assert_eq!(resolver(wire as i32), Some(by));
        }
        for kind in ToilKind::ALL {
            let wire = pb::ToilKind::from(kind);
            assert_ne!(wire, pb::ToilKind::Unspecified, "{kind:?} has no wire value");
            assert_eq!(toil_kind(wire as i32), Some(kind));
        }
        // ...and no wire value without a Rust one (UNSPECIFIED aside).
        assert_eq!(wire_values(|v| pb::IncidentCause::try_from(v).is_ok()), IncidentCause::ALL.len() + 1);
        assert_eq!(wire_values(|v| pb::Resolver::try_from(v).is_ok()), Resolver::ALL.len() + 1);
        assert_eq!(wire_values(|v| pb::ToilKind::try_from(v).is_ok()), ToilKind::ALL.len() + 1);
        assert_eq!(incident_cause(0), None);
        assert_eq!(resolver(999), None);
    }

    #[test]
    fn times_round_trip_and_zero_is_unset() {
        assert_eq!(timestamp(0), None);
        let t = timestamp(1_764_558_000_123).unwrap();
        assert_eq!((t.seconds, t.nanos), (1_764_558_000, 123_000_000));
        assert_eq!(unix_ms(Some(&t)), 1_764_558_000_123);
        assert_eq!(unix_ms(None), 0);
        assert_eq!(unix_ms(Some(&Timestamp { seconds: -5, nanos: 0 })), 0);
    }

    #[test]
    fn durations_round_trip_and_invalid_ones_are_refused() {
        let d = duration(2.25);
        assert_eq!((d.seconds, d.nanos), (2, 250_000_000));
        assert_eq!(seconds(Some(&d)), Some(2.25));
        assert_eq!(seconds(None), Some(0.0));
        assert_eq!(duration(f64::INFINITY), Duration::default());
        assert_eq!(duration(-3.0), Duration::default());
        assert_eq!(seconds(Some(&Duration { seconds: 1, nanos: 1_000_000_000 })), None);
        assert_eq!(seconds(Some(&Duration { seconds: 1, nanos: -1 })), None);
        assert_eq!(seconds(Some(&Duration { seconds: -1, nanos: -500_000_000 })), Some(-1.5));
    }
}
