"""Exporters: one function per format, each writing one file from a Keras model."""
