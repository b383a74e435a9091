"""Territory roll-up of 17-segment SPECT scores against hand-computed values."""

from __future__ import annotations

import pytest

from learning.spect_scoring import TerritoryScore, patient_abnormal, territory_flags, territory_rollup

ZERO = [0] * 17


def scores(**by_segment: int) -> list[int]:
    """Return 17 scores, all 0 except the given ones (s7=3 sets segment 7)."""
    out = [0] * 17
    for key, value in by_segment.items():
        out[int(key[1:]) - 1] = value
    return out


def summary(rollup: dict[str, TerritoryScore]) -> dict[str, tuple[int, int, int, bool]]:
    return {name: (t.sss, t.srs, t.sds, t.abnormal) for name, t in rollup.items()}


def test_a_normal_read_is_all_zero_and_nothing_is_abnormal():
    rollup = territory_rollup(ZERO, ZERO)
    assert summary(rollup) == {"LAD": (0, 0, 0, False), "RCA": (0, 0, 0, False), "LCX": (0, 0, 0, False)}
    assert patient_abnormal(rollup) is False


def test_hand_computed_mixed_read():
    # Stress: LAD 1:2 7:3 13:1 17:1 = 7; RCA 4:2 10:1 = 3; LCX 5:1 16:2 = 3.
    stress = scores(s1=2, s7=3, s13=1, s17=1, s4=2, s10=1, s5=1, s16=2)
    # Rest: LAD 7:1 = 1; RCA 4:2 10:1 15:1 = 4 (more than stress: SDS -1); LCX 0.
    rest = scores(s7=1, s4=2, s10=1, s15=1)
    assert summary(territory_rollup(stress, rest)) == {
        "LAD": (7, 1, 6, True),
        "RCA": (3, 4, -1, False),
        "LCX": (3, 0, 3, False),
    }


def test_every_segment_counts_once_in_its_own_territory():
    rollup = territory_rollup([s % 5 for s in range(1, 18)], ZERO)
    # Segment s scored s % 5: LAD 1+2+2+3+3+4+2 = 17; RCA 3+4+4+0+0 = 11; LCX 0+1+1+2+1 = 5.
    assert (rollup["LAD"].sss, rollup["RCA"].sss, rollup["LCX"].sss) == (17, 11, 5)
    assert sum(t.sss for t in rollup.values()) == sum(s % 5 for s in range(1, 18))


@pytest.mark.parametrize(
    ("stress", "territory"),
    [
        (scores(s1=1, s2=1, s14=1, s17=1), "LAD"),
        (scores(s3=4), "RCA"),
        (scores(s11=2, s12=2), "LCX"),
    ],
    ids=["LAD-four-ones", "RCA-one-absent", "LCX-two-moderate"],
)
def test_exactly_four_in_one_territory_is_abnormal_and_only_there(stress, territory):
    rollup = territory_rollup(stress, ZERO)
    assert {name for name, t in rollup.items() if t.abnormal} == {territory}
    assert rollup[territory].sss == 4 and rollup[territory].sds == 4
    assert patient_abnormal(rollup) is True


def test_three_is_below_the_threshold_even_spread_over_territories():
    # 3 in each territory: 9 in total, yet no territory reaches 4.
    rollup = territory_rollup(scores(s1=3, s4=3, s6=3), ZERO)
    assert [t.sss for t in rollup.values()] == [3, 3, 3]
    assert not any(t.abnormal for t in rollup.values())


def test_rest_scores_never_make_a_territory_abnormal():
    rollup = territory_rollup(ZERO, scores(s1=4, s2=4))
    assert rollup["LAD"] == TerritoryScore("LAD", 0, 8, -8, False)


def test_override_clears_a_flag_and_patient_becomes_normal():
    rollup = territory_rollup(scores(s3=4), ZERO)
    overrides = {"RCA": {"abnormal": False, "reason": "inferior attenuation artefact"}}
    assert territory_flags(rollup, overrides) == {"LAD": False, "RCA": False, "LCX": False}
    assert patient_abnormal(rollup, overrides) is False
    assert patient_abnormal(rollup) is True


def test_override_raises_a_flag_below_the_threshold():
    rollup = territory_rollup(scores(s5=2), ZERO)
    overrides = {"LCX": {"abnormal": True, "reason": "transient ischaemic dilation"}}
    assert territory_flags(rollup, overrides) == {"LAD": False, "RCA": False, "LCX": True}
    assert patient_abnormal(rollup, overrides) is True


def test_override_of_one_territory_leaves_another_abnormal_patient_abnormal():
    rollup = territory_rollup(scores(s1=4, s3=4), ZERO)
    assert patient_abnormal(rollup, {"RCA": {"abnormal": False, "reason": "artefact"}}) is True


def test_override_of_an_unknown_territory_is_refused():
    with pytest.raises(ValueError, match="LM"):
        territory_flags(territory_rollup(ZERO, ZERO), {"LM": {"abnormal": True, "reason": "x"}})


@pytest.mark.parametrize(
    ("stress", "words"),
    [
        ([0] * 16, "expected 17"),
        ([0] * 16 + [5], "segment 17 score"),
        ([-1] + [0] * 16, "segment 1 score"),
        ([0.5] + [0] * 16, "segment 1 score"),
        ([True] + [0] * 16, "segment 1 score"),
    ],
    ids=["too-short", "above-4", "negative", "fraction", "bool"],
)
def test_bad_score_vectors_are_refused(stress, words):
    with pytest.raises(ValueError, match=words):
        territory_rollup(stress, ZERO)
