//! Fuzz targets: one function per parser that sees outside bytes (filled in by issue 8).
