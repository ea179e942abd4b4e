//! Issue 8: limits tests (being written).
