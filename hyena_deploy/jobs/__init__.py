"""The jobs, composed from the stages: :mod:`.export` (trace → passes → verify → write), :mod:`.rewrite` (passes on
an ONNX file, verified against it) and :mod:`.buckets` (one export per length bucket, then the manifest)."""
