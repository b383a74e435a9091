"""3D coronary trees on an ellipsoid heart (C-arm views and projection: xa_views.py).

Patient coordinates are LPS in millimetres (x to the patient's left, y posterior, z superior)
with the C-arm isocentre at the origin. The trees follow the anatomy closely enough that the
projection angle changes their 2D look the way it does in a cath lab: the RCA is a "C" in
LAO, an "L" in RAO; the LAD and LCX spread apart in RAO-caudal and open up in LAO-cranial.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learning.domain import CORONARY_ARTERIES, NEITHER, VESSEL_CLASSES

VESSELS = CORONARY_ARTERIES  # runs with a coronary tree to draw
RUN_VESSELS = VESSEL_CLASSES
# What a "neither" run shows: a non-selective aortic root injection (pigtail above the valve,
# the coronaries only faintly refluxing), a left ventriculogram (pigtail in the LV cavity), or a
# catheter at an ostium with no coronary filling (a test puff that refluxes into the root).
NEITHER_KINDS = ("aortogram", "ventriculogram", "no_fill")
_NEITHER_KIND_WEIGHTS = (0.35, 0.35, 0.3)
# Neither runs are filmed in the same views as coronary runs, drawn LCA:RCA in the cohort's
# proportion (1 + 2 x 0.6 of 4 runs are LCA), so the C-arm geometry cannot tell them apart.
NEITHER_VIEW_LCA = 0.55


@dataclass(frozen=True)
class Vessel3d:
    """One tube of a tree: centreline points, radii and contrast arrival distance (mm)."""

    name: str
    points: np.ndarray  # (n, 3)
    radius: np.ndarray  # (n,)
    arrival: np.ndarray  # (n,) path length from the ostium
    density: float = 1.0  # iodine concentration relative to a selective coronary injection


@dataclass(frozen=True)
class Tree3d:
    """A coronary tree with the guiding catheter that injects it."""

    vessel: str
    vessels: tuple[Vessel3d, ...]
    catheter: np.ndarray  # (n, 3) centreline from the ostium up the aorta
    ostium: np.ndarray  # (3,)
    heart_centre: np.ndarray  # (3,)
    heart_radius: float
    kind: str = ""  # for "neither" runs: one of NEITHER_KINDS
    framing: np.ndarray | None = None  # (n, 3) points the operator centres on (default: the vessels)


class _Heart:
    """An ellipsoid-like left ventricle with groove coordinates (t base->apex, phi, lift)."""

    def __init__(self, rng: np.random.Generator) -> None:
        scale = rng.uniform(0.88, 1.12)
        self.half_length = 52.0 * scale
        self.radius = 38.0 * scale
        axis = np.array([0.55, -0.45, -0.70]) + rng.normal(0, 0.08, 3)
        self.axis = axis / np.linalg.norm(axis)
        anterior = np.array([0.0, -1.0, 0.0])
        e1 = anterior - (anterior @ self.axis) * self.axis
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(e1, self.axis)
        if e2[0] < 0:  # e2 must point to the lateral (left) wall
            e2 = -e2
        twist = rng.normal(0.0, 0.15)
        self.e1 = np.cos(twist) * e1 + np.sin(twist) * e2
        self.e2 = -np.sin(twist) * e1 + np.cos(twist) * e2
        self.centre = rng.normal(0.0, 10.0, 3)

    def surface(self, t: np.ndarray, phi: np.ndarray, lift: np.ndarray) -> np.ndarray:
        """Return 3D points at groove coordinates; the base is blunter than the apex."""
        t = np.clip(t, -0.985, 0.995)
        p = np.where(t > 0, 2.0, 3.5)
        r = self.radius * (1.0 - np.abs(t) ** p) ** (1.0 / p) + lift
        radial = np.cos(phi)[:, None] * self.e1 + np.sin(phi)[:, None] * self.e2
        return self.centre + (self.half_length * t)[:, None] * self.axis + r[:, None] * radial


def _smooth_path(ctrl: np.ndarray, n: int, rng: np.random.Generator, wiggle: np.ndarray) -> np.ndarray:
    """Return n points along a smoothed polyline through ctrl (k, m) with small tortuosity."""
    knots = np.linspace(0.0, 1.0, len(ctrl))
    s = np.linspace(0.0, 1.0, n)
    out = np.stack([np.interp(s, knots, ctrl[:, j]) for j in range(ctrl.shape[1])], axis=1)
    width = max(3, n // 6)
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    padded = np.pad(out, ((width, width), (0, 0)), mode="edge")
    out = np.stack(
        [np.convolve(padded[:, j], kernel, mode="same")[width:-width] for j in range(out.shape[1])],
        axis=1,
    )
    out[0] = ctrl[0]  # branches must stay attached to their parent
    # Tortuosity: a few random sinusoids that vanish at the origin of the branch.
    for j, amp in enumerate(wiggle):
        if amp <= 0:
            continue
        for _ in range(2):
            freq = rng.uniform(1.5, 5.0)
            phase = rng.uniform(0, 2 * np.pi)
            out[:, j] += amp * np.sin(2 * np.pi * freq * s + phase) * np.minimum(s * 6, 1.0)
    return out


def _tube(name: str, points: np.ndarray, r0: float, r1: float, start_arrival: float) -> Vessel3d:
    """Return a tapered vessel along points starting at start_arrival mm from the ostium."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arrival = start_arrival + np.concatenate([[0.0], np.cumsum(seg)])
    frac = np.linspace(0.0, 1.0, len(points))
    radius = r0 + (r1 - r0) * frac**0.8
    return Vessel3d(name, points, radius, arrival)


