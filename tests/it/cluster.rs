//! Issue 8: cluster tests (being written).
