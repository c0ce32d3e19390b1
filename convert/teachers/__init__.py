"""Pretrained teachers rebuilt for today's TensorFlow/Keras 3: FaceNet and the MTCNN nets."""
