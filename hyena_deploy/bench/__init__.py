"""``hyena-deploy bench``: latency, throughput and peak memory of PyTorch eager vs exported graphs.

:mod:`spec` parses what to measure, :mod:`worker` measures one (backend, length) in a fresh process,
:mod:`runner` exports and drives the workers, :mod:`report` prints, saves and plots the results.
"""
