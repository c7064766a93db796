//! Value parsers shared by several commands' flags. Numeric flags are refused outside their
//! range before anything runs or is written; each message gives the range (clap prints it with
//! the flag's name, and exits with 2).

use std::ops::RangeInclusive;

/// `text` as an integer in `range`, converted to the flag's type. It is read as a u64 first, so
/// that a value too large for the flag's type is reported against the range, not as a bad number.
pub fn bounded<T: TryFrom<u64>>(text: &str, range: RangeInclusive<u64>) -> Result<T, String> {
    let (low, high) = (range.start(), range.end());
    let value: u64 = text.trim().parse().map_err(|_| format!("expected an integer in {low}..={high}"))?;
    if !range.contains(&value) {
        return Err(format!("{value} is not in {low}..={high}"));
    }
    T::try_from(value).map_err(|_| format!("{value} is too large for this machine"))
}

/// `text` as a decimal number in `range`; `what` names the quantity in the message.
pub fn decimal(text: &str, range: RangeInclusive<f64>, what: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if range.contains(&value) => Ok(value),
        _ => Err(format!("expected {what} in {}..={}, got `{text}`", range.start(), range.end())),
    }
}

/// A range another crate defines for a u32 setting, as [`bounded`] takes it.
pub fn widen(range: RangeInclusive<u32>) -> RangeInclusive<u64> {
    u64::from(*range.start())..=u64::from(*range.end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_the_range_name_the_range() {
        assert_eq!(bounded::<u32>(" 8 ", 8..=1024), Ok(8));
        assert_eq!(bounded::<u32>("7", 8..=1024), Err("7 is not in 8..=1024".into()));
        assert_eq!(bounded::<u32>("99999999999", 8..=1024), Err("99999999999 is not in 8..=1024".into()));
        assert_eq!(bounded::<usize>("-1", 0..=5), Err("expected an integer in 0..=5".into()));
        assert_eq!(bounded::<usize>("two", 0..=5), Err("expected an integer in 0..=5".into()));
    }

    #[test]
    fn decimals_outside_the_range_name_the_range() {
        assert_eq!(decimal("0.25", 0.0..=0.9, "a fraction"), Ok(0.25));
        assert_eq!(decimal("0.95", 0.0..=0.9, "a fraction"), Err("expected a fraction in 0..=0.9, got `0.95`".into()));
        assert_eq!(decimal("x", 0.01..=1024.0, "MiB"), Err("expected MiB in 0.01..=1024, got `x`".into()));
        assert_eq!(decimal("NaN", 0.01..=1024.0, "MiB"), Err("expected MiB in 0.01..=1024, got `NaN`".into()));
    }
}
