"""The fused FFT-convolution custom op ``hyena_deploy::FFTConv``: ONNX schema (:mod:`.schema`, light), ONNX Runtime
kernel (:mod:`.ort_fftconv`, loads onnxruntime-extensions) and, in PyTorch, the math of the TensorRT plugin under
``plugins/tensorrt_fftconv`` (:mod:`.fftconv_math`). Import from the submodules: importing the schema must not
load a runtime.
"""
