//! musicscore-data