def _with_lesion(v: Vessel3d, rng: np.random.Generator) -> Vessel3d:
    """Return v with a focal stenosis (30-85% diameter reduction) somewhere along it."""
    centre = rng.uniform(0.15, 0.7) * float(v.arrival[-1] - v.arrival[0]) + float(v.arrival[0])
    half_len = rng.uniform(2.0, 6.0)
    depth = rng.uniform(0.3, 0.85)
    narrowing = depth * np.exp(-0.5 * ((v.arrival - centre) / half_len) ** 2)
    return Vessel3d(v.name, v.points, v.radius * (1.0 - narrowing), v.arrival, v.density)


def _groove_vessel(
    heart: _Heart,
    rng: np.random.Generator,
    name: str,
    ctrl: list[tuple[float, float, float]],
    radii: tuple[float, float],
    start_arrival: float,
    n: int = 60,
) -> Vessel3d:
    """Return a vessel following groove coordinates ctrl = [(t, phi, lift), ...]."""
    path = _smooth_path(np.array(ctrl, float), n, rng, np.array([0.025, 0.03, 0.6]))
    pts = heart.surface(path[:, 0], path[:, 1], path[:, 2])
    return _tube(name, pts, radii[0], radii[1], start_arrival)


def _at(parent: Vessel3d, frac: float) -> tuple[np.ndarray, float, int]:
    """Return (point, arrival, index) at fraction frac of parent's length."""
    i = int(np.clip(round(frac * (len(parent.points) - 1)), 0, len(parent.points) - 1))
    return parent.points[i], float(parent.arrival[i]), i


def _straight(
    name: str,
    start: np.ndarray,
    direction: np.ndarray,
    length: float,
    radii: tuple[float, float],
    start_arrival: float,
    rng: np.random.Generator,
    bend: float = 0.15,
) -> Vessel3d:
    """Return a gently curved vessel leaving start along direction."""
    direction = direction / np.linalg.norm(direction)
    side = np.cross(direction, rng.normal(size=3))
    side /= np.linalg.norm(side)
    s = np.linspace(0.0, 1.0, 20)[:, None]
    pts = start + s * length * direction + (s**2) * length * bend * side
    return _tube(name, pts, radii[0], radii[1], start_arrival)


def _groove_coords(heart: _Heart, point: np.ndarray) -> tuple[float, float]:
    """Return approximate (t, phi) groove coordinates of a 3D point."""
    rel = point - heart.centre
    t = float(rel @ heart.axis) / heart.half_length
    phi = float(np.arctan2(rel @ heart.e2, rel @ heart.e1))
    return t, phi


