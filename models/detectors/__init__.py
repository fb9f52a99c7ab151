"""Neural detectors of the AttributeExtractor stage: batched pre- and post-processing of our own
around ONNX models run by an `InferenceRuntime`."""
