//! Data: synthetic Gaussian mixtures and 2-D toys, the IDX reader, NumPy `.npy` I/O,
//! image data sets as burn `Dataset`s, and PNG image grids.

pub mod idx;
pub mod image;
pub mod images;
pub mod mixture;
pub mod npy;
