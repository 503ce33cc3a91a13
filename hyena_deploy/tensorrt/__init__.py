"""TensorRT engine building: shape profiles, the build plan, the engine sidecar, and the thin TensorRT layer.

Only :mod:`hyena_deploy.tensorrt.trt_api` imports ``tensorrt``; every decision lives in plain,
unit-tested functions in the other modules.
"""
