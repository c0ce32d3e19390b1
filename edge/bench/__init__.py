"""Speed benchmarks the runtime can run on any board (`facegate bench ...`): a synthetic door frame, the
pipeline's stages, the detector cascade and its nets, embedders side by side, and the gallery. They time
through :mod:`facegate.edge.timing`; the numbers in docs/benchmarks.md come from here."""
