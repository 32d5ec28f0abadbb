//! scoreaug
