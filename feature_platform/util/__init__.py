"""Small helpers with no knowledge of the platform: file locks and atomic file writes."""
