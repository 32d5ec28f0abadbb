//! gaussian-score
