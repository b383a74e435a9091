"""Acquisition strategies: pick which scored items annotators should label next."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """One unlabelled item with its stored scores for one model version."""

    item_id: int
    uncertainty: float
    detail: dict[str, float]
    embedding: np.ndarray | None = None


class UnknownStrategy(ValueError):
    """Raised when no strategy is registered under the requested name."""


def _checked(candidates: Sequence[Candidate], k: int) -> list[Candidate]:
    """Return the candidates after rejecting a negative k and duplicate item ids."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    seen: set[int] = set()
    for candidate in candidates:
        if candidate.item_id in seen:
            raise ValueError(f"item {candidate.item_id} appears more than once among the candidates")
        seen.add(candidate.item_id)
    return list(candidates)


def _finite(value: float, what: str, item_id: int) -> float:
    """Return value as a float, refusing nan and infinities."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"item {item_id}: {what} is not a finite number ({value!r})")
    return number


class Strategy(ABC):
    """Choose up to k item ids from scored candidates, most informative first, without duplicates."""

    name: ClassVar[str]
    # The uncertainty-detail key the strategy ranks by (None: it needs none, or falls back to `uncertainty`).
    required_key: ClassVar[str | None] = None

    @abstractmethod
    def select(self, candidates: Sequence[Candidate], k: int, rng: np.random.Generator) -> list[int]:
        """Return at most k distinct item ids, best first."""

    def order(self, candidates: Sequence[Candidate], head: int, rng: np.random.Generator) -> list[int]:
        """Return every candidate's id in queue order: the strategy's pick of `head` first, then by uncertainty.

        Strategies whose choice is a plain ranking override this to rank everything at once.
        """
        checked = _checked(candidates, head)
        first = self.select(checked, min(head, len(checked)), rng)
        return first + _by_uncertainty([c for c in checked if c.item_id not in set(first)])

    def embedding_pool(self, head: int) -> int:
        """Return how many of the most uncertain candidates must carry embeddings for a queue of this head."""
        return 0


def _by_uncertainty(candidates: Sequence[Candidate]) -> list[int]:
    """Return the ids by uncertainty, highest first, ties by the lower id."""
    if not candidates:
        return []
    ids = np.array([c.item_id for c in candidates], dtype=np.int64)
    values = np.array([_finite(c.uncertainty, "uncertainty", c.item_id) for c in candidates])
    return ids[np.lexsort((ids, -values))].tolist()


class RandomStrategy(Strategy):
    """Pick items uniformly at random: the baseline every other strategy must beat."""

    name = "random"

    def order(self, candidates: Sequence[Candidate], head: int, rng: np.random.Generator) -> list[int]:
        """Return every id in a random order (the same for the same seed)."""
        return self.select(candidates, len(candidates), rng)

    def select(self, candidates: Sequence[Candidate], k: int, rng: np.random.Generator) -> list[int]:
        """Return k ids drawn without replacement from the candidates."""
        # Sorting first makes the draw depend only on the seed, not on the order rows came from the database.
        ids = sorted(c.item_id for c in _checked(candidates, k))
        return [ids[i] for i in rng.permutation(len(ids))[:k]]


class _ScoreStrategy(Strategy):
    """Rank candidates by one score, highest first, ties broken by the lower item id."""

    key: ClassVar[str]

    def score(self, candidate: Candidate) -> float:
        """Return the candidate's score under this strategy's detail key."""
        if self.key not in candidate.detail:
            raise ValueError(f"{self.name}: item {candidate.item_id} has no {self.key!r} score in its detail")
        return _finite(candidate.detail[self.key], repr(self.key), candidate.item_id)

    def select(self, candidates: Sequence[Candidate], k: int, rng: np.random.Generator) -> list[int]:
        """Return the k highest-scoring ids."""
        return self._ranked(_checked(candidates, k))[:k]

    def order(self, candidates: Sequence[Candidate], head: int, rng: np.random.Generator) -> list[int]:
        """Return every id by score, highest first."""
        return self._ranked(_checked(candidates, head))

    def _ranked(self, candidates: list[Candidate]) -> list[int]:
        if not candidates:
            return []
        ids = np.array([c.item_id for c in candidates], dtype=np.int64)
        values = np.array([self.score(c) for c in candidates])
        return ids[np.lexsort((ids, -values))].tolist()


class LeastConfidence(_ScoreStrategy):
    """Prefer items whose top class is least probable; uses ``uncertainty`` when the detail lacks the key."""

    name = "least_confidence"
    key = "least_confidence"

    def score(self, candidate: Candidate) -> float:
        """Return detail["least_confidence"], or the candidate's overall uncertainty when absent."""
        value = candidate.detail.get(self.key, candidate.uncertainty)
        return _finite(value, repr(self.key), candidate.item_id)


class MarginStrategy(_ScoreStrategy):
    """Prefer items whose two most probable classes are closest."""

    name = "margin"
    key = "margin"
    required_key = "margin"


class EntropyStrategy(_ScoreStrategy):
    """Prefer items with the highest predictive entropy."""

    name = "entropy"
    key = "entropy"
    required_key = "entropy"


