//! # score-io: data in and out
//!
//! The file formats scorelab reads and writes, each a small reader that checks sizes
//! before it allocates and names the file and field of every error:
//!
//! - [`idx`]: the IDX format of MNIST and Fashion-MNIST, plain or gzip-compressed.
//! - [`npy`]: NumPy `.npy` arrays (read `f4`/`f8`/`u1`/`i4`/`i8`, write `f4`/`f8`).
//! - [`image`]: PNG image grids, and reading a PNG back.
//! - [`images`]: Fashion-MNIST (any IDX image/label pair) as a burn `Dataset`.
//! - [`folder`]: a folder of PNG/JPEG images (labels from sub-folders or a metadata
//!   file) or an image array in `.npy`, as the same data set.
//!
//! Atomic writes and the cache folder are `score_core::fs`.

pub mod folder;
pub mod idx;
pub mod image;
pub mod images;
pub mod npy;

pub use images::byte_to_signed;

pub use idx::{IdxArray, read_idx};
pub use image::{image_grid_png, write_image_grid};
pub use images::{ImageDataset, ImageItem, Split};
pub use npy::{NpyArray, read_npy, read_npy_finite, write_npy_f32, write_npy_f64};
