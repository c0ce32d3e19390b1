"""facegate package."""
