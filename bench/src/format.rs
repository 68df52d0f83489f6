//! Text formatting of figures and of the result table.

use crate::stats::Summary;

/// A number with about three significant digits (never in exponent notation).
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// `median [min-max]`, or just the median when there is one sample.
pub fn cell(s: &Summary) -> String {
    if s.count <= 1 {
        num(s.median)
    } else {
        format!("{} [{}-{}]", num(s.median), num(s.min), num(s.max))
    }
}

/// A ratio such as `0.25x`, `12.3x` or `450x`; `-` when there is none.
pub fn ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() => {
            if r >= 100.0 {
                format!("{r:.0}x")
            } else if r >= 10.0 {
                format!("{r:.1}x")
            } else {
                format!("{r:.2}x")
            }
        }
        _ => "-".into(),
    }
}

/// A plain-text table: the first column left-aligned, the others right-aligned,
/// columns separated by two spaces, a dashed rule under the header.
pub fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate().take(cols) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut s = String::new();
        for (i, w) in width.iter().enumerate() {
            let c = cells.get(i).map(String::as_str).unwrap_or("");
            if i > 0 {
                s.push_str("  ");
            }
            let pad = w.saturating_sub(c.chars().count());
            if i == 0 {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header);
    out.push('\n');
    let total: usize = width.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
    out.push_str(&"-".repeat(total));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_three_significant_digits() {
        assert_eq!(num(10534.4), "10534");
        assert_eq!(num(123.4), "123");
        assert_eq!(num(45.67), "45.7");
        assert_eq!(num(4.567), "4.57");
        assert_eq!(num(0.12345), "0.123");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(f64::NAN), "-");
    }

    #[test]
    fn cells_show_median_and_range() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(cell(&s), "2.00 [1.00-3.00]");
        let one = Summary::of(&[150.0]).unwrap();
        assert_eq!(cell(&one), "150");
    }

    #[test]
    fn ratios_are_formatted_by_magnitude() {
        assert_eq!(ratio(Some(0.2468)), "0.25x");
        assert_eq!(ratio(Some(1.0)), "1.00x");
        assert_eq!(ratio(Some(12.34)), "12.3x");
        assert_eq!(ratio(Some(449.6)), "450x");
        assert_eq!(ratio(None), "-");
        assert_eq!(ratio(Some(f64::INFINITY)), "-");
    }

    #[test]
    fn table_aligns_columns() {
        let header = vec!["name".to_string(), "value".to_string()];
        let rows = vec![
            vec!["getpid".to_string(), "105".to_string()],
            vec!["x".to_string(), "10534 [1-2]".to_string()],
        ];
        let t = table(&header, &rows);
        let expected = "\
name          value
-------------------
getpid          105
x       10534 [1-2]
";
        assert_eq!(t, expected);
    }

    #[test]
    fn table_tolerates_short_rows() {
        let header = vec!["a".to_string(), "b".to_string()];
        let rows = vec![vec!["long name".to_string()]];
        assert_eq!(
            table(&header, &rows),
            "a          b\n------------\nlong name\n"
        );
    }
}
