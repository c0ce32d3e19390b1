"""Small student networks distilled from the teachers."""
