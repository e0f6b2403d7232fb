"""Adapter versions on disk: publishing (only safetensors and the config, checksummed in meta.json,
read-only, never replaced, atomic), the checks run before anything is loaded, version names, removal.

The weights are small real safetensors files written with `safetensors.numpy`; no torch here, as in
the registry itself.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from assistant.adapters import registry
from assistant.adapters.registry import CONFIG, META, WEIGHTS
from assistant.errors import ModelError, NotFoundError
from assistant.settings import DataDir

META_IN = {"base_model": {"name": "tiny"}, "dataset_snapshot": "abc123", "metrics": {"eval_loss": 1.25}}


def make_peft_dir(path: Path, seed: int = 0, *, readme: bool = True) -> Path:
    """What peft's save_pretrained leaves: safetensors weights, the adapter config and a README."""
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    save_file(
        {
            "base_model.model.layers.0.self_attn.q_proj.lora_A.weight": rng.standard_normal((4, 16), dtype=np.float32),
            "base_model.model.layers.0.self_attn.q_proj.lora_B.weight": rng.standard_normal((16, 4), dtype=np.float32),
        },
        str(path / WEIGHTS),
    )
    config = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "seed": seed}
    (path / CONFIG).write_text(json.dumps(config), encoding="utf-8")
    if readme:
        (path / "README.md").write_text("# model card\n", encoding="utf-8")
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _writable(path: Path) -> Path:
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_peft_dir(tmp_path / "peft-out")


@pytest.fixture
def published(source: Path, data_dir: Path) -> Path:
    return registry.publish(source, data_dir, "v0001", META_IN)


# -- publish ---------------------------------------------------------------------------------


def test_publish_copies_only_weights_and_config_with_their_checksums(source: Path, data_dir: Path) -> None:
    target = registry.publish(source, data_dir, "v0001", META_IN)

    assert target == data_dir / "adapters" / "v0001"
    assert sorted(p.name for p in target.iterdir()) == sorted([WEIGHTS, CONFIG, META])  # no README
    assert (target / WEIGHTS).read_bytes() == (source / WEIGHTS).read_bytes()
    assert (target / CONFIG).read_bytes() == (source / CONFIG).read_bytes()
    meta = json.loads((target / META).read_text(encoding="utf-8"))
    assert meta == {**META_IN, "version": "v0001", "files": {WEIGHTS: _sha256(source / WEIGHTS), CONFIG: _sha256(source / CONFIG)}}
    assert registry.check_files(target) == meta
    assert registry.read_meta(target) == meta
    weights = load_file(str(target / WEIGHTS))
    assert {k: v.shape for k, v in weights.items()} == {
        "base_model.model.layers.0.self_attn.q_proj.lora_A.weight": (4, 16),
        "base_model.model.layers.0.self_attn.q_proj.lora_B.weight": (16, 4),
    }
    assert sorted(p.name for p in source.iterdir()) == sorted([WEIGHTS, CONFIG, "README.md"])  # source untouched
    assert [p.name for p in registry.published(data_dir)] == ["v0001"]


def test_published_files_are_read_only(published: Path) -> None:
    for file in published.iterdir():
        mode = stat.S_IMODE(file.stat().st_mode)
        assert mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) == 0, file.name
        assert mode & stat.S_IRUSR


def test_publishing_a_version_twice_is_refused_and_keeps_the_first(
    published: Path, data_dir: Path, tmp_path: Path
) -> None:
    before = {p.name: p.read_bytes() for p in published.iterdir()}
    other = make_peft_dir(tmp_path / "other", seed=1)

    with pytest.raises(ModelError, match="v0001 already exists"):
        registry.publish(other, data_dir, "v0001", {"note": "second"})

    assert {p.name: p.read_bytes() for p in published.iterdir()} == before
    assert [p.name for p in DataDir(data_dir).adapters.iterdir()] == ["v0001"]  # no staging left behind
    registry.check_files(published)