class BaldStrategy(_ScoreStrategy):
    """Prefer items where Monte Carlo samples disagree most (BALD mutual information)."""

    name = "bald"
    key = "bald"
    required_key = "bald"


class TtaDisagreement(_ScoreStrategy):
    """Prefer OCT frames whose rotated predictions overlap least."""

    name = "tta_disagreement"
    key = "tta_disagreement"
    required_key = "tta_disagreement"


class KCenterGreedy(Strategy):
    """Among the most uncertain candidates, pick a spread-out batch by k-center greedy over embeddings."""

    name = "kcenter_uncertain"

    def __init__(self, pool_factor: int = 10) -> None:
        if pool_factor < 1:
            raise ValueError(f"pool_factor must be >= 1, got {pool_factor}")
        self.pool_factor = pool_factor

    def embedding_pool(self, head: int) -> int:
        """Return the pool the batch is picked from: the pool_factor x head most uncertain candidates."""
        return self.pool_factor * head

    def select(self, candidates: Sequence[Candidate], k: int, rng: np.random.Generator) -> list[int]:
        """Return k ids: the most uncertain first, then each farthest from those already picked."""
        checked = _checked(candidates, k)
        if k == 0 or not checked:
            return []
        ranked = sorted(checked, key=lambda c: (-_finite(c.uncertainty, "uncertainty", c.item_id), c.item_id))
        # Only the pool needs embeddings: a queue of a million items loads vectors for its head alone.
        pool = ranked[: max(k, self.pool_factor * k)]
        points = self._embeddings(pool)
        chosen = [0]
        nearest = np.linalg.norm(points - points[0], axis=1)
        nearest[0] = -np.inf
        while len(chosen) < min(k, len(pool)):
            # Pool order is (uncertainty desc, id asc); among equal distances prefer the lowest item id.
            best = max(
                (i for i in range(len(pool)) if nearest[i] != -np.inf),
                key=lambda i: (nearest[i], -pool[i].item_id),
            )
            chosen.append(best)
            nearest = np.minimum(nearest, np.linalg.norm(points - points[best], axis=1))
            nearest[chosen] = -np.inf
        return [pool[i].item_id for i in chosen]

    @staticmethod
    def _embeddings(candidates: Sequence[Candidate]) -> np.ndarray:
        """Return the embeddings stacked as (n, d), refusing missing or mismatched vectors."""
        vectors: list[np.ndarray] = []
        for candidate in candidates:
            if candidate.embedding is None:
                raise ValueError(f"kcenter_uncertain: item {candidate.item_id} has no embedding")
            vector = np.asarray(candidate.embedding, dtype=np.float64)
            if vector.ndim != 1 or (vectors and vector.shape != vectors[0].shape):
                expected = vectors[0].shape if vectors else "a 1-D vector"
                raise ValueError(
                    f"kcenter_uncertain: item {candidate.item_id} embedding has shape {vector.shape}, "
                    f"expected {expected}"
                )
            if not np.all(np.isfinite(vector)):
                raise ValueError(f"kcenter_uncertain: item {candidate.item_id} embedding is not finite")
            vectors.append(vector)
        return np.stack(vectors)


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        RandomStrategy,
        LeastConfidence,
        MarginStrategy,
        EntropyStrategy,
        BaldStrategy,
        TtaDisagreement,
        KCenterGreedy,
    )
}


def cold_start_order(ids: Sequence[int], features: np.ndarray, head: int, rng: np.random.Generator) -> list[int]:
    """Return a queue order before any model exists: a spread-out batch of `head` items, then the rest at random.

    The batch is k-center greedy over the items' own features (e.g. the C-arm geometry of a run, a frame's
    place in its pullback, a patient's clinical features), standardised, starting from a random item.
    """
    keys = np.asarray(ids, dtype=np.int64)
    if head < 0:
        raise ValueError(f"head must be >= 0, got {head}")
    if len(keys) == 0:
        return []
    if len(np.unique(keys)) != len(keys):
        raise ValueError("an item appears more than once among the cold-start candidates")
    points: np.ndarray = np.asarray(features, dtype=np.float64).reshape(len(keys), -1)
    order = np.argsort(keys, kind="stable")  # depend on the seed only, not on the order rows arrived in
    keys, points = keys[order], np.nan_to_num(points[order])
    spread = points.std(axis=0)
    points = (points - points.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    first = int(rng.integers(len(keys)))
    chosen = [first]
    nearest = np.linalg.norm(points - points[first], axis=1)
    nearest[first] = -np.inf
    for _ in range(min(head, len(keys)) - 1):
        best = int(np.argmax(nearest))
        chosen.append(best)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[best], axis=1))
        nearest[chosen] = -np.inf
    rest = np.setdiff1d(np.arange(len(keys)), chosen, assume_unique=True)
    return keys[chosen].tolist() + keys[rng.permutation(rest)].tolist()


def get_strategy(name: str) -> Strategy:
    """Return a fresh instance of the strategy registered under name."""
    try:
        return STRATEGIES[name]()
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise UnknownStrategy(f"unknown acquisition strategy {name!r}; known: {known}") from None
