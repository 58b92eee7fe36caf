"""Small helpers with no knowledge of the platform: file locks, atomic file writes, Parquet files through Arrow's own I/O."""