def _catheter(ostium: np.ndarray, outward: np.ndarray, rng: np.random.Generator, right: bool) -> np.ndarray:
    """Return a Judkins-like catheter centreline from the ostium up the ascending aorta."""
    up = np.array([0.0, 0.0, 1.0])
    lateral = np.array([-1.0, 0.0, 0.0]) if right else np.array([1.0, 0.0, 0.0])
    outward = outward / np.linalg.norm(outward)
    ctrl = np.array(
        [
            ostium + 2 * outward,  # the tip sits just outside the ostium
            ostium + 12 * outward,
            ostium + 12 * outward + 35 * up - 15 * lateral + rng.normal(0, 4, 3),
            ostium + 10 * outward + 90 * up - 25 * lateral + rng.normal(0, 6, 3),
            ostium + 5 * outward + 200 * up - 30 * lateral,
        ]
    )
    return _smooth_path(ctrl, 80, rng, np.zeros(3))


def _left_tree(heart: _Heart, rng: np.random.Generator) -> Tree3d:
    """Return a left coronary tree: left main, LAD with diagonals/septals, LCX with OMs."""
    tb = -0.72 + rng.normal(0, 0.03)
    bif_phi = 0.32 + rng.normal(0, 0.05)
    bif = heart.surface(np.array([tb]), np.array([bif_phi]), np.array([3.0]))[0]
    to_aorta = -0.55 * heart.axis - 0.75 * heart.e2 + 0.25 * heart.e1
    lm_len = rng.uniform(8, 16)
    ostium = bif + lm_len * to_aorta / np.linalg.norm(to_aorta)
    lm = _tube("LM", np.linspace(ostium, bif, 12), 2.1, 1.9, 0.0)
    a0 = float(lm.arrival[-1])
    vessels = [lm]

    lad_end = rng.uniform(0.85, 1.0)
    lad = _groove_vessel(
        heart,
        rng,
        "LAD",
        [
            (tb, bif_phi, 3.0),
            (-0.45, 0.12, 3.0),
            (0.0, rng.normal(0.03, 0.05), 3.0),
            (0.5, rng.normal(0.0, 0.06), 2.5),
            (lad_end, 0.0, 2.0),
        ],
        (1.8, 0.55),
        a0,
        n=80,
    )
    vessels.append(lad)
    lcx_end = rng.uniform(2.0, 2.9)
    lcx = _groove_vessel(
        heart,
        rng,
        "LCX",
        [
            (tb, bif_phi, 4.0),
            (tb - 0.02, 0.9, 4.5),
            (tb + 0.02, 1.5, 4.5),
            (tb, 0.5 * (1.5 + lcx_end), 4.0),
            (tb + 0.08, lcx_end, 3.5),
        ],
        (1.6, 0.7),
        a0,
        n=70,
    )
    vessels.append(lcx)
    if rng.random() < 0.2:
        vessels.append(
            _groove_vessel(
                heart,
                rng,
                "RAMUS",
                [(tb, bif_phi, 3.5), (-0.35, 0.6, 3.0), (0.25, 0.75, 2.5)],
                (1.2, 0.45),
                a0,
                n=40,
            )
        )
    for k in range(int(rng.integers(1, 4))):
        frac = rng.uniform(0.12, 0.55)
        p, arr, _ = _at(lad, frac)
        t0, phi0 = _groove_coords(heart, p)
        span = rng.uniform(0.35, 0.6)
        vessels.append(
            _groove_vessel(
                heart,
                rng,
                f"D{k + 1}",
                [
                    (t0, phi0, 2.5),
                    (t0 + span * 0.45, phi0 + 0.35, 2.5),
                    (min(t0 + span, 0.9), phi0 + rng.uniform(0.7, 1.1), 2.0),
                ],
                (1.1, 0.4),
                arr,
                n=40,
            )
        )
    inward = -heart.e1 - 0.25 * heart.e2 + 0.45 * heart.axis
    for k in range(int(rng.integers(2, 5))):
        p, arr, _ = _at(lad, rng.uniform(0.1, 0.6))
        vessels.append(
            _straight(f"S{k + 1}", p, inward + rng.normal(0, 0.2, 3), rng.uniform(12, 24), (0.55, 0.25), arr, rng)
        )
    for k in range(int(rng.integers(1, 4))):
        p, arr, _ = _at(lcx, rng.uniform(0.25, 0.85))
        t0, phi0 = _groove_coords(heart, p)
        vessels.append(
            _groove_vessel(
                heart,
                rng,
                f"OM{k + 1}",
                [
                    (t0, phi0, 3.5),
                    (-0.3, phi0 + 0.12, 3.0),
                    (0.15, phi0 + 0.2, 2.5),
                    (rng.uniform(0.4, 0.7), phi0 + rng.uniform(0.15, 0.35), 2.0),
                ],
                (1.1, 0.4),
                arr,
                n=50,
            )
        )
    outward = ostium - bif
    catheter = _catheter(ostium, outward, rng, right=False)
    return Tree3d("LCA", tuple(vessels), catheter, ostium, heart.centre, heart.radius)


