"""Projection: sampling, comparable base/tuned UMAP frames, save/load, alignment stats, rank movement.

UMAP runs on a few hundred synthetic points only; the first fit pays numba's JIT warm-up once.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from core.insight.clouds import AnswerNearby, answer_in_top_k, cloud_rows, fit_clouds
from core.insight.projection import (
    Projection,
    ProjectionParams,
    fit_projection,
    rank_movement,
    retrieval_alignment,
    sample_points,
)

N_Q, N_D, DIM, K = 200, 100, 32, 5
PARAMS = ProjectionParams(n_neighbors=10, min_dist=0.1, sample=240, seed=3)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    """5 well-separated clusters; query i and passage j belong to cluster i % 5 and j % 5.

    Query i's gold passage is passage i % 100 (same cluster). The "tuned" space is the base space
    under a random rotation plus a little noise: same structure, different coordinates.
    """
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(K, DIM)) * 3
    q_lab, d_lab = np.arange(N_Q) % K, np.arange(N_D) % K
    base_q = _unit(centres[q_lab] + rng.normal(size=(N_Q, DIM)))
    base_d = _unit(centres[d_lab] + rng.normal(size=(N_D, DIM)))
    rot, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    tuned_q = _unit(base_q @ rot + 0.01 * rng.normal(size=(N_Q, DIM)))
    tuned_d = _unit(base_d @ rot + 0.01 * rng.normal(size=(N_D, DIM)))
    return {
        "qids": [f"q{i}" for i in range(N_Q)],
        "dids": [f"d{j}" for j in range(N_D)],
        "gold": {f"q{i}": f"d{i % N_D}" for i in range(N_Q)},
        "label": {**{f"q{i}": int(q_lab[i]) for i in range(N_Q)}, **{f"d{j}": int(d_lab[j]) for j in range(N_D)}},
        "base": (base_q, base_d),
        "tuned": (tuned_q, tuned_d),
    }


@pytest.fixture(scope="module")
def fitted(data):
    keep = {data["gold"][q] for q in data["qids"][:30]}
    steps: list[tuple[str, float]] = []
    proj = fit_projection(
        data["qids"], data["dids"], *data["base"], *data["tuned"], params=PARAMS,
        progress=lambda m, f: steps.append((m, f)), keep_passage_ids=keep,
    )  # fmt: skip
    return proj, keep, steps


def _xy(points: pd.DataFrame, space: str) -> pd.DataFrame:
    return points[points["space"] == space].set_index(["kind", "id"])[["x", "y"]]


def test_both_spaces_hold_same_ids_without_nan(fitted):
    proj, _, _ = fitted
    p = proj.points
    assert list(p.columns) == ["space", "kind", "id", "x", "y"]
    assert set(p["space"]) == {"base", "tuned"} and set(p["kind"]) == {"query", "passage"}
    assert p["x"].dtype == np.float32 and p["y"].dtype == np.float32
    assert not p[["x", "y"]].isna().any().any()
    base, tuned = _xy(p, "base"), _xy(p, "tuned")
    assert list(base.index) == list(tuned.index)  # same (kind, id) rows, same order
    assert not base.index.duplicated().any()
    assert proj.params == PARAMS and proj.seconds > 0


def test_fit_keeps_cap_and_kept_passages(fitted):
    proj, keep, _ = fitted
    base = proj.points[proj.points["space"] == "base"]
    assert len(base) == PARAMS.sample
    assert keep <= set(base.loc[base["kind"] == "passage", "id"])


def test_progress_reports_the_steps(fitted):
    _, _, steps = fitted
    msgs = [m for m, _ in steps]
    assert msgs[:3] == ["Fitting base map", "Fitting tuned map", "Aligning"]
    fracs = [f for _, f in steps]
    assert fracs == sorted(fracs) and fracs[0] == 0.0 and fracs[-1] == 1.0


def test_tuned_frame_is_aligned_onto_base(fitted, data):
    """A rotated space is the same structure: each cluster lands where it was in the base map."""
    proj, _, _ = fitted
    base, tuned = _xy(proj.points, "base"), _xy(proj.points, "tuned")
    labels = np.array([data["label"][i] for _, i in base.index])
    cb = np.array([base.to_numpy()[labels == c].mean(0) for c in range(K)])
    ct = np.array([tuned.to_numpy()[labels == c].mean(0) for c in range(K)])
    nearest = np.linalg.norm(ct[:, None, :] - cb[None, :, :], axis=2).argmin(axis=1)
    assert list(nearest) == list(range(K))
    # Same centre and overall size (root-mean-square radius): the alignment matched them.
    t, b = tuned.to_numpy(dtype=float), base.to_numpy(dtype=float)
    np.testing.assert_allclose(t.mean(0), b.mean(0), atol=1e-4)
    assert np.linalg.norm(t - t.mean(0)) == pytest.approx(np.linalg.norm(b - b.mean(0)), rel=1e-4)


def test_identical_vectors_give_identical_layouts(fitted, data):
    proj0, keep, _ = fitted
    steps: list[str] = []
    proj = fit_projection(
        data["qids"], data["dids"], *data["base"], *data["base"], params=PARAMS,
        progress=lambda m, f: steps.append(m), keep_passage_ids=keep,
    )  # fmt: skip
    base, tuned = _xy(proj.points, "base"), _xy(proj.points, "tuned")
    np.testing.assert_allclose(tuned.to_numpy(), base.to_numpy(), atol=1e-5)
    assert "Fitting tuned map" not in steps  # the untrained case reuses the base map
    # Same sample, params and seed: the base map is reproduced exactly.
    pd.testing.assert_frame_equal(base, _xy(proj0.points, "base"))


def test_sample_points_keep_every_question_and_sample_only_other_passages():
    qids = [f"q{i}" for i in range(272)]
    dids = [f"d{j}" for j in range(3000)]
    keep = {f"d{j}" for j in range(0, 3000, 7)}  # 429 passages (answers, ringed passages)
    q1, d1 = sample_points(qids, dids, 1500, seed=1, keep_passage_ids=keep)
    q2, d2 = sample_points(qids, dids, 1500, seed=1, keep_passage_ids=keep)
    assert np.array_equal(q1, q2) and np.array_equal(d1, d2)
    assert list(q1) == list(range(272))  # every question, however large the collection
    assert keep <= {dids[j] for j in d1} and len(q1) + len(d1) == 1500
    assert list(d1) == sorted(set(d1))
    _, d3 = sample_points(qids, dids, 1500, seed=2, keep_passage_ids=keep)
    assert not np.array_equal(d1, d3)  # other seed, other sampled passages; the kept ones stay
    # More kept points than the target: all of them are drawn, nothing is dropped.
    big = set(dids[:2000])
    q4, d4 = sample_points(qids, dids, 1500, seed=1, keep_passage_ids=big)
    assert len(q4) == 272 and {dids[j] for j in d4} == big
    q5, d5 = sample_points(qids[:10], dids[:10], 300)  # under the target: everything
    assert len(q5) == len(d5) == 10


def test_save_load_roundtrip_without_pickle(fitted, tmp_path):
    proj, _, _ = fitted
    path = proj.save(tmp_path / "cache" / f"map-{PARAMS.key()}.npz")
    with np.load(path, allow_pickle=False) as z:  # loads with pickle disabled
        assert all(z[k].dtype != object for k in z.files)
        assert json.loads(str(z["meta"]))["params"]["sample"] == PARAMS.sample
    assert zipfile.is_zipfile(path)
    back = Projection.load(path)
    pd.testing.assert_frame_equal(back.points, proj.points.reset_index(drop=True), check_dtype=False)
    assert back.points["x"].dtype == np.float32
    assert back.params == proj.params and back.seconds == pytest.approx(proj.seconds)
    # The name is kept as given (numpy would otherwise append ".npz").
    other = proj.save(tmp_path / "map.bin")
    assert other.name == "map.bin" and Projection.load(other).points.shape == proj.points.shape
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(Exception):  # noqa: B017 - numpy's own error for a corrupt file
        Projection.load(tmp_path / "bad.npz")


def test_params_key_is_short_and_stable():
    assert ProjectionParams().key() == "n15-d0.1-s1500-r42"
    assert ProjectionParams(n_neighbors=30, min_dist=0.25, sample=800, seed=1).key() == "n30-d0.25-s800-r1"


def test_fit_rejects_bad_shapes(data):
    bq, bd = data["base"]
    with pytest.raises(ValueError, match="base_q"):
        fit_projection(data["qids"], data["dids"], bq[:-1], bd, bq, bd)
    with pytest.raises(ValueError, match="NaN"):
        bad = bq.copy()
        bad[0, 0] = np.nan
        fit_projection(data["qids"], data["dids"], bq, bd, bad, bd)


def test_retrieval_alignment_by_hand():
    d = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    q = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    # q0's answer is row 0 (rank 1, margin 1 - 0.8); q1's answer is row 1 (rank 2: row 2 scores 1.0 > 0.6);
    # q2's answers are rows 2 and 3: best is row 2 (0.8), beaten by row 1 (0.96): rank 2
    out = retrieval_alignment(q, d, [[0], [1], [2, 3]])
    assert out["answer_first"] == pytest.approx(1 / 3)
    assert out["median_rank"] == 2
    assert out["margin"] == pytest.approx(((1 - 0.8) + (0.6 - 1.0) + (0.8 - 0.96)) / 3)
    # scaling every similarity (what contrastive training does to cosines) changes no rank
    assert retrieval_alignment(q * 0.5, d, [[0], [1], [2, 3]])["median_rank"] == 2
    with pytest.raises(ValueError):
        retrieval_alignment(q, d, [[0]])


def test_retrieval_alignment_matches_a_loop():
    rng = np.random.default_rng(3)
    d = rng.normal(size=(300, 16)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    q = rng.normal(size=(50, 16)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    gold = [list(rng.choice(300, size=int(rng.integers(1, 4)), replace=False)) for _ in range(50)]
    ranks, margins = [], []
    for qi, g in zip(q, gold):  # the plain definition, one question at a time
        scores = d @ qi
        best = max(scores[i] for i in g)
        wrong = [s for i, s in enumerate(scores) if i not in g]
        ranks.append(1 + sum(s >= best for s in wrong))
        margins.append(best - max(wrong))
    out = retrieval_alignment(q, d, gold, chunk=7)  # several chunks, one of them short
    assert out["answer_first"] == pytest.approx(np.mean(np.array(ranks) == 1))
    assert out["median_rank"] == pytest.approx(np.median(ranks))
    assert out["margin"] == pytest.approx(np.mean(margins), abs=1e-6)


def test_rank_movement_cases():
    idx = ["a", "b", "c", "d", "e", "f"]
    before = pd.Series([5, 1, 3, np.nan, 7, np.nan], index=idx)
    after = pd.Series([2, 4, 3, 9, np.nan, np.nan], index=idx)
    out = rank_movement(before, after)
    assert out.name == "movement"
    assert out.to_dict() == {
        "a": "improved", "b": "worsened", "c": "same",
        "d": "improved",  # from outside the top 100 into it
        "e": "worsened",  # fell out of the top 100
        "f": "same",      # never found
    }  # fmt: skip
    # Aligned on the index; a query missing on one side counts as not found there.
    out2 = rank_movement(pd.Series({"x": 1.0, "y": 2.0}), pd.Series({"y": 1.0, "z": 3.0}))
    assert out2.to_dict() == {"x": "worsened", "y": "improved", "z": "improved"}


# --- the "questions vs passages" view: one frame, uniform passages, the number that agrees with retrieval ---


def test_clouds_share_one_frame_and_skip_blocks_the_tuned_model_left_as_they_were(data):
    qids, dids = data["qids"], data["dids"]
    base_q, base_d = data["base"]
    tuned_q = _unit(base_q + 0.5 * np.random.default_rng(1).normal(size=base_q.shape))  # an adapter: questions move
    proj = fit_clouds(qids, dids, base_q, base_d, tuned_q, base_d, params=PARAMS)
    b, t = _xy(proj.points, "base"), _xy(proj.points, "tuned")
    assert list(b.index) == list(t.index) and np.isfinite(b.to_numpy()).all()
    # passages unchanged by the adapter: the same points in both pictures (one layout, no rotation between them)
    assert np.array_equal(b.loc["passage"].to_numpy(), t.loc["passage"].to_numpy())
    assert not np.allclose(b.loc["query"].to_numpy(), t.loc["query"].to_numpy())  # the questions moved
    n_q, n_d = cloud_rows(len(qids), len(dids), PARAMS.sample, PARAMS.seed)
    assert len(b.loc["query"]) == len(n_q) == PARAMS.sample // 3 and len(b.loc["passage"]) == len(n_d) == N_D
    same = fit_clouds(qids, dids, base_q, base_d, base_q, base_d, params=PARAMS)  # an unchanged model
    assert np.array_equal(_xy(same.points, "base").to_numpy(), _xy(same.points, "tuned").to_numpy())


def test_clouds_of_models_of_different_widths_still_compare(data):
    base_q, base_d = data["base"]
    proj = fit_clouds(data["qids"], data["dids"], base_q, base_d, base_q[:, :16], base_d[:, :16], params=PARAMS)
    assert set(proj.points["space"]) == {"base", "tuned"} and np.isfinite(proj.points[["x", "y"]].to_numpy()).all()


def test_cloud_rows_are_a_uniform_sample_of_passages():
    q, d = cloud_rows(271, 3866, 1500, 42)
    assert len(q) == 271 and len(d) == 1500 - 271 and len(set(d)) == len(d)
    assert abs(np.median(d) - 3866 / 2) < 3866 * 0.1  # spread over the whole collection, not its first rows
    q, d = cloud_rows(5000, 100_000, 1500, 42)
    assert len(q) == 500 and len(d) == 1000  # many questions: a sample of them, passages fill the rest
    assert np.array_equal(cloud_rows(5000, 100_000, 1500, 42)[1], d)  # fixed by the seed
    q, d = cloud_rows(3, 50, 1500)
    assert len(q) == 3 and len(d) == 50


def test_answer_in_top_k_equals_accuracy_at_10_of_an_exact_search():
    from core.retrieval.metrics import per_query_metrics

    rng = np.random.default_rng(5)
    q, d = _unit(rng.normal(size=(60, 16))), _unit(rng.normal(size=(80, 16)))
    gold = [[int(i)] for i in rng.integers(0, 80, size=60)]
    gold[3] = [1, 2, 3]  # several answers: any one in the top 10 counts
    ranked = np.argsort(-(q @ d.T), axis=1)[:, :100]
    pq = per_query_metrics([[f"d{j}" for j in row] for row in ranked], [{f"d{j}" for j in g} for g in gold])
    expected = float(pq["Accuracy@10"].mean())
    assert 0.05 < expected < 0.5  # not a trivial case
    assert answer_in_top_k(q, d, gold) == pytest.approx(expected)


def test_answer_nearby_reads_the_runs_accuracy_at_10_and_says_no_change_plainly():
    from types import SimpleNamespace

    def results(base, tuned):
        return SimpleNamespace(systems={"base": SimpleNamespace(metrics={"Accuracy@10": base}),
                                        "tuned": SimpleNamespace(metrics={"Accuracy@10": tuned})},
                               eval_questions=271, eval_passages=3866)

    n = AnswerNearby.of(results(0.62, 0.81))
    assert (n.base, n.tuned, n.points) == (0.62, 0.81, 19)
    assert n.headline() == "62% → 81% of the 271 questions (+19 points)"
    assert "271 evaluation questions" in n.meaning() and "3,866 passages" in n.meaning()
    assert "Accuracy@10" in n.meaning() and n.title("base") == "62% find their answer in the top 10"
    assert AnswerNearby.of(results(0.62, 0.621)).headline().endswith("(no change)")  # rounds alike: no +0
    kept = AnswerNearby.of(results(0.62, 0.62), unchanged="kept the identity")
    assert kept.headline() == "62% of the 271 questions, before and after (the tuned model is the base model)"
    with pytest.raises(ValueError, match="Accuracy@10"):
        AnswerNearby.of(SimpleNamespace(systems={"base": SimpleNamespace(metrics={})}, eval_questions=1,
                                        eval_passages=1))


@pytest.mark.slow
def test_the_number_beside_the_clouds_agrees_with_retrieval_on_a_smoke_run(tmp_path):
    """On a real run (the sample dataset, an adapter that moved): the number the map and the report show equals
    Accuracy@10 computed independently from the run's stored vectors and from its per-question ranks."""
    from core.execute import execute
    from core.insight.explore import CLOUDS_FILE, open_run, unchanged_note
    from core.sample import ensure_sample
    from core.tuning.runs import create_run
    from core.tuning.spec import RunSpec
    from core.workspace.jobs import Job
    from core.workspace.store import Store

    store = Store(tmp_path / "ws")
    run_id = create_run(store, ensure_sample(store)[0], RunSpec.for_method("adapter", epochs=3, val_fraction=0.0))
    job = Job(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu", prepare_views=True))
    assert job.snapshot().status == "done", job.snapshot().error
    assert (store.run_dir(run_id) / CLOUDS_FILE.format(key=ProjectionParams().key())).exists()  # made at the end
    view = open_run(store, run_id)
    assert unchanged_note(view) is None
    shown = AnswerNearby.of(view.results)
    row = {p: i for i, p in enumerate(view.passage_ids)}
    gold = [[row[d] for d in view.eval.relevant_docs[q]] for q in view.query_ids]
    pq = view.per_query()
    for space, value in (("base", shown.base), ("tuned", shown.tuned)):
        q, d = (view.base_q, view.base_d) if space == "base" else (view.tuned_q, view.tuned_d)
        assert value == pytest.approx(answer_in_top_k(q, d, gold))  # from the vectors, exact search
        assert value == pytest.approx(float((pq[f"{space}|gold_rank"] <= 10).mean()))  # from the run's ranks
    assert 0 < shown.base < 1 and shown.base != shown.tuned  # a real, moving number
    assert shown.questions == len(view.query_ids) and shown.passages == len(view.passage_ids)
