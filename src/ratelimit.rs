//! Per-client rate limits (filled in by issue 8).
