//! Stop strings matched on decoded text, across token boundaries.

/// Where the earliest stop string starts in `text`, if any occurs.
pub fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter_map(|s| text.find(s.as_str())).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_stop_wins() {
        let stops = vec!["\nQ:".to_string(), "###".to_string()];
        assert_eq!(find_stop("answer 4\nQ: next ### x", &stops), Some(8));
        assert_eq!(find_stop("answer ### then\nQ:", &stops), Some(7));
        assert_eq!(find_stop("nothing here", &stops), None);
        assert_eq!(find_stop("", &[]), None);
    }
}
