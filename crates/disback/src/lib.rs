//! disback
