"""What the tests share: paths, realistic events and builders, subprocess and server helpers (no fixtures)."""
