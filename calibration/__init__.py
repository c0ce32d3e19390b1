"""facegate.calibration: representative datasets for int8 and threshold calibration (workstation side)."""
