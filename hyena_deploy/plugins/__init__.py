"""The fused FFT-convolution custom op ``hyena_deploy::FFTConv``: ONNX schema, ONNX Runtime kernel,
and (in PyTorch) the math of the TensorRT plugin under ``plugins/tensorrt_fftconv``."""

from hyena_deploy.plugins.ort_fftconv import session_options_for
from hyena_deploy.plugins.schema import DOMAIN, OP_TYPE, VERSION, register_schema

__all__ = ["DOMAIN", "OP_TYPE", "VERSION", "register_schema", "session_options_for"]
