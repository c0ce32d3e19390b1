"""Distilling the teachers into the small students (`facegate distill ...`)."""
