//! How the dashboard writes numbers, money and times.

/// US dollars from nanodollars: cents for large amounts, more digits for
/// small ones so that a cheap model's spend is not shown as $0.00.
pub(crate) fn usd(nanos: i64) -> String {
    let dollars = crate::policy::limits::nanos_to_usd(nanos);
    if dollars == 0.0 {
        "$0.00".to_string()
    } else if dollars.abs() >= 100.0 {
        format!("${}", thousands(dollars.round() as i64))
    } else if dollars.abs() >= 1.0 {
        format!("${dollars:.2}")
    } else if dollars.abs() >= 0.01 {
        format!("${dollars:.4}")
    } else {
        format!("${dollars:.6}")
    }
}

/// An integer with thousands separators.
pub(crate) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A Unix-ms time as `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// A share as a percentage with one decimal.
pub(crate) fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "0.0%".to_string();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// A mean latency in milliseconds.
pub(crate) fn mean_ms(sum_ms: i64, count: i64) -> String {
    if count <= 0 {
        return "–".to_string();
    }
    format!("{:.0} ms", sum_ms as f64 / count as f64)
}

/// Whole days between two Unix-ms times.
pub(crate) fn days(from: i64, to: i64) -> i64 {
    to.saturating_sub(from) / 86_400_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_numbers_read_well() {
        assert_eq!(usd(0), "$0.00");
        assert_eq!(usd(1_500_000), "$0.001500");
        assert_eq!(usd(15_000_000), "$0.0150");
        assert_eq!(usd(12_345_000_000), "$12.35");
        assert_eq!(usd(1_234_567_000_000_000), "$1,234,567");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(-999), "-999");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(1, 0), "0.0%");
        assert_eq!(mean_ms(300, 2), "150 ms");
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
    }
}
