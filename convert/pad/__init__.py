"""Presentation attack detection (liveness) at conversion time: the Apache-2.0 MiniFASNet nets of
Silent-Face-Anti-Spoofing rebuilt in Keras from their PyTorch state dicts (no torch needed), evaluated
with the ISO/IEC 30107-3 metrics on ../shared/datasets/pad_dev."""
