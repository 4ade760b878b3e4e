"""core.npyio reads what numpy writes, as np.load does, without the ast module (unsafe across threads on
CPython 3.11 < 3.11.8)."""

from __future__ import annotations

import ast

import numpy as np
import pytest

from core.npyio import load_npy, load_npz

ARRAYS = {
    "f32": np.random.default_rng(0).random((7, 5), dtype=np.float32),
    "i64": np.arange(11, dtype=np.int64),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
    "empty": np.zeros((0, 384), dtype=np.float32),
    "scalar": np.array(3.5),
    "text": np.array(["a", "passage id", "ü"]),
    "bools": np.array([True, False]),
}


@pytest.fixture
def no_ast(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("ast was used")

    monkeypatch.setattr(ast, "literal_eval", refuse)
    monkeypatch.setattr(ast, "parse", refuse)


@pytest.mark.parametrize("name", list(ARRAYS))
def test_load_npy_matches_np_load(name, tmp_path, no_ast):
    path = tmp_path / f"{name}.npy"
    np.save(path, ARRAYS[name], allow_pickle=False)
    for mmap in (False, True):
        got = load_npy(path, mmap=mmap)
        assert got.dtype == ARRAYS[name].dtype and got.shape == ARRAYS[name].shape
        assert np.array_equal(got, ARRAYS[name])


def test_load_npz_matches_np_load(tmp_path, no_ast):
    path = tmp_path / "all.npz"
    np.savez(path, **ARRAYS)
    got = load_npz(path)
    assert set(got) == set(ARRAYS)
    for k, v in ARRAYS.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v)


def test_unusual_headers_fall_back_to_numpy(tmp_path):
    structured = np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")])
    np.save(tmp_path / "s.npy", structured)
    assert np.array_equal(load_npy(tmp_path / "s.npy"), structured)
    np.savez(tmp_path / "s.npz", s=structured)
    assert np.array_equal(load_npz(tmp_path / "s.npz")["s"], structured)
