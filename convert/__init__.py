"""facegate.convert: the workstation side (TensorFlow allowed): teachers, distillation, export,
evaluation. It may import facegate.edge to run artifacts the way a board will; never the reverse."""
