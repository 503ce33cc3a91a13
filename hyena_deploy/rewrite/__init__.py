"""Find FFT long convolutions in an ONNX graph, measure their filters and replace them."""