def _right_tree(heart: _Heart, rng: np.random.Generator) -> Tree3d:
    """Return a right coronary tree: RCA in the right AV groove, marginals, PDA and PLV."""
    tb = -0.70 + rng.normal(0, 0.03)
    rv = rng.uniform(8.0, 14.0)  # the right ventricle bulges beyond the LV ellipsoid
    start_phi = -0.25 + rng.normal(0, 0.05)
    entry = heart.surface(np.array([tb - 0.05]), np.array([start_phi]), np.array([rv]))[0]
    to_aorta = -0.6 * heart.axis - 0.25 * heart.e2 + 0.6 * heart.e1
    ostium = entry + rng.uniform(6, 12) * to_aorta / np.linalg.norm(to_aorta)
    prox = _tube("RCA-OSTIAL", np.linspace(ostium, entry, 8), 2.0, 1.95, 0.0)
    a0 = float(prox.arrival[-1])
    crux = -np.pi + rng.normal(0, 0.12)
    rca = _groove_vessel(
        heart,
        rng,
        "RCA",
        [
            (tb - 0.05, start_phi, rv),
            (tb, -0.9, rv),
            (tb + 0.03, -1.6, rv * 0.9),
            (tb, -2.3, rv * 0.6),
            (tb, -2.8, 5.0),
            (tb + 0.02, crux, 4.0),
        ],
        (1.95, 1.3),
        a0,
        n=90,
    )
    vessels = [prox, rca]
    _, arr_crux, _ = _at(rca, 1.0)
    vessels.append(
        _groove_vessel(
            heart,
            rng,
            "PDA",
            [
                (tb + 0.02, crux, 4.0),
                (-0.3, crux + rng.normal(0, 0.06), 3.0),
                (0.2, crux + rng.normal(0, 0.06), 2.5),
                (rng.uniform(0.5, 0.85), crux, 2.0),
            ],
            (1.1, 0.45),
            arr_crux,
            n=50,
        )
    )
    if rng.random() < 0.85:  # right dominance: the posterolateral branch continues on
        vessels.append(
            _groove_vessel(
                heart,
                rng,
                "PLV",
                [
                    (tb + 0.02, crux, 4.0),
                    (tb + 0.05, crux - 0.45, 3.5),
                    (rng.uniform(-0.35, -0.1), crux - rng.uniform(0.7, 1.0), 3.0),
                ],
                (1.0, 0.45),
                arr_crux,
                n=40,
            )
        )
    for k in range(int(rng.integers(1, 4))):
        p, arr, _ = _at(rca, rng.uniform(0.2, 0.65))
        t0, phi0 = _groove_coords(heart, p)
        vessels.append(
            _groove_vessel(
                heart,
                rng,
                f"AM{k + 1}",
                [
                    (t0, phi0, rv * 0.8),
                    (-0.25, phi0 + rng.normal(0.1, 0.1), rv * 0.6),
                    (rng.uniform(0.1, 0.5), phi0 + rng.normal(0.15, 0.1), 3.0),
                ],
                (0.85, 0.3),
                arr,
                n=40,
            )
        )
    p, arr, _ = _at(rca, 0.04)
    t0, phi0 = _groove_coords(heart, p)
    vessels.append(
        _groove_vessel(
            heart,
            rng,
            "CONUS",
            [(t0, phi0, rv), (t0 + 0.12, phi0 + 0.25, rv), (t0 + 0.2, 0.1, rv * 0.8)],
            (0.6, 0.25),
            arr,
            n=25,
        )
    )
    vessels.append(
        _straight("SAN", p, -heart.axis + 0.3 * rng.normal(size=3), rng.uniform(12, 20), (0.5, 0.25), arr, rng)
    )
    outward = ostium - entry
    catheter = _catheter(ostium, outward, rng, right=True)
    return Tree3d("RCA", tuple(vessels), catheter, ostium, heart.centre, heart.radius)


