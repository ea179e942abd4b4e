//! Coordination between daemons sharing one database (filled in by issue 8).
