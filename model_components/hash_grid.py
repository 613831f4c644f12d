"""Instant-NGP multiresolution hash grid encoding (filled in by the hash-grid work; see issue 5)."""
