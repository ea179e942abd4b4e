//! Issue 8: faults tests (being written).
