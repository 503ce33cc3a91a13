"""Node-name prefixes of what hyena-deploy adds to a graph: later passes recognise their own nodes by them."""

FFTCONV_PREFIX = "hyena_fftconv"         # every node of an FFT-convolution replacement (rewrite.replace)
PADDING_PREFIX = "hyena_dynamic_length"  # the right-padding wrapper of dynamic-length graphs (lengths)
CAST_PREFIX = "hyena_precision"          # Casts inserted by the precision pass (precision)
PLUGIN_DOMAIN = "hyena_deploy"         # ONNX domain of the fused FFTConv custom op (plugins.schema)
