//! Summary statistics of repeated measurements.

use serde::Serialize;

/// Median, minimum and maximum of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub count: usize,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none. Non-finite samples are ignored.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: v[0],
            max: v[n - 1],
            count: n,
        })
    }
}

/// `a / b` of two medians, when both exist and the quotient is meaningful.
pub fn ratio(a: Option<&Summary>, b: Option<&Summary>) -> Option<f64> {
    let (a, b) = (a?.median, b?.median);
    let r = a / b;
    (b != 0.0 && r.is_finite()).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_has_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN]), None);
    }

    #[test]
    fn odd_count_median_is_middle() {
        let s = Summary::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.count), (3.0, 1.0, 5.0, 3));
    }

    #[test]
    fn even_count_median_is_mean_of_middle_two() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (3.5, 1.0, 10.0));
    }

    #[test]
    fn single_sample() {
        let s = Summary::of(&[7.5]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.count), (7.5, 7.5, 7.5, 1));
    }

    #[test]
    fn nan_samples_are_ignored() {
        let s = Summary::of(&[2.0, f64::NAN, 4.0]).unwrap();
        assert_eq!((s.median, s.count), (3.0, 2));
    }

    #[test]
    fn ratios() {
        let a = Summary::of(&[10.0]).unwrap();
        let b = Summary::of(&[4.0]).unwrap();
        let z = Summary::of(&[0.0]).unwrap();
        assert_eq!(ratio(Some(&a), Some(&b)), Some(2.5));
        assert_eq!(ratio(Some(&a), None), None);
        assert_eq!(ratio(None, Some(&b)), None);
        assert_eq!(ratio(Some(&a), Some(&z)), None);
    }
}
