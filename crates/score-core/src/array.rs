//! `ndarray` at the API of the exact-math crates (`gaussian-score`, `ntk-theory`):
//! views in, owned arrays out, and faer behind them. A view in standard (row-major)
//! layout is read in place; another layout is copied once into row-major order.

use std::borrow::Cow;

use ndarray::{Array2, ArrayView1, ArrayView2};

use crate::error::{Result, ScoreError};

/// The elements of `a` in row-major order: borrowed when `a` is in standard layout,
/// copied otherwise.
pub fn row_major<'a>(a: ArrayView2<'a, f64>) -> Cow<'a, [f64]> {
    match a.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().copied().collect()),
    }
}

/// The elements of `a` in order: borrowed when contiguous, copied otherwise.
pub fn contiguous<'a>(a: ArrayView1<'a, f64>) -> Cow<'a, [f64]> {
    match a.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().copied().collect()),
    }
}

/// `rows × cols` row-major values as an array (no copy), or a shape error naming
/// `what` when their number differs.
pub fn from_rows(values: Vec<f64>, rows: usize, cols: usize, what: &str) -> Result<Array2<f64>> {
    let got = values.len();
    Array2::from_shape_vec((rows, cols), values).map_err(|_| ScoreError::Shape {
        what: what.into(),
        expected: format!("{rows} × {cols} values"),
        got: format!("{got}"),
    })
}

/// Row-major values of `cols` columns as an array (no copy). `values.len()` must be a
/// multiple of `cols` (every caller produces whole rows); a remainder is dropped.
pub fn rows_of(mut values: Vec<f64>, cols: usize) -> Array2<f64> {
    let rows = values.len().checked_div(cols).unwrap_or(0);
    values.truncate(rows * cols);
    // rows × cols = values.len() now, so the shape always fits.
    Array2::from_shape_vec((rows, cols), values).unwrap_or_else(|_| Array2::zeros((0, cols)))
}

/// A host denoiser of rows `f` applied to the flat row-major values `x` of rows of
/// width `d` (as `score_core::tensor::host_denoise` hands them over: read as a view, no
/// copy), its result returned as row-major values.
pub fn on_rows(x: &[f64], d: usize, f: impl Fn(ArrayView2<f64>) -> Array2<f64>) -> Vec<f64> {
    let b = x.len().checked_div(d).unwrap_or(0);
    match ArrayView2::from_shape((b, d), &x[..b * d]) {
        Ok(v) => row_major(f(v).view()).into_owned(),
        Err(_) => Vec::new(),
    }
}

/// `a` as a faer matrix view when in standard layout (no copy); `None` otherwise.
pub fn faer_view<'a>(a: ArrayView2<'a, f64>) -> Option<faer::MatRef<'a, f64>> {
    let (r, c) = a.dim();
    a.to_slice()
        .map(|s| faer::MatRef::from_row_major_slice(s, r, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn standard_views_are_borrowed_and_others_copied_in_row_major_order() {
        let a = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
        assert!(matches!(row_major(a.view()), Cow::Borrowed(_)));
        let t = a.t();
        let c = row_major(t);
        assert!(matches!(c, Cow::Owned(_)));
        assert_eq!(&*c, &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        let col = a.column(1);
        assert_eq!(&*contiguous(col), &[2.0, 5.0]);
        let m = faer_view(a.view()).unwrap();
        assert_eq!((m.nrows(), m.ncols(), m[(1, 2)]), (2, 3, 6.0));
        assert!(faer_view(a.t()).is_none());
    }

    #[test]
    fn values_become_arrays_of_whole_rows() {
        assert_eq!(
            rows_of(vec![1.0, 2.0, 3.0, 4.0], 2),
            array![[1.0, 2.0], [3.0, 4.0]]
        );
        assert_eq!(rows_of(Vec::new(), 3).dim(), (0, 3));
        assert!(from_rows(vec![1.0; 5], 2, 3, "x").is_err());
    }
}
