"""hyena-deploy: Hyena-family models to ONNX Runtime and TensorRT, with FFT convolutions rewritten."""

from importlib.metadata import PackageNotFoundError, version


def tool_version() -> str:
    """The installed hyena-deploy version ("unknown" when running from an uninstalled tree)."""
    try:
        return version("hyena-deploy")
    except PackageNotFoundError:
        return "unknown"
