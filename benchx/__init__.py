"""benchx."""
