"""The loss table (core/tuning/losses.py) is the one list: the spec's choices, the CLI's --loss, the estimate's
cost and full.py's builder all agree with it, and every loss builds on the bundled model."""

from __future__ import annotations

import typing

import pytest

from core.cli import build_parser
from core.tuning import estimate
from core.tuning.cost import trainer_seconds
from core.tuning.full import build_loss
from core.tuning.losses import LOSS_NAMES, LOSSES, check_loss, loss_of
from core.tuning.spec import FullSettings, RunSpec
from tests.conftest import make_tiny_dataset


def test_spec_cli_and_estimate_offer_the_tables_losses():
    hint = typing.get_type_hints(FullSettings)["loss"]
    assert typing.get_args(hint) == LOSS_NAMES
    parser = build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices["train"]._actions if a.dest == "loss")
    assert tuple(train.choices) == LOSS_NAMES  # GIST can be chosen from the CLI too
    assert set(estimate.LOSS_COST) == set(LOSS_NAMES)
    assert all(x.cost > 0 and x.help and x.label for x in LOSSES)


def test_estimate_reads_each_losss_cost():
    ds = make_tiny_dataset(30)
    seconds = {x.name: trainer_seconds(FullSettings(loss=x.name), ds) for x in LOSSES}
    base = seconds["cached_mnrl"]
    for x in LOSSES:
        assert seconds[x.name] == pytest.approx(base * x.cost)
    assert seconds["cached_gist"] > seconds["cached_mnrl"]  # no silent 1.0 for GIST any more


def test_constraints_come_from_the_table():
    for x in LOSSES:
        if x.max_hard_negatives is None:
            check_loss(x.name, 5)
            RunSpec.for_method("full", loss=x.name, hard_negatives=5)
        else:
            with pytest.raises(ValueError, match="at most one hard negative"):
                RunSpec.for_method("full", loss=x.name, hard_negatives=x.max_hard_negatives + 1)
            RunSpec.for_method("full", loss=x.name, hard_negatives=x.max_hard_negatives)
    with pytest.raises(ValueError, match="unknown loss 'triplet'"):
        loss_of("triplet")
    with pytest.raises(ValueError, match="unknown loss"):
        RunSpec.for_method("full", loss="triplet")


@pytest.mark.slow
def test_every_loss_builds_on_the_bundled_model(model):
    expected = {"mnrl": "MultipleNegativesRankingLoss", "cached_mnrl": "CachedMultipleNegativesRankingLoss",
                "matryoshka": "MatryoshkaLoss", "gist": "GISTEmbedLoss", "cached_gist": "CachedGISTEmbedLoss"}
    assert set(expected) == set(LOSS_NAMES)
    for name in LOSS_NAMES:
        built = build_loss(model, FullSettings(loss=name), None, "cpu")
        assert type(built).__name__ == expected[name]
        assert (getattr(built, "guide", None) is not None) == loss_of(name).needs_guide
