//! Duration flags, parsed by clap (`value_parser = service_kit::durations::non_zero`).

use std::time::Duration;

/// A duration such as `90s`, `1h` or `250ms` that is not zero: for the timeouts, intervals
/// and TTLs where zero would make the service useless (every request timed out at once, a
/// connection idle-closed as it opens) or spin (a timer of period zero panics or busy-loops).
pub fn non_zero(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be greater than zero".to_owned()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_refused_however_it_is_spelled() {
        for zero in ["0s", "0ms", "0 seconds", "0h 0m"] {
            assert_eq!(
                non_zero(zero),
                Err("must be greater than zero".to_owned()),
                "{zero}"
            );
        }
    }

    #[test]
    fn other_durations_are_read_as_humantime_reads_them() {
        assert_eq!(non_zero("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(non_zero("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(non_zero("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn what_is_not_a_duration_is_refused_with_humantimes_reason() {
        for bad in ["", "soon", "10", "-1s"] {
            assert!(non_zero(bad).is_err(), "{bad}");
        }
    }
}
