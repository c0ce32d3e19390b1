"""Evaluation harness: LFW / any pairs file (verification), WIDER FACE (detection), 5-celebrity
(closed-set classification). Every evaluation writes JSON, markdown and plots into --out."""
