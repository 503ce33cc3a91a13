"""Triton repositories: configs parsed with tritonclient's protobuf, cross-checked against the model, batchers
emulated, bad inputs refused with nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from hyena_deploy.cli import main
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.jobs.export import export_model
from hyena_deploy.runtime import OrtModel
from hyena_deploy.runtime.layout import read_layout
from hyena_deploy.serve import package_triton
from hyena_deploy.serve.config import ServeOptions, stateful_config
from hyena_deploy.serve.crosscheck import check_config
from hyena_deploy.serve.emulate import DecodeModel, Request, SequenceBatcher, check_dynamic_batching, check_sequence_batching, greedy_tokens
from hyena_deploy.serve.model_config import parse, to_text
from hyena_deploy.serve.signature import graph_signature, load_graph
from tests.test_serve_toy import VOCAB, greedy_reference, weights, write_stateful_dir

pytest.importorskip("tritonclient", reason="tritonclient is not installed: pip install 'hyena-deploy[serve]'")


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "tiny.onnx"
    export_model("hyena-tiny", path, verify=False)
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> tuple[Path, dict]:
    w = weights(1)
    return write_stateful_dir(tmp_path_factory.mktemp("toy") / "toy", w), w


def _config(entry: Path):
    return parse((entry / "config.pbtxt").read_text())


def _leftovers(repo: Path) -> list[str]:
    return sorted(p.name for p in repo.iterdir()) if repo.exists() else []


def test_full_sequence_repository_matches_the_graph(graph: Path, tmp_path: Path) -> None:
    result = package_triton(graph, tmp_path / "repo", max_batch=4, instances=2)
    config = _config(result.entry)
    assert result.entry == tmp_path / "repo" / "tiny"
    assert config.backend == "onnxruntime" and config.max_batch_size == 4
    assert [(t.name, list(t.dims)) for t in config.input] == [("input_ids", [-1])]
    assert [(t.name, list(t.dims)) for t in config.output] == [("logits", [-1, 16])]
    assert config.HasField("dynamic_batching") and not config.HasField("sequence_batching")
    assert (config.instance_group[0].count, config.instance_group[0].kind) == (2, 2)  # KIND_CPU
    assert (result.entry / "1" / "model.onnx").read_bytes() == graph.read_bytes()
    assert any("dynamic batching" in c for c in result.checks)
    assert _leftovers(tmp_path / "repo") == ["tiny"]


def test_external_data_graph_becomes_a_model_onnx_directory(graph: Path, tmp_path: Path) -> None:
    model = onnx.load(str(graph))
    external = tmp_path / "src" / "big.onnx"
    external.parent.mkdir()
    onnx.save(model, str(external), save_as_external_data=True, location="big.onnx.data", size_threshold=1024)
    result = package_triton(external, tmp_path / "repo", version=3)
    folder = result.entry / "3" / "model.onnx"
    assert sorted(p.name for p in folder.iterdir()) == ["big.onnx.data", "model.onnx"]
    ids = np.random.default_rng().integers(0, 16, (2, 9))
    np.testing.assert_array_equal(OrtModel(folder / "model.onnx").run([ids])[0], OrtModel(graph).run([ids])[0])


def test_fixed_batch_graph_is_served_without_batching(graph: Path, tmp_path: Path) -> None:
    model = onnx.load(str(graph))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    fixed = tmp_path / "fixed.onnx"
    onnx.save(model, str(fixed))
    config = _config(package_triton(fixed, tmp_path / "repo").entry)
    assert config.max_batch_size == 0 and [list(t.dims) for t in config.input] == [[1, -1]]
    with pytest.raises(HyenaDeployError, match="fixed batch"):
        package_triton(fixed, tmp_path / "repo", name="again", max_batch=4)


@pytest.mark.parametrize("strategy", ["oldest", "direct"])
def test_stateful_repository_carries_every_state(toy, tmp_path: Path, strategy: str) -> None:
    directory, w = toy
    result = package_triton(directory, tmp_path / "repo", strategy=strategy, max_batch=4)
    config = _config(result.entry)
    batching = config.sequence_batching
    assert batching.WhichOneof("strategy_choice") == strategy
    assert [(s.input_name, s.output_name, list(s.dims)) for s in batching.state] == [
        (e.input, e.output, list(e.per_sequence_shape())) for e in read_layout(directory).states]
    assert all(s.initial_state[0].HasField("zero_data") for s in batching.state)
    assert [t.name for t in config.input] == ["input_ids"] and [t.name for t in config.output] == ["logits"]
    assert any("reproduce" in c for c in result.checks)


@pytest.mark.parametrize("strategy, max_batch", [("oldest", 1), ("oldest", 2), ("oldest", 8), ("direct", 1),
                                                 ("direct", 2), ("direct", 4)])
def test_emulated_sequences_equal_full_recompute(toy, strategy: str, max_batch: int) -> None:
    directory, w = toy
    layout = read_layout(directory)
    config = parse(to_text(stateful_config(graph_signature(load_graph(layout.decode)), layout,
                                           ServeOptions("toy", max_batch=max_batch, strategy=strategy))))
    report = check_sequence_batching(config, DecodeModel(layout.decode), "input_ids", "logits", VOCAB,
                                     lambda prompt, n: greedy_reference(w, prompt, n), "full recompute",
                                     seed=int(np.random.default_rng().integers(1 << 30)))
    assert report.largest_batch == min(max_batch, 3)  # three live sequences share the one-token steps


@pytest.mark.parametrize("max_context", [2, 5, 40])
def test_emulation_fits_short_contexts(toy, max_context: int) -> None:
    directory, w = toy
    layout = read_layout(directory)
    config = parse(to_text(stateful_config(graph_signature(load_graph(layout.decode)), layout,
                                           ServeOptions("toy", max_batch=4))))
    seen: list[tuple[int, int]] = []

    def reference(prompt: np.ndarray, count: int) -> np.ndarray:
        seen.append((prompt.size, count))
        return greedy_reference(w, prompt, count)

    check_sequence_batching(config, DecodeModel(layout.decode), "input_ids", "logits", VOCAB, reference,
                            "full recompute", max_context=max_context)
    assert all(length + count <= max_context for length, count in seen) and len(seen) == 4


def test_start_resets_a_live_sequence_and_end_frees_it(toy) -> None:
    directory, w = toy
    layout = read_layout(directory)
    config = parse(to_text(stateful_config(graph_signature(load_graph(layout.decode)), layout,
                                           ServeOptions("toy", max_batch=2))))
    batcher = SequenceBatcher(config, DecodeModel(layout.decode))
    prompt = np.array([3, 1, 4, 1, 5])
    first = greedy_tokens(batcher, "input_ids", "logits", {7: prompt}, 4, end=False)[7]
    again = greedy_tokens(batcher, "input_ids", "logits", {7: prompt}, 4)[7]  # START while 7 still holds state
    np.testing.assert_array_equal(first, greedy_reference(w, prompt, 4))
    np.testing.assert_array_equal(again, first)
    assert 7 not in batcher.states
    with pytest.raises(HyenaDeployError, match="without START"):
        batcher.execute([Request(7, {"input_ids": prompt[None]})])


def test_start_control_input_is_wired_and_fed(tmp_path: Path) -> None:
    """A graph input named START (not part of C1, which needs none) becomes a control input, fed 1 at starts."""
    w = weights(2)
    layout = read_layout(write_stateful_dir(tmp_path / "ctl", w, start_control=True))
    signature = graph_signature(load_graph(layout.decode))
    config = parse(to_text(stateful_config(signature, layout, ServeOptions("ctl", max_batch=2))))
    check_config(config, signature, layout)
    control = config.sequence_batching.control_input
    assert [(c.name, list(c.control[0].int32_false_true)) for c in control] == [("START", [0, 1])]
    check_sequence_batching(config, DecodeModel(layout.decode), "input_ids", "logits", VOCAB,
                            lambda prompt, n: greedy_reference(w, prompt, n), "full recompute")


def test_cross_check_catches_each_kind_of_mismatch(toy) -> None:
    directory, _ = toy
    layout = read_layout(directory)
    signature = graph_signature(load_graph(layout.decode))
    good = to_text(stateful_config(signature, layout, ServeOptions("toy", max_batch=2)))
    check_config(parse(good), signature, layout)
    edits = {
        "differ from the graph": lambda c: c.output[0].dims.__setitem__(1, 12),
        "config says TYPE_INT32": lambda c: setattr(c.input[0], "data_type", 8),
        "is not in the config": lambda c: c.sequence_batching.state.pop(),
        "does not have": lambda c: setattr(c.input.add(), "name", "extra"),
        "zero_data initial_state": lambda c: c.sequence_batching.state[0].ClearField("initial_state"),
        "initial_state": lambda c: c.sequence_batching.state[1].initial_state[0].dims.__setitem__(0, 5),
    }
    for needle, edit in edits.items():
        config = parse(good)
        edit(config)
        with pytest.raises(HyenaDeployError, match=needle):
            check_config(config, signature, layout)


def test_a_graph_mixing_batch_rows_fails_dynamic_batching(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "T"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "T"])
    graph = helper.make_graph([helper.make_node("ReduceMean", ["x"], ["m"], axes=[0], keepdims=1),
                               helper.make_node("Add", ["x", "m"], ["y"])], "mix", [x], [y])
    path = tmp_path / "mix.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), str(path))
    rng = np.random.default_rng()
    with pytest.raises(HyenaDeployError, match="mixes batch rows"):
        check_dynamic_batching(OrtModel(path), [{"x": rng.standard_normal((1, 5)).astype(np.float32)}
                                                for _ in range(2)])
    with pytest.raises(HyenaDeployError, match="mixes batch rows"):
        package_triton(path, tmp_path / "repo")
    assert _leftovers(tmp_path / "repo") == []


def test_bad_inputs_get_one_line_errors_and_write_nothing(graph: Path, toy, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    directory, _ = toy
    cases = [
        (dict(source=graph, backend="tensorrt"), "packages a TensorRT engine"),
        (dict(source=graph, backend="onnx"), "unknown backend"),
        (dict(source=graph, batching="sequence"), "has no state"),
        (dict(source=directory, batching="dynamic"), "sequence_batching"),
        (dict(source=directory, max_batch=0), "--max-batch must be >= 1"),
        (dict(source=graph, name="a/b"), "model name"),
        (dict(source=tmp_path / "nothing.onnx"), "not an .onnx graph"),
    ]
    for kwargs, needle in cases:
        with pytest.raises(HyenaDeployError, match=needle) as info:
            package_triton(repo=repo, **kwargs)
        assert "\n" not in str(info.value)
    assert _leftovers(repo) == []
    stateless = tmp_path / "stateless"
    shutil.copytree(directory, stateless)
    text = (stateless / "hyena_deploy.json").read_text().replace('"states": [', '"states": [], "unused": [')
    (stateless / "hyena_deploy.json").write_text(text)
    with pytest.raises(HyenaDeployError, match="lists no state"):
        package_triton(stateless, repo)
    decode_alone = tmp_path / "decode.onnx"
    shutil.copyfile(directory / "decode.onnx", decode_alone)
    with pytest.raises(HyenaDeployError, match="stateful export directory"):
        package_triton(decode_alone, repo)
    assert _leftovers(repo) == []


def test_existing_entry_needs_force(graph: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    package_triton(graph, repo, max_batch=2)
    before = (repo / "tiny" / "config.pbtxt").read_text()
    with pytest.raises(HyenaDeployError, match="--force"):
        package_triton(graph, repo, max_batch=3)
    assert (repo / "tiny" / "config.pbtxt").read_text() == before
    package_triton(graph, repo, max_batch=3, force=True)
    assert _config(repo / "tiny").max_batch_size == 3
    assert _leftovers(repo) == ["tiny"]


def test_cli_package_and_its_errors(toy, tmp_path: Path) -> None:
    directory, _ = toy
    runner = CliRunner()
    ok = runner.invoke(main, ["package", str(directory), "--triton", str(tmp_path / "repo"), "--name", "toy_lm",
                              "--strategy", "direct", "--max-batch", "2"])
    assert ok.exit_code == 0, ok.output
    assert "wrote" in ok.output and (tmp_path / "repo" / "toy_lm" / "1" / "model.onnx").is_file()
    for args, needle in ((["--backend", "onnx"], "Invalid value"), ([], "--force")):
        bad = runner.invoke(main, ["package", str(directory), "--triton", str(tmp_path / "repo"), "--name",
                                   "toy_lm", *args])
        assert bad.exit_code != 0 and needle in bad.output
        assert len([line for line in bad.output.splitlines() if line.strip()]) == 1, bad.output


def test_exported_stateful_directory_reproduces_generate(tmp_path: Path) -> None:
    """A real `export --stateful` directory: the emulated Triton client's tokens equal Generator.generate's."""
    from hyena_deploy.runtime.generator import Generator
    from hyena_deploy.stateful.export import export_stateful

    directory = tmp_path / "tiny_stateful"
    export_stateful("hyena-tiny", directory, max_context=48, verify=False)
    result = package_triton(directory, tmp_path / "repo", max_batch=2)
    assert any("Generator.generate" in c for c in result.checks), result.checks
    layout = read_layout(directory)
    config = _config(result.entry)
    batcher = SequenceBatcher(config, DecodeModel(layout.decode))
    rng = np.random.default_rng()
    prompts = {11: rng.integers(0, layout.vocab_size, 6), 12: rng.integers(0, layout.vocab_size, 6)}
    got = greedy_tokens(batcher, layout.input_ids, layout.logits, prompts, 10)
    generator = Generator(directory)
    for corrid, prompt in prompts.items():
        np.testing.assert_array_equal(got[corrid], generator.generate(prompt[None], 10)[0])
        printed = CliRunner().invoke(main, ["generate", str(directory), "--prompt-ids", ",".join(map(str, prompt)),
                                            "--max-new-tokens", "10"])
        assert printed.exit_code == 0, printed.output
        assert ",".join(map(str, got[corrid])) in printed.output  # hyena-deploy generate prints the same tokens
    assert max(batcher.batch_sizes) == 2


def _stand_in_engine(engine: Path, source_onnx: Path, max_batch: int) -> None:
    """No TensorRT here: a stand-in engine file with a real sidecar whose profile covers every graph input."""
    from hyena_deploy.tensorrt.engine_meta import EngineMeta, sidecar_path, write_sidecar
    from hyena_deploy.tensorrt.shapes import InputShape

    profile = []
    for spec in graph_signature(load_graph(source_onnx)).inputs:
        low = tuple(1 if d is None else d for d in spec.dims)
        high = (max_batch, *(64 if d is None else d for d in spec.dims[1:]))
        profile.append(InputShape(spec.name, low, high, high))
    engine.write_bytes(b"stand-in for a serialized engine")
    meta = EngineMeta(tensorrt_version="10.8.0", gpu_name="test GPU", compute_capability=(9, 0),
                      profile=tuple(profile), precision="fp32", tf32=False, hardware_compat="none",
                      version_compatible=False, plugin_libraries=(), plugins_serialized=False, builder_opt_level=3,
                      workspace_mb=None, source_onnx=str(source_onnx), source_onnx_sha256="", engine_sha256="",
                      hyena_deploy_version="test")
    write_sidecar(sidecar_path(engine), meta)


def test_engine_with_sidecar_is_packaged_for_tensorrt(graph: Path, tmp_path: Path) -> None:
    engine = tmp_path / "tiny.engine"
    _stand_in_engine(engine, graph, 8)
    result = package_triton(engine, tmp_path / "repo", max_batch=8)
    config = _config(result.entry)
    assert (config.backend, config.default_model_filename, config.instance_group[0].kind) == ("tensorrt",
                                                                                            "model.plan", 1)
    assert (result.entry / "1" / "model.plan").read_bytes() == engine.read_bytes()
    with pytest.raises(HyenaDeployError, match="engine takes batch 1..8"):
        package_triton(engine, tmp_path / "repo", name="wide", max_batch=16)
    with pytest.raises(HyenaDeployError, match="--kind gpu"):
        package_triton(engine, tmp_path / "repo", name="cpu", kind="cpu")


def test_stateful_directory_with_its_decode_engine_for_tensorrt(toy, tmp_path: Path) -> None:
    directory = tmp_path / "toy"
    shutil.copytree(toy[0], directory)
    with pytest.raises(HyenaDeployError, match="hyena-deploy build"):
        package_triton(directory, tmp_path / "repo", backend="tensorrt")
    _stand_in_engine(directory / "decode.engine", directory / "decode.onnx", 4)
    result = package_triton(directory, tmp_path / "repo", backend="tensorrt", max_batch=4)
    config = _config(result.entry)
    assert config.backend == "tensorrt" and len(config.sequence_batching.state) == 3
    assert (result.entry / "1" / "model.plan").read_bytes() == (directory / "decode.engine").read_bytes()
    assert any("the graph the engine was built from" in c for c in result.checks)
