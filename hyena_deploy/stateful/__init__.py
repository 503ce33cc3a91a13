"""Stateful (streaming) generation: per-layer state kinds and the export of a prefill/decode directory.

One module per state kind (``fir``, ``history``, ``modal``, ``modal_complex``, ``attention``); each
restates one layer's convolution or attention for a chunk of T >= 1 tokens given the state after the
tokens before it, and returns the state after the chunk. ``layout`` is the directory's state table,
``decoders`` builds the decode module of each family, ``export`` traces and verifies it.
"""
