"""Source adapters (importing this package registers the built-in ones)."""
