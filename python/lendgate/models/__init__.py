"""Risk models: features, training to ONNX, calibration, registry and serving."""
