"""facegate.calibration: decision thresholds — an embedder's accept thresholds at target false accept
rates, written into its card, and a detector set's cascade thresholds. Workstation side; it builds on
facegate.edge and the evaluation code in facegate.convert.evaluate, which never import it back."""
