"""SteeringVector: an immutable value with provenance; arithmetic, select, validation, safetensors round trip."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from pathlib import Path

import jaxtyping
import numpy as np
import pytest
import torch
import typecheck_conf
from safetensors.torch import save_file

from interp_steer.errors import ConfigError, SteeringVectorError
from interp_steer.steering import Provenance, SteeringVector, as_hook_name, from_mapping, steering_hook_name

REPO_ROOT = Path(__file__).resolve().parents[2]
HOOK = "blocks.{}.hook_resid_post".format
METADATA_KEY = "interp_steer_provenance"
# with the suite's run-time type checker (INTERP_STEER_TYPECHECK=1) a value of a type the annotation excludes
# (a str or None as a scale factor) is rejected by the checker, naming the parameter, before the method's own check
TYPECHECK_ON = typecheck_conf.ENABLED


def make_vector(seed=0, d=64, layers=(1,), **provenance):
    g = torch.Generator().manual_seed(seed)
    fields = {"method": "manual", "dataset": "toy", "n_pairs": 3, **provenance}
    return from_mapping({layer: torch.randn(d, generator=g) for layer in layers}, **fields)


def test_layer_shorthand_resolves_to_hook_name():
    assert as_hook_name(13) == "blocks.13.hook_resid_post"
    assert as_hook_name("blocks.2.hook_resid_pre") == "blocks.2.hook_resid_pre"
    assert make_vector().hook_names == ["blocks.1.hook_resid_post"]
    assert steering_hook_name("blocks.13.hook_resid_post") == "blocks.13.hook_steering"
    assert steering_hook_name("blocks.4.hook_resid_pre") == "blocks.4.hook_steering_resid_pre"
    with pytest.raises(ConfigError):
        steering_hook_name("hook_embed")


def test_arithmetic_matches_numpy():
    a, b = make_vector(0, layers=(1, 2)), make_vector(1, layers=(1, 2))
    na, nb = a[1].numpy(), b[1].numpy()
    np.testing.assert_allclose((a + b)[1].numpy(), na + nb, rtol=1e-6)
    np.testing.assert_allclose((a - b)[1].numpy(), na - nb, rtol=1e-6)
    np.testing.assert_allclose((2.5 * a)[1].numpy(), 2.5 * na, rtol=1e-6)
    np.testing.assert_allclose((a * np.float32(2.0))[2].numpy(), 2.0 * a[2].numpy(), rtol=1e-6)
    np.testing.assert_allclose(a.normalize(3.0)[2].norm().item(), 3.0, rtol=1e-6)
    expected_cos = float(na @ nb / np.linalg.norm(na) / np.linalg.norm(nb))
    assert a.cosine(b)["blocks.1.hook_resid_post"] == pytest.approx(expected_cos, abs=1e-6)
    assert (2.5 * a).provenance.extra["transform"] == "scale(2.5)" and "transform" not in a.provenance.extra


@pytest.mark.parametrize("factor", [float("nan"), float("inf"), -float("inf"), np.float64("nan"), torch.tensor(float("inf"))])
def test_scale_rejects_non_finite_factors(factor):
    with pytest.raises(SteeringVectorError, match="scale factor must be a finite number"):
        make_vector().scale(factor)


@pytest.mark.parametrize("factor", ["2", None])
def test_scale_rejects_non_numbers(factor):
    if TYPECHECK_ON:
        expected, match = (SteeringVectorError, jaxtyping.TypeCheckError), "scale factor must be a finite number|parameter 'factor'"
    else:
        expected, match = SteeringVectorError, "scale factor must be a finite number"
    with pytest.raises(expected, match=match):
        make_vector().scale(factor)


def test_scale_accepts_numpy_and_zero_dim_tensor_factors():
    a = make_vector(0)
    expected = 3.0 * a[1].numpy()
    for factor in (np.float32(3.0), np.int64(3), torch.tensor(3.0), 3):
        np.testing.assert_allclose(a.scale(factor)[1].numpy(), expected, rtol=1e-6)


# ------------------------------------------------------------------------------------- immutability
def _set_direction_attr(v):
    v.directions = {}


def _set_direction_item(v):
    v.directions["blocks.1.hook_resid_post"] = torch.zeros(64)


def _delete_direction_item(v):
    del v.directions["blocks.1.hook_resid_post"]


def _set_provenance_attr(v):
    v.provenance.method = "other"


def _set_provenance_extra(v):
    v.provenance.extra["note"] = 1


def _append_layer(v):
    v.provenance.layers.append(5)


def _set_nested_extra(v):
    v.provenance.extra["config"]["lr"] = 1.0


def _append_nested_list(v):
    v.provenance.extra["losses"].append(0.0)


def _set_processing(v):
    v.provenance.model_processing["fold_ln"] = True


@pytest.mark.parametrize("mutate, error", [
    (_set_direction_attr, dataclasses.FrozenInstanceError),
    (_set_direction_item, TypeError),
    (_delete_direction_item, TypeError),
    (_set_provenance_attr, dataclasses.FrozenInstanceError),
    (_set_provenance_extra, TypeError),
    (_append_layer, AttributeError),
    (_set_nested_extra, TypeError),
    (_append_nested_list, AttributeError),
    (_set_processing, TypeError),
])
def test_vector_and_provenance_cannot_be_mutated(mutate, error):
    v = make_vector(extra={"config": {"lr": 0.1}, "losses": [0.7, 0.6]}, layers=[1], model_processing={"fold_ln": False})
    before = copy.deepcopy(v)
    with pytest.raises(error):
        mutate(v)
    assert v == before


def test_construction_copies_its_inputs():
    source = torch.randn(64, requires_grad=True)
    extra = {"losses": [0.7]}
    directions = {1: source}
    v = SteeringVector(directions, Provenance(extra=extra))
    with torch.no_grad():
        source.mul_(0.0)
    directions[2] = torch.ones(64)
    extra["losses"].append(0.1)
    extra["new"] = True
    assert v.hook_names == ["blocks.1.hook_resid_post"]
    assert float(v[1].abs().sum()) > 0 and not v[1].requires_grad
    assert v[1].untyped_storage().data_ptr() != source.untyped_storage().data_ptr()
    assert dict(v.provenance.extra) == {"losses": (0.7,)}


def test_provenance_is_copied_with_replace():
    p = Provenance(model="m", method="caa", layers=[3], extra={"a": 1})
    q = dataclasses.replace(p, method="random")
    assert (q.method, q.model, q.layers, q.created, dict(q.extra)) == ("random", "m", (3,), p.created, {"a": 1})
    assert p.method == "caa"
    r = p.with_extra(b=[1, 2])
    assert dict(r.extra) == {"a": 1, "b": (1, 2)} and dict(p.extra) == {"a": 1}
    assert json.loads(r.to_json())["extra"] == {"a": 1, "b": [1, 2]}
    assert Provenance(layers=[np.int64(4), 5]).layers == (4, 5)  # numpy integers (e.g. from argmax) are layers too
    assert json.dumps(r.extra, sort_keys=True) == '{"a": 1, "b": [1, 2]}'  # frozen values serialise as they are
    assert isinstance(r.extra, dict) and hash(r) == hash(dataclasses.replace(r))


def test_pickle_deepcopy_and_equality():
    v = make_vector(layers=(0, 2), extra={"config": {"lr": 0.1}, "losses": [0.5]})
    for clone in (pickle.loads(pickle.dumps(v)), copy.deepcopy(v), copy.copy(v)):
        assert clone == v and clone.provenance.extra["config"]["lr"] == 0.1
    other = SteeringVector({k: t.clone() for k, t in v.directions.items()}, v.provenance)
    assert other == v
    assert SteeringVector({k: t + 1e-3 for k, t in v.directions.items()}, v.provenance) != v
    assert v.to("cpu", torch.float64) != v  # same values, different dtype
    assert SteeringVector(dict(v.directions), dataclasses.replace(v.provenance, method="x")) != v
    with pytest.raises(TypeError):
        hash(v)


# -------------------------------------------------------------------------------------------- select
def test_select_equals_hand_slicing_and_records_the_selection():
    v = make_vector(layers=(0, 1, 2))
    v = SteeringVector(dict(v.directions), dataclasses.replace(v.provenance, layers=[0, 1, 2]))
    picked = v.select(1)
    by_name = v.select("blocks.1.hook_resid_post")
    by_digit = v.select("1")
    hand = SteeringVector({"blocks.1.hook_resid_post": v.directions["blocks.1.hook_resid_post"]}, v.provenance)
    for s in (picked, by_name, by_digit):
        assert s.hook_names == hand.hook_names
        assert torch.equal(s["blocks.1.hook_resid_post"], hand["blocks.1.hook_resid_post"])
        assert s.provenance.layers == (1,)
        assert list(s.provenance.extra["selected_from"]) == [HOOK(0), HOOK(1), HOOK(2)]
        assert (s.provenance.method, s.provenance.n_pairs, s.provenance.created) == ("manual", 3, v.provenance.created)
    assert picked == by_name == by_digit
    # one hook already: nothing to select, the vector itself
    assert picked.select() is picked and picked.select(1) is picked


@pytest.mark.parametrize("layer, match", [
    (None, r"vector has 3 hooks \(blocks.0.hook_resid_post, blocks.1.hook_resid_post, blocks.2.hook_resid_post\); "
           r"pick one with --layer / select\(layer\)"),
    (5, r"no direction at 'blocks.5.hook_resid_post'; it has blocks.0.hook_resid_post, .* --layer"),
    ("blocks.1.hook_resid_pre", r"no direction at 'blocks.1.hook_resid_pre'"),
    (-1, r"select\(-1\): layer must be a non-negative int"),
])
def test_select_errors_name_the_option(layer, match):
    with pytest.raises(SteeringVectorError, match=match):
        make_vector(layers=(0, 1, 2)).select(layer)


# --------------------------------------------------------------------------------- construction checks
@pytest.mark.parametrize("directions, match", [
    ({}, "at least one hook"),
    ({1: torch.tensor([0.0, float("nan"), 1.0])}, r"'blocks.1.hook_resid_post' has non-finite values \(1 NaN, 0 inf of 3\)"),
    ({1: torch.tensor([float("inf"), 1.0])}, r"non-finite values \(0 NaN, 1 inf"),
    ({1: torch.tensor([-float("inf"), float("nan")])}, r"non-finite values \(1 NaN, 1 inf"),
    ({1: torch.arange(4)}, "has dtype torch.int64; steering vectors need a floating dtype"),
    ({1: torch.ones(4, dtype=torch.int32)}, "dtype torch.int32"),
    ({1: torch.ones(4, dtype=torch.bool)}, "dtype torch.bool"),
    ({1: torch.ones(4, dtype=torch.complex64)}, "dtype torch.complex64"),
    ({1: [1, 2, 3]}, "dtype torch.int64"),
    ({1: torch.zeros(2, 64)}, r"must be 1-D \[d_model\], got shape \(2, 64\)"),
    ({1: torch.tensor(1.0)}, r"must be 1-D \[d_model\], got shape \(\)"),
    ({1: torch.zeros(0)}, r"is empty \(d_model 0\)"),
    ({1: torch.zeros(4), "blocks.1.hook_resid_post": torch.ones(4)}, "given twice"),
    ({"blocks.0.hook_resid_post": torch.zeros(4), 2: "abc"}, "'blocks.2.hook_resid_post' is not a tensor"),
    ({-3: torch.zeros(4)}, "bad hook key -3"),
])
def test_construction_rejects_bad_directions(directions, match):
    with pytest.raises(SteeringVectorError, match=match):
        SteeringVector(directions)


def test_floating_dtypes_and_arrays_are_accepted():
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        assert SteeringVector({0: torch.ones(3, dtype=dtype)})[0].dtype == dtype
    assert SteeringVector({0: np.ones(3)})[0].dtype == torch.float64


# ---------------------------------------------------------------------------------------------- files
def test_save_load_round_trip_keeps_tensors_and_provenance(tmp_path):
    v = make_vector(layers=(0, 2), extra={"loss_curve": [0.69, 0.5]}, model_processing={"source": "gguf", "fold_ln": False})
    path = v.save(tmp_path / "vec")
    assert path.suffix == ".safetensors" and path.with_suffix(".json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vec.json", "vec.safetensors"]  # no temporary left
    loaded = SteeringVector.load(path)
    assert loaded == v
    assert loaded.provenance.method == "manual" and loaded.provenance.n_pairs == 3
    assert list(loaded.provenance.extra["loss_curve"]) == [0.69, 0.5]
    assert loaded.provenance.model_processing["source"] == "gguf"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["provenance"]["dataset"] == "toy" and sidecar["provenance"]["model_processing"]["fold_ln"] is False
    # never pickle: the file is plain safetensors
    assert path.read_bytes()[8:9] == b"{"


def test_saving_tensors_that_share_storage(tmp_path):
    base = torch.randn(64)
    shared = {0: base, 1: base, 2: base[:].view(64)}
    with pytest.raises(RuntimeError, match="share memory"):  # what safetensors does with such tensors itself
        save_file({str(k): t for k, t in shared.items()}, str(tmp_path / "raw.safetensors"))
    v = SteeringVector(shared)
    loaded = SteeringVector.load(v.save(tmp_path / "shared.safetensors"))
    for layer in (0, 1, 2):
        assert torch.equal(loaded[layer], base)


def _write(path, tensors, header):
    metadata = None if header is None else {METADATA_KEY: header}
    save_file(tensors, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize("tensors, header, match", [
    ({HOOK(1): torch.tensor([1.0, float("nan")])}, "{}", r"'blocks.1.hook_resid_post' has non-finite values \(1 NaN"),
    ({HOOK(1): torch.tensor([1.0, float("inf")])}, "{}", r"'blocks.1.hook_resid_post' has non-finite values \(0 NaN, 1 inf"),
    ({HOOK(1): torch.arange(3, dtype=torch.int32)}, "{}", "dtype torch.int32"),
    ({HOOK(1): torch.zeros(2, 3)}, "{}", "must be 1-D"),
    ({HOOK(1): torch.zeros(3)}, "{not json", "provenance header is not valid JSON"),
    ({HOOK(1): torch.zeros(3)}, "", "provenance header is not valid JSON"),
    ({HOOK(1): torch.zeros(3)}, "[1, 2]", "provenance header must be a JSON object, got a JSON list"),
    ({HOOK(1): torch.zeros(3)}, '"caa"', "provenance header must be a JSON object, got a JSON str"),
    ({HOOK(1): torch.zeros(3)}, '{"layers": ["x"]}', "layers"),
    ({HOOK(1): torch.zeros(3)}, '{"extra": [1]}', "extra"),
    ({HOOK(1): torch.zeros(3)}, '{"n_pairs": "3"}', "provenance field 'n_pairs' must be an integer"),
    ({HOOK(1): torch.zeros(3)}, '{"model": 7}', "provenance field 'model' must be a string"),
    ({HOOK(1): torch.zeros(3)}, '{"layers": [1, true]}', "provenance field 'layers' must be a list of integers"),
])
def test_load_rejects_bad_files_naming_the_file(tmp_path, tensors, header, match):
    path = _write(tmp_path / "bad_vector.safetensors", tensors, header)
    with pytest.raises(SteeringVectorError, match=match) as info:
        SteeringVector.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_load_errors(tmp_path):
    with pytest.raises(SteeringVectorError, match="not found"):
        SteeringVector.load(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(SteeringVectorError, match="not a valid safetensors"):
        SteeringVector.load(bad)
    with pytest.raises(SteeringVectorError, match="is a directory"):
        SteeringVector.load(tmp_path)
    # a file without a provenance header loads with an empty provenance
    plain = SteeringVector.load(_write(tmp_path / "plain.safetensors", {HOOK(0): torch.ones(3)}, None))
    assert plain.provenance.method == "" and torch.equal(plain[0], torch.ones(3))


COMMITTED = sorted(p.relative_to(REPO_ROOT) for p in (REPO_ROOT / "analyses" / "results").rglob("*.safetensors"))


@pytest.mark.skipif(not COMMITTED, reason="no committed vectors under analyses/results")
def test_committed_vectors_still_load(tmp_path):
    methods = set()
    for rel in COMMITTED:
        v = SteeringVector.load(REPO_ROOT / rel)
        methods.add(v.provenance.method)
        assert v.provenance.layers and all(bool(torch.isfinite(t).all()) for t in v.directions.values()), rel
    assert {"caa", "bipo"} <= methods
    assert SteeringVector.load(v.save(tmp_path / "resaved.safetensors")) == v  # old headers re-save unchanged


def test_fit_errors(tiny):
    with pytest.raises(SteeringVectorError, match="d_model 32 but model"):
        make_vector(d=32).check_fits(tiny)
    with pytest.raises(SteeringVectorError, match="does not exist"):
        make_vector(layers=(7,)).check_fits(tiny)


def test_provenance_defaults_are_filled():
    p = Provenance(model="m")
    assert p.package_version and "T" in p.created
    assert p.layers == () and dict(p.extra) == {} and dict(p.model_processing) == {}


def test_provenance_repr_elides_long_number_lists_but_the_file_keeps_them():
    point = [float(i) / 7 for i in range(640)]
    prov = Provenance(model="m", layers=[3], extra={"reference_points": {"kind": "negative_mean",
                                                                         "points": {"blocks.3.hook_resid_post": point}},
                                                    "short": [1, 2, 3]})
    text = repr(prov)
    assert "<640 numbers>" in text and "'short': (1, 2, 3)" in text and str(point[5]) not in text
    assert list(prov.to_dict()["extra"]["reference_points"]["points"]["blocks.3.hook_resid_post"]) == point
    assert Provenance.from_json(prov.to_json()) == prov