def _profile_tube(
    name: str, ctrl: np.ndarray, radii: np.ndarray, n: int, rng: np.random.Generator, density: float, tip: float
) -> Vessel3d:
    """Return a wide tube through ctrl with radii at the control points, filled outwards from fraction tip."""
    pts = _smooth_path(ctrl, n, rng, np.zeros(3))
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    radius = np.interp(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, len(radii)), radii)
    arrival = np.abs(cum - tip * cum[-1])
    return Vessel3d(name, pts, radius, arrival, density)


def _aorta(
    heart: _Heart, root: np.ndarray, rng: np.random.Generator, density: float, tip: float
) -> tuple[Vessel3d, np.ndarray]:
    """Return the aortic root, ascending aorta, arch and descending aorta, and its centreline."""
    up = np.array([0.0, 0.0, 1.0])
    ascend = np.array([-0.25, -0.1, 1.0]) + rng.normal(0, 0.08, 3)
    ascend /= np.linalg.norm(ascend)
    height = rng.uniform(55, 80)
    top = root + height * ascend
    arch = top + np.array([25.0, 30.0, 22.0]) + rng.normal(0, 4, 3)
    desc_top = arch + np.array([12.0, 18.0, -20.0])
    ctrl = np.array(
        [
            root + 9 * heart.axis,  # the valve plane, just above the LV outflow
            root,
            root + 0.5 * height * ascend,
            top,
            arch,
            desc_top,
            desc_top - 100 * up,
        ]
    )
    scale = rng.uniform(0.9, 1.15)
    radii = scale * np.array([11.0, 15.5, 14.0, 13.0, 12.0, 11.0, 10.0])
    tube = _profile_tube("AORTA", ctrl, radii, 70, rng, density, tip)
    return tube, tube.points


