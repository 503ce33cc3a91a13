"""Checkpoint I/O: the weights finder, safe configs, the family registry, the model patcher."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hyena_deploy import registry
from hyena_deploy.checkpoints import read_config_file, single_weights_file, weight_files
from hyena_deploy.errors import HyenaDeployError
from hyena_deploy.patching import patched


def _shard_index(directory: Path, names: list[str]) -> None:
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {f"w{i}": name for i, name in enumerate(names)}}))


def test_shards_named_by_the_index_are_found(tmp_path):
    for name in ("a.safetensors", "b.safetensors"):
        save_file({"x": torch.zeros(1)}, str(tmp_path / name))
    _shard_index(tmp_path, ["b.safetensors", "a.safetensors", "a.safetensors"])
    assert weight_files(tmp_path) == [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    with pytest.raises(HyenaDeployError, match="stored in one weights file, found 2 shards"):
        single_weights_file(tmp_path)


@pytest.mark.parametrize("name", ["../outside/model.safetensors", "/etc/passwd", "sub/../../x.safetensors"])
def test_a_shard_outside_the_checkpoint_is_refused_before_reading(tmp_path, name):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    _shard_index(checkpoint, [name])
    with pytest.raises(HyenaDeployError, match="lies outside the checkpoint directory; refused"):
        weight_files(checkpoint)


def test_a_link_leading_out_of_the_checkpoint_is_refused(tmp_path):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    save_file({"x": torch.zeros(1)}, str(tmp_path / "elsewhere.safetensors"))
    (checkpoint / "shard.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    _shard_index(checkpoint, ["shard.safetensors"])
    with pytest.raises(HyenaDeployError, match="outside the checkpoint directory"):
        weight_files(checkpoint)


def test_standard_then_single_file_then_error(tmp_path):
    (tmp_path / "one.ckpt").write_bytes(b"")
    assert single_weights_file(tmp_path, (".ckpt",)) == tmp_path / "one.ckpt"
    (tmp_path / "two.ckpt").write_bytes(b"")
    with pytest.raises(HyenaDeployError, match="expected one weights file .* found one.ckpt, two.ckpt"):
        weight_files(tmp_path, (".ckpt",))
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert weight_files(tmp_path) == [tmp_path / "model.safetensors"]


def test_yaml_tags_that_would_build_objects_are_one_line_errors(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("model: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(HyenaDeployError) as info:
        read_config_file(path)
    assert "not a plain YAML config" in str(info.value) and "\n" not in str(info.value)


def test_two_families_claiming_a_directory_are_named(tmp_path, monkeypatch):
    class Claims:
        def __init__(self, name):
            self.name = name

        def matches(self, directory):
            return True

        def load(self, directory):
            raise AssertionError("must not load")

    monkeypatch.setattr(registry, "families", lambda: {"a": Claims("alpha"), "b": Claims("beta")})
    with pytest.raises(HyenaDeployError, match="families alpha and beta both recognise this directory"):
        registry.load_directory(tmp_path)


def test_patched_sets_and_restores_attributes():
    target = types.SimpleNamespace(kept=1)
    with patched(target, kept=2, created=3):
        assert (target.kept, target.created) == (2, 3)
    assert target.kept == 1 and not hasattr(target, "created")
    with pytest.raises(RuntimeError), patched(target, kept=5):
        raise RuntimeError
    assert target.kept == 1
