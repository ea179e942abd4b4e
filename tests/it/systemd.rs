//! Issue 8: systemd tests (being written).