def _failing_rename(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    raise OSError("disk on fire")


def _failing_second_copy():  # noqa: ANN202
    copied = []

    def copy(src, dst):  # noqa: ANN001, ANN202
        if copied:
            raise OSError("disk full")
        copied.append(src)
        return shutil.copyfile(src, dst)

    return copy


@pytest.mark.parametrize("where", ["copy", "rename"])
def test_a_failed_publish_leaves_no_staging_dir(
    source: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    if where == "rename":
        monkeypatch.setattr(registry.os, "rename", _failing_rename)
    else:
        monkeypatch.setattr(registry.shutil, "copyfile", _failing_second_copy())

    with pytest.raises(OSError, match="disk"):
        registry.publish(source, data_dir, "v0001", META_IN)

    monkeypatch.undo()
    assert list(DataDir(data_dir).adapters.iterdir()) == []
    assert registry.next_version(data_dir) == "v0001"
    assert registry.publish(source, data_dir, "v0001", META_IN).is_dir()  # the name is still free


def test_publish_refuses_a_source_with_a_pickle_file(source: Path, data_dir: Path) -> None:
    (source / "adapter_model.bin").write_bytes(b"\x80\x04pickle")

    with pytest.raises(ModelError, match="pickle"):
        registry.publish(source, data_dir, "v0001", META_IN)

    assert not (DataDir(data_dir).adapters / "v0001").exists()


# -- check_files -----------------------------------------------------------------------------


def _remove_weights(directory: Path) -> None:
    (directory / WEIGHTS).unlink()


def _add_bin(directory: Path) -> None:
    (directory / "adapter_model.bin").write_bytes(b"\x80\x04pickle")


def _add_pt(directory: Path) -> None:
    (directory / "optimizer.PT").write_bytes(b"\x80\x04pickle")


def _flip_a_weights_byte(directory: Path) -> None:
    path = _writable(directory / WEIGHTS)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # a bit of the last float: the file still parses, the checksum does not match
    path.write_bytes(bytes(data))
    load_file(str(path))


def _change_the_config(directory: Path) -> None:
    path = _writable(directory / CONFIG)
    path.write_text(path.read_text(encoding="utf-8").replace('"r": 4', '"r": 64'), encoding="utf-8")


def _add_unlisted_file(directory: Path) -> None:
    (directory / "extra.safetensors").write_bytes((directory / WEIGHTS).read_bytes())


def _break_meta_json(directory: Path) -> None:
    _writable(directory / META).write_text("{not json", encoding="utf-8")


def _meta_not_an_object(directory: Path) -> None:
    _writable(directory / META).write_text("[1, 2]", encoding="utf-8")


def _meta_without_checksums(directory: Path) -> None:
    path = _writable(directory / META)
    meta = json.loads(path.read_text(encoding="utf-8"))
    del meta["files"][WEIGHTS]
    path.write_text(json.dumps(meta), encoding="utf-8")


def _remove_meta(directory: Path) -> None:
    (directory / META).unlink()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_remove_weights, f"has no {WEIGHTS}"),
        (_add_bin, "contains a pickle file (adapter_model.bin); only safetensors are loaded"),
        (_add_pt, "contains a pickle file (optimizer.PT)"),
        (_flip_a_weights_byte, f"{WEIGHTS} does not match its checksum; refusing to load it"),
        (_change_the_config, f"{CONFIG} does not match its checksum"),
        (_add_unlisted_file, "has a file its meta.json does not list (extra.safetensors)"),
        (_break_meta_json, "meta.json is unreadable"),
        (_meta_not_an_object, "meta.json is not a JSON object"),
        (_meta_without_checksums, "meta.json lists no checksums for its weights"),
        (_remove_meta, "has no meta.json"),
    ],
    ids=lambda value: getattr(value, "__name__", "")[1:] or None,
)
def test_check_files_refuses_a_damaged_version(published: Path, damage, message: str) -> None:  # noqa: ANN001
    damage(published)

    with pytest.raises(ModelError) as excinfo:
        registry.check_files(published)

    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_check_files_refuses_a_missing_directory(data_dir: Path) -> None:
    with pytest.raises(ModelError, match="adapter directory not found"):
        registry.check_files(data_dir / "adapters" / "v0009")
    with pytest.raises(ModelError, match="adapter directory not found"):
        registry.check_files(data_dir / "adapters" / "v0009", verify=False)


