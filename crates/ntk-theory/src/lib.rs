//! ntk-theory
