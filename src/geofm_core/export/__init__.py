"""Export of trained models (ONNX), verified against PyTorch on export."""
