"""Acquisition strategies: one contract for every registered strategy, then each one's own choice."""

from __future__ import annotations

import numpy as np
import pytest

from learning.strategies import (
    STRATEGIES,
    Candidate,
    KCenterGreedy,
    UnknownStrategy,
    cold_start_order,
    get_strategy,
)

DETAIL_KEYS = ("least_confidence", "margin", "entropy", "bald", "tta_disagreement")


def pool(size: int = 12, seed: int = 0) -> list[Candidate]:
    """Return candidates carrying every detail key and a 2-D embedding, ids 100.. in shuffled order."""
    rng = np.random.default_rng(seed)
    candidates = [
        Candidate(
            item_id=100 + i,
            uncertainty=float(rng.random()),
            detail={key: float(rng.random()) for key in DETAIL_KEYS},
            embedding=rng.normal(size=2),
        )
        for i in range(size)
    ]
    return [candidates[i] for i in rng.permutation(size)]


def only(key: str, scores: dict[int, float]) -> list[Candidate]:
    """Return candidates whose detail holds only key, with uncertainty set against the key's order."""
    return [Candidate(item_id=i, uncertainty=-s, detail={key: s}) for i, s in scores.items()]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
class TestStrategyContract:
    def test_returns_at_most_k_distinct_ids_from_the_candidates(self, name):
        candidates = pool()
        picked = get_strategy(name).select(candidates, 5, np.random.default_rng(1))
        assert len(picked) == 5
        assert len(set(picked)) == 5
        assert set(picked) <= {c.item_id for c in candidates}

    def test_is_deterministic_for_a_fixed_seed(self, name):
        candidates = pool()
        first = get_strategy(name).select(candidates, 4, np.random.default_rng(7))
        again = get_strategy(name).select(list(candidates), 4, np.random.default_rng(7))
        assert first == again

    def test_k_larger_than_the_pool_returns_every_candidate(self, name):
        candidates = pool(size=6)
        picked = get_strategy(name).select(candidates, 50, np.random.default_rng(2))
        assert sorted(picked) == sorted(c.item_id for c in candidates)

    def test_k_zero_and_empty_pool_return_nothing(self, name):
        strategy = get_strategy(name)
        assert strategy.select(pool(), 0, np.random.default_rng(3)) == []
        assert strategy.select([], 3, np.random.default_rng(3)) == []

    def test_negative_k_and_duplicate_ids_are_refused(self, name):
        strategy = get_strategy(name)
        with pytest.raises(ValueError, match="k must be"):
            strategy.select(pool(), -1, np.random.default_rng(4))
        duplicated = pool(size=3)
        with pytest.raises(ValueError, match="more than once"):
            strategy.select(duplicated + duplicated[:1], 2, np.random.default_rng(4))


@pytest.mark.parametrize("name", ["entropy", "margin", "bald", "tta_disagreement", "least_confidence"])
def test_score_strategies_pick_the_highest_of_their_key_best_first(name):
    candidates = only(name, {1: 0.2, 2: 0.9, 3: 0.5, 4: 0.7, 5: 0.1})
    assert get_strategy(name).select(candidates, 3, np.random.default_rng(0)) == [2, 4, 3]


def test_score_ties_are_broken_by_item_id():
    candidates = only("entropy", {9: 0.5, 3: 0.5, 7: 0.5, 1: 0.1})
    assert get_strategy("entropy").select(candidates, 3, np.random.default_rng(0)) == [3, 7, 9]


def test_least_confidence_falls_back_to_uncertainty_when_its_key_is_absent():
    candidates = [Candidate(item_id=i, uncertainty=u, detail={}) for i, u in {1: 0.1, 2: 0.8, 3: 0.4}.items()]
    assert get_strategy("least_confidence").select(candidates, 2, np.random.default_rng(0)) == [2, 3]


@pytest.mark.parametrize("name", ["entropy", "margin", "bald", "tta_disagreement"])
def test_missing_detail_key_names_the_key_and_the_item(name):
    candidates = only(name, {1: 0.3}) + [Candidate(item_id=42, uncertainty=0.9, detail={"other": 0.5})]
    with pytest.raises(ValueError, match=rf"item 42 has no '{name}' score"):
        get_strategy(name).select(candidates, 1, np.random.default_rng(0))


def test_non_finite_score_is_refused():
    candidates = only("entropy", {1: 0.3, 2: float("nan")})
    with pytest.raises(ValueError, match="item 2"):
        get_strategy("entropy").select(candidates, 1, np.random.default_rng(0))


def test_random_differs_across_seeds_but_stays_within_the_pool():
    candidates = pool(size=30)
    ids = {c.item_id for c in candidates}
    picks = [tuple(get_strategy("random").select(candidates, 5, np.random.default_rng(seed))) for seed in range(5)]
    assert len(set(picks)) > 1
    assert all(set(p) <= ids and len(set(p)) == 5 for p in picks)


def test_random_ignores_the_order_candidates_arrive_in():
    candidates = pool(size=10)
    forward = get_strategy("random").select(candidates, 4, np.random.default_rng(5))
    backward = get_strategy("random").select(candidates[::-1], 4, np.random.default_rng(5))
    assert forward == backward