def test_check_files_refuses_a_file_in_place_of_the_directory(tmp_path: Path) -> None:
    (tmp_path / "v0001").write_text("not a directory", encoding="utf-8")
    with pytest.raises(ModelError, match="adapter directory not found"):
        registry.check_files(tmp_path / "v0001")


def test_a_plain_peft_dir_is_accepted_only_without_verification(source: Path) -> None:
    assert registry.check_files(source, verify=False) is None

    with pytest.raises(ModelError, match="has no meta.json"):
        registry.check_files(source)


def test_a_plain_peft_dir_with_a_pickle_file_is_refused_even_without_verification(source: Path) -> None:
    (source / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelError, match="pickle"):
        registry.check_files(source, verify=False)


def test_a_plain_peft_dir_without_weights_is_refused(source: Path) -> None:
    (source / WEIGHTS).unlink()
    with pytest.raises(ModelError, match=f"has no {WEIGHTS}"):
        registry.check_files(source, verify=False)


def test_without_verification_a_present_meta_json_is_still_checked(published: Path) -> None:
    _flip_a_weights_byte(published)
    with pytest.raises(ModelError, match="does not match its checksum"):
        registry.check_files(published, verify=False)


# -- version names ---------------------------------------------------------------------------


def test_next_version_counts_past_published_and_known_versions(
    source: Path, data_dir: Path, tmp_path: Path
) -> None:
    assert registry.next_version(data_dir) == "v0001"  # no adapters dir at all
    registry.publish(source, data_dir, "v0001", META_IN)
    registry.publish(make_peft_dir(tmp_path / "third", seed=3), data_dir, "v0003", META_IN)
    root = DataDir(data_dir).adapters
    (root / ".v0009.abc").mkdir()  # a staging dir, an unrelated dir and a file are not versions
    (root / "notes").mkdir()
    (root / "v0010").write_text("a file", encoding="utf-8")

    assert [p.name for p in registry.published(data_dir)] == ["v0001", "v0003"]
    assert registry.next_version(data_dir) == "v0004"
    assert registry.next_version(data_dir, {"v0002"}) == "v0004"
    assert registry.next_version(data_dir, {"v0007", "v0002"}) == "v0008"  # e.g. a deleted version's name


def test_version_names_go_past_9999() -> None:
    assert registry.version_name(10000) == "v10000"
    assert registry.version_number("v10000") == 10000
    assert registry.normalise_version("10000") == "v10000"


@pytest.mark.parametrize("text", ["3", "v3", "v0003", "V3", "0003", " v03 "])
def test_normalise_version(text: str) -> None:
    assert registry.normalise_version(text) == "v0003"


@pytest.mark.parametrize("text", ["abc", "", "v", "v-1", "-1", "3.0", "vv3", "v3a", "active"])
def test_normalise_version_refuses_what_is_not_a_version(text: str) -> None:
    with pytest.raises(NotFoundError, match="is not an adapter version"):
        registry.normalise_version(text)


def test_normalise_version_refuses_a_superscript_digit() -> None:
    with pytest.raises(NotFoundError):
        registry.normalise_version("²")


@pytest.mark.parametrize("name", ["3", "v3", "v003", "x0003", "v0003 "])
def test_version_number_wants_the_full_name(name: str) -> None:
    with pytest.raises(NotFoundError):
        registry.version_number(name)


# -- remove ----------------------------------------------------------------------------------


def test_remove_deletes_a_version_with_read_only_files(published: Path, data_dir: Path) -> None:
    registry.remove(published)

    assert not published.exists()
    assert list(DataDir(data_dir).adapters.iterdir()) == []  # no `.v0001.deleted` left either
    assert list(registry.published(data_dir)) == []


def test_remove_of_a_missing_version_does_nothing(data_dir: Path) -> None:
    registry.remove(data_dir / "adapters" / "v0042")
    assert not (data_dir / "adapters").exists()


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * (3 * 4096) + b"tail")  # more than one read block
    assert registry.sha256_file(path) == _sha256(path)
