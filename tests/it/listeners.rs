//! (issue 16) filled in by its owner.
