//! Issue 8: backup tests (being written).
