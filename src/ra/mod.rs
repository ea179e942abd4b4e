//! The registration authority: application orders for every flow, channels, review.

pub mod validate;