def clustered() -> list[Candidate]:
    """Return two tight clusters (ids 1-4 near the origin, 11-14 near (10, 0)) and one far point (id 99)."""
    points = {
        1: (0.0, 0.0, 0.95),
        2: (0.1, 0.0, 0.94),
        3: (0.0, 0.1, 0.93),
        4: (0.1, 0.1, 0.92),
        11: (10.0, 0.0, 0.5),
        12: (10.1, 0.0, 0.6),
        13: (10.0, 0.1, 0.55),
        14: (10.1, 0.1, 0.45),
        99: (0.0, 50.0, 0.3),
    }
    return [
        Candidate(item_id=i, uncertainty=u, detail={}, embedding=np.array([x, y])) for i, (x, y, u) in points.items()
    ]


def test_kcenter_starts_from_the_most_uncertain_and_covers_both_clusters_and_the_far_point():
    picked = KCenterGreedy(pool_factor=3).select(clustered(), 3, np.random.default_rng(0))
    assert picked[0] == 1
    assert picked[1] == 99
    assert picked[2] in {11, 12, 13, 14}


def test_kcenter_pure_uncertainty_would_have_stayed_in_one_cluster():
    top3 = get_strategy("least_confidence").select(clustered(), 3, np.random.default_rng(0))
    assert set(top3) <= {1, 2, 3, 4}


def test_kcenter_only_considers_the_most_uncertain_pool():
    # pool_factor=1 with k=3 keeps ids 1, 2, 3: the far point and the other cluster are out of reach.
    picked = KCenterGreedy(pool_factor=1).select(clustered(), 3, np.random.default_rng(0))
    assert sorted(picked) == [1, 2, 3]


def test_kcenter_refuses_a_candidate_without_an_embedding():
    candidates = clustered() + [Candidate(item_id=77, uncertainty=0.01, detail={})]
    with pytest.raises(ValueError, match="item 77 has no embedding"):
        get_strategy("kcenter_uncertain").select(candidates, 2, np.random.default_rng(0))


def test_kcenter_refuses_mismatched_embeddings():
    candidates = clustered() + [Candidate(item_id=77, uncertainty=0.01, detail={}, embedding=np.zeros(3))]
    with pytest.raises(ValueError, match="item 77 embedding has shape"):
        get_strategy("kcenter_uncertain").select(candidates, 2, np.random.default_rng(0))


def test_unknown_strategy_names_the_known_ones():
    with pytest.raises(UnknownStrategy, match="'coreset'.*bald.*entropy.*kcenter_uncertain.*random"):
        get_strategy("coreset")
    assert issubclass(UnknownStrategy, ValueError)


def test_registry_names_match_the_classes():
    assert {name: cls.name for name, cls in STRATEGIES.items()} == {name: name for name in STRATEGIES}
    assert set(STRATEGIES) == {
        "random",
        "least_confidence",
        "margin",
        "entropy",
        "bald",
        "tta_disagreement",
        "kcenter_uncertain",
    }


# ---------------------------------------------------------------------------------------------------- queue order
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_orders_a_whole_queue_each_id_once(name):
    candidates = pool(size=40)
    order = get_strategy(name).order(candidates, 5, np.random.default_rng(0))
    assert sorted(order) == sorted(c.item_id for c in candidates)
    assert order[:5] == get_strategy(name).select(candidates, 5, np.random.default_rng(0))


def test_score_strategies_order_everything_by_their_score():
    candidates = only("margin", {1: 0.2, 2: 0.9, 3: 0.5, 4: 0.7, 5: 0.1})
    assert get_strategy("margin").order(candidates, 2, np.random.default_rng(0)) == [2, 4, 3, 1, 5]


def test_kcenter_orders_its_batch_first_then_the_rest_by_uncertainty():
    order = KCenterGreedy(pool_factor=3).order(clustered(), 3, np.random.default_rng(0))
    assert order[:2] == [1, 99] and order[2] in {11, 12, 13, 14}
    rest = [c for c in clustered() if c.item_id not in order[:3]]
    assert order[3:] == [c.item_id for c in sorted(rest, key=lambda c: (-c.uncertainty, c.item_id))]


def test_kcenter_needs_embeddings_only_for_its_pool():
    candidates = clustered() + [Candidate(item_id=500 + i, uncertainty=0.01, detail={}) for i in range(30)]
    assert KCenterGreedy(pool_factor=3).embedding_pool(3) == 9
    order = KCenterGreedy(pool_factor=3).order(candidates, 3, np.random.default_rng(0))
    assert len(order) == len(candidates) and order[-1] == 529


def test_cold_start_spreads_its_batch_then_draws_the_rest_at_random():
    ids = list(range(100, 120)) + [7, 8]
    features = np.array([[0.0, 0.0]] * 20 + [[50.0, 0.0], [0.0, 50.0]])
    order = cold_start_order(ids, features, 3, np.random.default_rng(1))
    assert sorted(order) == sorted(ids)
    assert {7, 8} <= set(order[:3])  # the two outliers are the farthest points from any start
    assert order == cold_start_order(ids[::-1], features[::-1], 3, np.random.default_rng(1))
    assert cold_start_order([], np.zeros((0, 2)), 3, np.random.default_rng(0)) == []
    with pytest.raises(ValueError, match="more than once"):
        cold_start_order([1, 1], np.zeros((2, 2)), 1, np.random.default_rng(0))
