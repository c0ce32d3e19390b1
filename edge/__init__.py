"""facegate.edge: the on-device face pipeline. Imports nothing from TensorFlow, ever.

The runtime loads model files (TFLite, ONNX) through small backend modules, runs the MTCNN
cascade in numpy/OpenCV, aligns faces and embeds them.
"""
