import json

import pytest
import torch
from safetensors.torch import save_file

from semanticgen_core.checkpoint import (
    CheckpointError,
    check_plan_compatible,
    load_checkpoint,
    read_header,
    save_checkpoint,
    split_prefix,
)
from semanticgen_core.config import DIT_CONFIGS, SemanticSpec


def test_self_describing_round_trip(tmp_path):
    tensors = {"a.weight": torch.randn(3, 4), "a.step": torch.tensor([7])}
    spec = SemanticSpec(kind="qwen2_5_vl", dim=2048, compressed_dim=8)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, tensors, "latent_generator", DIT_CONFIGS["tiny"].to_dict(), semantic=spec.to_dict())
    header = read_header(path)
    assert header["role"] == "latent_generator" and header["semanticgen_format"] == 1
    assert header["config"]["sem_channels"] == 8 and SemanticSpec.from_dict(header["semantic"]) == spec
    loaded, _ = load_checkpoint(path, role="latent_generator")
    assert torch.equal(loaded["a.weight"], tensors["a.weight"]) and torch.equal(loaded["a.step"], tensors["a.step"])
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file


@pytest.mark.parametrize(
    "dtype,torch_dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
def test_storage_dtypes(tmp_path, dtype, torch_dtype):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, {"w": torch.randn(4), "i": torch.arange(3)}, "compressor", {}, dtype=dtype)
    loaded, _ = load_checkpoint(path)
    assert loaded["w"].dtype == torch_dtype and loaded["i"].dtype == torch.int64  # integers are never cast
    assert load_checkpoint(path, dtype=torch.float32)[0]["w"].dtype == torch.float32


def test_wrong_role_and_foreign_files_are_named(tmp_path):
    path = tmp_path / "comp.safetensors"
    save_checkpoint(path, {"w": torch.zeros(1)}, "compressor", {})
    with pytest.raises(CheckpointError, match="holds a compressor, but a semantic_generator was expected"):
        load_checkpoint(path, role="semantic_generator")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(1)}, foreign)
    with pytest.raises(CheckpointError, match="foreign.safetensors.*not a SemanticGen checkpoint"):
        read_header(foreign)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not safetensors")
    with pytest.raises(CheckpointError, match="garbage.safetensors"):
        read_header(garbage)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_header(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="unknown checkpoint role"):
        save_checkpoint(tmp_path / "x.safetensors", {}, "optimizer", {})


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "future.safetensors"
    save_file({"w": torch.zeros(1)}, path, metadata={"semanticgen_format": "99", "role": "compressor", "config": "{}"})
    with pytest.raises(CheckpointError, match="newer than this code"):
        read_header(path)


def test_failed_save_keeps_the_old_file(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, {"w": torch.ones(2)}, "compressor", {})
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"\['w'\] are not tensors"):
        save_checkpoint(path, {"w": "not a tensor"}, "compressor", {})
    shared = torch.ones(3)
    with pytest.raises(Exception, match="share"):  # safetensors refuses tensors sharing memory, mid-save
        save_checkpoint(path, {"a": shared, "b": shared}, "compressor", {})
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1  # old file intact, no temp left


def test_bundle_parts_and_plan_compatibility(tmp_path):
    path = tmp_path / "bundle.safetensors"
    save_checkpoint(path, {"lat_generator.w": torch.ones(1), "compressor.w": torch.zeros(2)}, "bundle", {})
    tensors, header = load_checkpoint(path, role="latent_generator")  # a bundle may serve any part
    assert set(split_prefix(tensors, "compressor")) == {"w"} and header["role"] == "bundle"
    check_plan_compatible(8, "qwen2_5_vl", 8, "qwen2_5_vl")
    with pytest.raises(CheckpointError, match="dim 64.*dim 8"):
        check_plan_compatible(64, "qwen2_5_vl", 8, "qwen2_5_vl")
    with pytest.raises(CheckpointError, match="vjepa2.*qwen2_5_vl"):
        check_plan_compatible(8, "vjepa2", 8, "qwen2_5_vl")
    assert json.loads(json.dumps(SemanticSpec().to_dict())) == SemanticSpec().to_dict()
