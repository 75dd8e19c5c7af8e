//! placeholder, filled by the builder work
