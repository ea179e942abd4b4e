//! Issue 8: fuzz tests (being written).
