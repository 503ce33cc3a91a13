"""A small stateful decode graph in the StripedHyena style (contract C1), built with onnx.helper, and its
independent full-recompute reference in numpy.

Embedding -> short depthwise FIR (3 taps, state: the last 2 inputs, ``conv_state``) -> real modal long
convolution (``h[d, t] = sum_n R[d, n] p[d, n]**t`` plus a skip term; state: one value per mode,
``recurrent_state``) -> output projection plus a position-dependent term (state: tokens consumed,
``past_sequence_length``). Exact for any chunk length T given the states; all-zero states start afresh.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VOCAB, CHANNELS, MODES, TAPS = 11, 4, 2, 3
FIR = ("past_key_values.0.conv_state", "present.0.conv_state")
MODAL = ("past_key_values.0.recurrent_state", "present.0.recurrent_state")
POSITION = ("past_sequence_length", "present_sequence_length")


def weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"embed": rng.standard_normal((VOCAB, CHANNELS)).astype(np.float32),
            "fir": rng.standard_normal((CHANNELS, 1, TAPS)).astype(np.float32),
            "poles": rng.uniform(0.3, 0.9, (CHANNELS, MODES)).astype(np.float32),
            "residues": rng.standard_normal((CHANNELS, MODES)).astype(np.float32),
            "skip": rng.standard_normal((CHANNELS, 1)).astype(np.float32),
            "head": rng.standard_normal((CHANNELS, VOCAB)).astype(np.float32),
            "position": rng.standard_normal(VOCAB).astype(np.float32)}


def decode_graph(w: dict[str, np.ndarray], start_control: bool = False) -> onnx.ModelProto:
    """The decode graph; with ``start_control`` it also takes an (unused) int32 ``START`` input."""
    f32 = TensorProto.FLOAT
    consts = {"E": w["embed"], "Wf": w["fir"], "P4": w["poles"][:, :, None, None], "P3": w["poles"][:, :, None],
              "P2": w["poles"], "R": w["residues"], "Dk": w["skip"], "Wo": w["head"], "pv": w["position"],
              "zero": np.array(0, np.int64), "one": np.array(1, np.int64), "zf": np.array(0.0, np.float32),
              "onef": np.array(1.0, np.float32), "freq": np.array(0.37, np.float32),
              "tail": np.array([-(TAPS - 1)], np.int64), "big": np.array([2**62], np.int64),
              "ax2": np.array([2], np.int64), "ax0": np.array([0], np.int64), "ax1": np.array([1], np.int64),
              "axm1": np.array([-1], np.int64)}
    inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    n = helper.make_node
    nodes = [
        n("Gather", ["E", "input_ids"], ["emb"]),
        n("Transpose", ["emb"], ["x"], perm=[0, 2, 1]),
        n("Concat", [FIR[0], "x"], ["cat"], axis=2),
        n("Conv", ["cat", "Wf"], ["u"], group=CHANNELS),
        n("Slice", ["cat", "tail", "big", "ax2"], [FIR[1]]),
        n("Shape", ["input_ids"], ["T1"], start=1, end=2),
        n("Squeeze", ["T1"], ["T"]),
        n("Range", ["zero", "T", "one"], ["t"]),
        n("Cast", ["t"], ["tf"], to=f32),
        n("Unsqueeze", ["tf", "ax1"], ["tcol"]),
        n("Unsqueeze", ["tf", "ax0"], ["trow"]),
        n("Sub", ["tcol", "trow"], ["diff"]),
        n("GreaterOrEqual", ["diff", "zf"], ["causal"]),
        n("Relu", ["diff"], ["lag"]),
        n("Pow", ["P4", "lag"], ["pw_all"]),
        n("Where", ["causal", "pw_all", "zf"], ["powers"]),
        n("Einsum", ["powers", "R", "u"], ["yconv"], equation="dntk,dn,bdk->bdt"),
        n("Add", ["tf", "onef"], ["tp1"]),
        n("Pow", ["P3", "tp1"], ["pw_state"]),
        n("Einsum", ["pw_state", "R", MODAL[0]], ["ystate"], equation="dnt,dn,bdn->bdt"),
        n("Mul", ["Dk", "u"], ["yskip"]),
        n("Add", ["yconv", "ystate"], ["y0"]),
        n("Add", ["y0", "yskip"], ["y"]),
        n("Cast", ["T"], ["Tf"], to=f32),
        n("Pow", ["P2", "Tf"], ["pT"]),
        n("Mul", ["pT", MODAL[0]], ["carried"]),
        n("Sub", ["T", "one"], ["last_index"]),
        n("Gather", ["powers", "last_index"], ["last_row"], axis=2),
        n("Einsum", ["last_row", "u"], ["fresh"], equation="dnk,bdk->bdn"),
        n("Add", ["carried", "fresh"], [MODAL[1]]),
        n("Transpose", ["y"], ["yt"], perm=[0, 2, 1]),
        n("MatMul", ["yt", "Wo"], ["head_out"]),
        n("Add", [POSITION[0], "t"], ["positions"]),
        n("Cast", ["positions"], ["pf"], to=f32),
        n("Mul", ["pf", "freq"], ["angle"]),
        n("Sin", ["angle"], ["wave"]),
        n("Unsqueeze", ["wave", "axm1"], ["wave3"]),
        n("Mul", ["wave3", "pv"], ["pos_term"]),
        n("Add", ["head_out", "pos_term"], ["logits"]),
        n("Add", [POSITION[0], "T1"], [POSITION[1]]),
    ]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "T"]),
              helper.make_tensor_value_info(FIR[0], f32, ["batch", CHANNELS * 1, TAPS - 1]),
              helper.make_tensor_value_info(MODAL[0], f32, ["batch", CHANNELS, MODES]),
              helper.make_tensor_value_info(POSITION[0], TensorProto.INT64, ["batch", 1])]
    if start_control:
        inputs.append(helper.make_tensor_value_info("START", TensorProto.INT32, ["batch", 1]))
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", "T", VOCAB]),
               helper.make_tensor_value_info(FIR[1], f32, ["batch", CHANNELS, TAPS - 1]),
               helper.make_tensor_value_info(MODAL[1], f32, ["batch", CHANNELS, MODES]),
               helper.make_tensor_value_info(POSITION[1], TensorProto.INT64, ["batch", 1])]
    graph = helper.make_graph(nodes, "stateful_toy", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    return model


def layout(max_context: int = 256) -> dict:
    state = lambda names, shape, dtype, layer, kind: {"input": names[0], "output": names[1], "shape": ["batch", *shape],
                                                      "dtype": dtype, "layer": layer, "kind": kind}
    return {"format": "hyena-deploy-stateful", "version": 1, "family": "toy", "source": "tests/test_serve_toy.py",
            "graphs": {"decode": "decode.onnx", "prefill": None}, "input_ids": "input_ids", "logits": "logits",
            "vocab_size": VOCAB, "max_context": max_context,
            "special_tokens": {"bos": None, "eos": None, "pad": None}, "tokenizer": None,
            "states": [state(FIR, [CHANNELS, TAPS - 1], "float32", 0, "fir"),
                       state(MODAL, [CHANNELS, MODES], "float32", 0, "modal"),
                       state(POSITION, [1], "int64", None, "position")]}


def write_stateful_dir(directory: Path, w: dict[str, np.ndarray], start_control: bool = False) -> Path:
    directory.mkdir(parents=True)
    onnx.save(decode_graph(w, start_control), str(directory / "decode.onnx"))
    (directory / "hyena_deploy.json").write_text(json.dumps(layout(), indent=2))
    return directory


def full_logits(w: dict[str, np.ndarray], ids: np.ndarray) -> np.ndarray:
    """(L, V) logits of one sequence, recomputed from scratch in float64 (no state)."""
    x = w["embed"].astype(np.float64)[ids].T  # (D, L)
    length = x.shape[1]
    padded = np.concatenate([np.zeros((CHANNELS, TAPS - 1)), x], axis=1)
    u = sum(w["fir"][:, 0, k, None] * padded[:, k:k + length] for k in range(TAPS))
    t = np.arange(length)
    h = np.einsum("dn,dnt->dt", w["residues"], w["poles"].astype(np.float64)[:, :, None] ** t)
    y = np.stack([np.convolve(h[d], u[d])[:length] for d in range(CHANNELS)]) + w["skip"] * u
    return y.T @ w["head"] + np.sin(0.37 * t)[:, None] * w["position"]


def greedy_reference(w: dict[str, np.ndarray], prompt: np.ndarray, new_tokens: int) -> np.ndarray:
    """Greedy tokens by full recompute after every token."""
    ids = list(np.asarray(prompt).reshape(-1))
    for _ in range(new_tokens):
        ids.append(int(np.argmax(full_logits(w, np.array(ids))[-1])))
    return np.array(ids[len(prompt.reshape(-1)):], np.int64)


def test_toy_decode_graph_chunked_equals_full_recompute() -> None:
    """The fixture itself: chunks of any length with the states fed back give the full-recompute logits."""
    import onnxruntime as ort

    w = weights(3)
    session = ort.InferenceSession(decode_graph(w).SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng()
    ids = rng.integers(0, VOCAB, (2, 23))
    states = {FIR[0]: np.zeros((2, CHANNELS, TAPS - 1), np.float32), MODAL[0]: np.zeros((2, CHANNELS, MODES),
              np.float32), POSITION[0]: np.zeros((2, 1), np.int64)}
    pieces = []
    for start, stop in ((0, 7), (7, 8), (8, 19), (19, 23)):
        logits, fir, modal, position = session.run(None, {"input_ids": ids[:, start:stop], **states})
        states = {FIR[0]: fir, MODAL[0]: modal, POSITION[0]: position}
        pieces.append(logits)
    got = np.concatenate(pieces, axis=1)
    for row in range(2):
        np.testing.assert_allclose(got[row], full_logits(w, ids[row]), rtol=1e-4, atol=1e-4)
    assert states[POSITION[0]].tolist() == [[23], [23]]
