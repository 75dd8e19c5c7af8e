//! placeholder (host checks work)
