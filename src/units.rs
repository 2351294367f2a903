//! Quantities as people read them (durations, bytes, counts, rates, plurals): one way for
//! every sink, the dashboard, the text log and the command-line summaries alike.

use std::time::Duration;

/// A duration the way the dashboard prints it: `850 ms`, `1.25 s`, `2 m 05 s`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{} µs", d.as_micros())
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else if s < 60.0 {
        format!("{s:.2} s")
    } else {
        format!("{} m {:02} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// A byte count in binary units, as top and ps count: `812 KiB`, `12.3 MiB`, `1.1 GiB`.
pub fn fmt_bytes(b: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = b as f64;
    if b >= KIB * KIB * KIB {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    } else if b >= KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else {
        format!("{:.0} KiB", b / KIB)
    }
}

/// `n` and the noun, singular or plural: `1 worker`, `3 workers`.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A rate the way the dashboard prints it: `2.0/s`, `1.2k/s`, `3.4M/s`.
pub fn fmt_rate(per_s: f64) -> String {
    format!("{}/s", fmt_count(per_s))
}

/// A large number, short: `2.0`, `950`, `1.2k`, `3.4M`.
pub fn fmt_count(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.1}k", n / 1e3)
    } else if n >= 100.0 {
        format!("{n:.0}")
    } else {
        format!("{n:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_binary_and_say_so() {
        assert_eq!(fmt_bytes(6_200_000), "5.9 MiB");
        assert_eq!(fmt_bytes(512 * 1024), "512 KiB");
        assert_eq!(fmt_bytes(3 << 30), "3.0 GiB");
        assert_eq!(plural(1, "worker"), "1 worker");
        assert_eq!(plural(0, "worker"), "0 workers");
    }
}
