"""The ``hyena_deploy::FFTConv`` operator: names, contract, and its ONNX ``OpSchema``.

``y = postgate * (causal_conv(x, h) + skip[c] * x)`` with ``x = pregate * signal``, per channel c:

* ``signal`` (B, C, L), type T; ``L <= fft_size / 2``.
* ``spectrum`` (C, N/2+1, 2) float32: real and imaginary parts of ``rfft(h, N) / N`` for the
  filter h (C, L_max), ``L_max <= N/2``, ``N = fft_size``. The 1/N of the inverse transform is
  folded in, so an implementation runs an unnormalized R2C, the product, an unnormalized C2R.
* ``skip`` (C,) float32, ``pregate`` and ``postgate`` (B, C, L) type T: optional, absent = identity.
* Attributes: ``fft_size`` (int, N), and ``plugin_namespace`` / ``plugin_version`` (strings), which
  TensorRT's ONNX parser uses with the op type to find the plugin creator.
"""

from __future__ import annotations

import onnx
from onnx.defs import OpSchema

from hyena_deploy.names import PLUGIN_DOMAIN

DOMAIN = PLUGIN_DOMAIN
OP_TYPE = "FFTConv"
VERSION = 1
PLUGIN_NAMESPACE = "hyena_deploy"
PLUGIN_VERSION = "1"
INPUTS = ("signal", "spectrum", "skip", "pregate", "postgate")


def _infer(ctx: onnx.shape_inference.InferenceContext) -> None:
    """Output type and shape = the signal's."""
    out = onnx.TypeProto()
    out.CopyFrom(ctx.get_input_type(0))
    ctx.set_output_type(0, out)


def _schema() -> OpSchema:
    optional = OpSchema.FormalParameterOption.Optional
    param = OpSchema.FormalParameter
    schema = OpSchema(
        OP_TYPE, DOMAIN, VERSION, __doc__,
        inputs=[param("signal", "T", "(B, C, L)"),
                param("spectrum", "tensor(float)", "(C, N/2+1, 2): rfft(h, N) / N as [re, im]"),
                param("skip", "tensor(float)", "(C,)", param_option=optional),
                param("pregate", "T", "(B, C, L), multiplies the signal", param_option=optional),
                param("postgate", "T", "(B, C, L), multiplies the result", param_option=optional)],
        outputs=[param("output", "T", "(B, C, L)")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "signal and gate type")],
        attributes=[OpSchema.Attribute("fft_size", OpSchema.AttrType.INT, "FFT size N"),
                    OpSchema.Attribute("plugin_namespace", OpSchema.AttrType.STRING,
                                       "TensorRT plugin namespace", required=False),
                    OpSchema.Attribute("plugin_version", OpSchema.AttrType.STRING,
                                       "TensorRT plugin version", required=False)],
    )
    schema.set_type_and_shape_inference_function(_infer)
    return schema


def register_schema() -> None:
    """Register the schema with onnx (checker, shape inference); a no-op when already registered."""
    if not onnx.defs.has(OP_TYPE, VERSION, DOMAIN):
        onnx.defs.register_schema(_schema())
