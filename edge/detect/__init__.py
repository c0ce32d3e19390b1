"""Face detection: the MTCNN cascade over any backend, and the Face record it produces."""
from facegate.edge.detect.face import Face
from facegate.edge.detect.mtcnn import MTCNN, CascadeConfig

__all__ = ["Face", "MTCNN", "CascadeConfig"]
