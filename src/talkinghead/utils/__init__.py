"""Small helpers shared across the package (file-system safety, logging)."""
