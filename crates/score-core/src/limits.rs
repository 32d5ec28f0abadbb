//! Size checks before allocation: a request that cannot fit in memory is an error
//! naming the option, never an allocation failure (abort) or an overflow (panic).
//!
//! The budget is the machine's available memory (`MemAvailable` in `/proc/meminfo`,
//! read when asked), or [`FALLBACK_BUDGET`] where that file does not exist. The
//! environment variable `SCORELAB_MEMORY_LIMIT` (bytes, or with a `K`/`M`/`G` suffix)
//! overrides it, e.g. to keep a shared machine's headroom.

use crate::error::{Result, ScoreError};

/// The most pixels an image file may declare: Pillow's decompression-bomb limit
/// (`2 × Image.MAX_IMAGE_PIXELS`), so that a header claiming 60000 × 60000 is refused
/// before its buffer is allocated, whatever memory the machine has.
pub const MAX_IMAGE_PIXELS: u64 = 2 * 89_478_485;

/// Refuse an image file whose header declares more than [`MAX_IMAGE_PIXELS`].
pub fn ensure_image_size(what: &str, width: u64, height: u64) -> Result<()> {
    match width.checked_mul(height) {
        Some(px) if px <= MAX_IMAGE_PIXELS => Ok(()),
        _ => Err(ScoreError::TooLarge {
            what: what.into(),
            detail: format!(
                "the header declares {width} x {height} pixels, over the limit of {MAX_IMAGE_PIXELS} (Pillow's decompression-bomb limit)"
            ),
        }),
    }
}

/// The budget used when the available memory cannot be read (8 GiB).
pub const FALLBACK_BUDGET: u64 = 8 << 30;

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// The memory a single request may use, in bytes.
pub fn memory_budget() -> u64 {
    if let Some(b) = std::env::var("SCORELAB_MEMORY_LIMIT")
        .ok()
        .and_then(|v| parse_size(&v))
    {
        return b;
    }
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(FALLBACK_BUDGET, |kb| kb.saturating_mul(1024))
}

/// The number of elements of `shape`, or an error naming `what` on overflow.
pub fn element_count(what: &str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| ScoreError::TooLarge {
            what: what.to_string(),
            detail: format!("shape {shape:?} has more elements than this machine can address"),
        })
}

fn human(bytes: u128) -> String {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    if gib >= 0.1 {
        format!("{gib:.1} GiB")
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// Refuse a request of `bytes` (computed in u128, so it cannot overflow) that exceeds
/// [`memory_budget`]; `what` names the option or array, `hint` says how to shrink it.
pub fn ensure_fits(what: &str, bytes: u128, hint: &str) -> Result<()> {
    let budget = memory_budget() as u128;
    if bytes > budget {
        return Err(ScoreError::TooLarge {
            what: what.to_string(),
            detail: format!(
                "needs about {} of memory, {} is available{}{hint}",
                human(bytes),
                human(budget),
                if hint.is_empty() { "" } else { "; " }
            ),
        });
    }
    Ok(())
}

/// [`ensure_fits`] for `count` values of `bytes_each` bytes.
pub fn ensure_values_fit(what: &str, count: u128, bytes_each: u128, hint: &str) -> Result<()> {
    ensure_fits(what, count.saturating_mul(bytes_each), hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_huge_requests_are_refused() {
        assert_eq!(parse_size("3G"), Some(3 << 30));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("77"), Some(77));
        assert_eq!(parse_size("x"), None);
        let e = element_count("noise", &[1 << 32, 1 << 32, 1 << 32]).unwrap_err();
        assert!(e.to_string().contains("noise"), "{e}");
        assert_eq!(element_count("x", &[3, 4]).unwrap(), 12);
        // 2^100 bytes exceeds any machine's memory.
        let e = ensure_fits("--n", 1u128 << 100, "use a smaller --n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("--n") && msg.contains("smaller --n"), "{msg}");
        assert!(ensure_fits("--n", 1024, "").is_ok());
    }
}
