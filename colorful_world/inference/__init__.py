"""Inference: a photo or a folder in colour (torch or ONNX Runtime), and the scores against the truth."""
