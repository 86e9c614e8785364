//! Truncation of a (prompt, response) pair to the sequence budget, as LLaMA-Factory's
//! `infer_max_len` does for the paper (`cutoff_len` 1024).

/// The label tokens always kept when truncating (LLaMA-Factory `reserved_label_len`).
pub const RESERVED_LABEL_LEN: usize = 1;

/// Splits `cutoff` tokens between a source of `source_len` and a target of
/// `target_len` tokens in proportion to their lengths:
/// `max_target = max(floor(cutoff * target / (source + target)), 1)`,
/// `max_source = cutoff - max_target`. Returns `(max_source, max_target)`.
///
/// ```
/// use sdft_train::truncate::budget;
/// assert_eq!(budget(100, 50, 1024), (683, 341));
/// assert_eq!(budget(5000, 1, 1024), (1023, 1));
/// ```
pub fn budget(source_len: usize, target_len: usize, cutoff: usize) -> (usize, usize) {
    let total = source_len + target_len;
    let proportional = if total == 0 {
        0
    } else {
        ((cutoff as u128 * target_len as u128) / total as u128) as usize
    };
    let max_target = proportional.max(RESERVED_LABEL_LEN).min(cutoff);
    (cutoff - max_target, max_target)
}

/// Truncates source and target token lists to their [`budget`] (each keeps its
/// first tokens), so that together they fit `cutoff`.
pub fn truncate_pair<T: Clone>(source: &[T], target: &[T], cutoff: usize) -> (Vec<T>, Vec<T>) {
    let (max_source, max_target) = budget(source.len(), target.len(), cutoff);
    (
        source[..source.len().min(max_source)].to_vec(),
        target[..target.len().min(max_target)].to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_that_fit_are_untouched() {
        let (s, t) = truncate_pair(&[1, 2, 3], &[4, 5], 1024);
        assert_eq!((s, t), (vec![1, 2, 3], vec![4, 5]));
    }

    #[test]
    fn long_pairs_split_in_proportion() {
        let src: Vec<u32> = (0..3000).collect();
        let tgt: Vec<u32> = (0..1000).collect();
        let (s, t) = truncate_pair(&src, &tgt, 1024);
        assert_eq!((s.len(), t.len()), (768, 256));
        assert_eq!(s[0], 0);
        assert!(s.len() + t.len() <= 1024);
        assert_eq!(budget(0, 0, 16), (15, 1));
    }
}
