"""Pure logic: features, identity stitching, segments, stable ids. No I/O here."""