def _pigtail(tip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return the pigtail loop (radius ~4 mm) that ends at tip, as a centreline ending where the shaft begins."""
    a = rng.normal(size=3)
    b = rng.normal(size=3)
    a /= np.linalg.norm(a)
    b -= (b @ a) * a
    b /= np.linalg.norm(b)
    ang = np.linspace(0.0, 1.7 * np.pi, 16)
    r = 4.0
    loop = tip + r * (np.cos(ang)[:, None] * a + np.sin(ang)[:, None] * b) - r * a
    return loop


def _along(centre: np.ndarray, start: float, offset: np.ndarray) -> np.ndarray:
    """Return the centreline from fraction start onwards, shifted by offset, extended 60 mm up."""
    i = int(start * (len(centre) - 1))
    path = centre[i:] + offset
    return np.concatenate([path, path[-1:] + np.array([0.0, 0.0, 60.0])])


def _neither_tree(heart: _Heart, rng: np.random.Generator, kind: str) -> Tree3d:
    """Return what a non-coronary run opacifies: aortic root, LV cavity or nothing but a puff."""
    left = _left_tree(heart, rng)
    right = _right_tree(heart, rng)
    root = 0.5 * (left.ostium + right.ostium) - 6.0 * heart.axis + rng.normal(0, 2, 3)
    shaft_offset = rng.normal(0, 3, 3)
    vessels: list[Vessel3d] = []
    # Operators centre between the heart and the aortic root.
    framing = np.stack([heart.centre, root, 0.5 * (heart.centre + root)])
    if kind == "aortogram":
        aorta, centre = _aorta(heart, root, rng, rng.uniform(0.09, 0.16), tip=0.12)
        vessels.append(aorta)
        # Contrast in the root refluxes faintly into both coronary trees.
        faint = rng.uniform(0.15, 0.35)
        for v in left.vessels + right.vessels:
            vessels.append(Vessel3d(v.name, v.points, v.radius, v.arrival + 15.0, faint))
        tip = centre[int(0.12 * (len(centre) - 1))] + shaft_offset
        catheter = np.concatenate([_pigtail(tip, rng), _along(centre, 0.15, shaft_offset)])
    elif kind == "ventriculogram":
        # The cavity as a tube along the long axis whose radius follows the LV outline.
        t = -0.99 * np.cos(np.linspace(0.0, np.pi, 40))
        p = np.where(t > 0, 2.0, 3.5)
        cavity_r = rng.uniform(0.62, 0.78) * heart.radius * (1.0 - np.abs(t) ** p) ** (1.0 / p) + 1.0
        pts = heart.centre + (heart.half_length * 0.92 * t)[:, None] * heart.axis
        tip_t = rng.uniform(0.0, 0.35)
        arrival = np.abs(t - tip_t) * heart.half_length
        vessels.append(Vessel3d("LV", pts, cavity_r, arrival, rng.uniform(0.06, 0.11)))
        aorta, centre = _aorta(heart, root, rng, rng.uniform(0.05, 0.09), tip=0.0)
        # Ejected contrast reaches the aortic root after the cavity has filled.
        vessels.append(Vessel3d(aorta.name, aorta.points, aorta.radius, aorta.arrival + 60.0, aorta.density))
        tip = heart.centre + heart.half_length * 0.92 * tip_t * heart.axis + 0.3 * shaft_offset
        valve = centre[0] + shaft_offset
        inside = np.linspace(tip, valve, 10)[1:]
        catheter = np.concatenate([_pigtail(tip, rng), inside, _along(centre, 0.05, shaft_offset)])
    elif kind == "no_fill":
        # The catheter floats just outside an ostium without engaging it: the test puff
        # clouds the sinus and the aortic root for a moment and no coronary artery fills.
        tree = left if rng.random() < NEITHER_VIEW_LCA else right
        out = tree.catheter[min(8, len(tree.catheter) - 1)] - tree.catheter[0]
        out /= max(float(np.linalg.norm(out)), 1e-6)
        catheter = tree.catheter + rng.uniform(4.0, 10.0) * out
        tip = catheter[0]
        ascend = np.array([-0.25, -0.1, 1.0])
        ascend /= np.linalg.norm(ascend)
        ctrl = np.array([tip, 0.5 * (tip + root), root, root + rng.uniform(20, 35) * ascend])
        radii = np.array([2.5, 7.0, 11.0, 10.0]) * rng.uniform(0.85, 1.15)
        vessels.append(_profile_tube("PUFF", ctrl, radii, 20, rng, rng.uniform(0.08, 0.14), tip=0.0))
        # Framed on the ostium the operator was trying to engage.
        framing = np.stack([heart.centre, tree.ostium, 0.5 * (heart.centre + tree.ostium)])
    else:
        raise ValueError(f"unknown neither kind {kind!r}; expected one of {NEITHER_KINDS}")
    return Tree3d(NEITHER, tuple(vessels), catheter, root, heart.centre, heart.radius, kind, framing)


def sample_tree(vessel: str, rng: np.random.Generator, kind: str | None = None) -> Tree3d:
    """Return a randomised 3D tree of the given run type, with some lesions.

    For vessel "neither", kind picks what is opacified (one of NEITHER_KINDS; random if None).
    """
    if vessel == NEITHER:
        heart = _Heart(rng)
        if kind is None:
            kind = str(NEITHER_KINDS[int(rng.choice(len(NEITHER_KINDS), p=_NEITHER_KIND_WEIGHTS))])
        return _neither_tree(heart, rng, kind)
    if vessel not in VESSELS:
        raise ValueError(f"unknown vessel {vessel!r}; expected one of {RUN_VESSELS}")
    heart = _Heart(rng)
    tree = _left_tree(heart, rng) if vessel == "LCA" else _right_tree(heart, rng)
    major = {"LAD", "LCX", "RCA", "D1", "OM1", "PDA"}
    vessels = tuple(_with_lesion(v, rng) if v.name in major and rng.random() < 0.25 else v for v in tree.vessels)
    return Tree3d(tree.vessel, vessels, tree.catheter, tree.ostium, tree.heart_centre, tree.heart_radius)
