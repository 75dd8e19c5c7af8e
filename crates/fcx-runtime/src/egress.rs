//! placeholder (egress work)
