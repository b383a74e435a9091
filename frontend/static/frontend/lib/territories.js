// AHA 17-segment model in the browser: coronary territories, the bull's-eye layout and the roll-up.
// Mirrors learning/domain.py and learning/spect_scoring.py (tests check the two agree).

export const SEGMENT_COUNT = 17;
export const MAX_SCORE = 4;
export const ABNORMAL_SUMMED_SCORE = 4;

export const TERRITORY_SEGMENTS = Object.freeze({
  LAD: Object.freeze([1, 2, 7, 8, 13, 14, 17]),
  RCA: Object.freeze([3, 4, 9, 10, 15]),
  LCX: Object.freeze([5, 6, 11, 12, 16]),
});
export const TERRITORIES = Object.freeze(Object.keys(TERRITORY_SEGMENTS));

export const SEGMENT_TERRITORY = Object.freeze(
  Object.fromEntries(Object.entries(TERRITORY_SEGMENTS).flatMap(([name, segs]) => segs.map((s) => [s, name]))),
);

export const SEGMENT_NAMES = Object.freeze([
  "basal anterior",
  "basal anteroseptal",
  "basal inferoseptal",
  "basal inferior",
  "basal inferolateral",
  "basal anterolateral",
  "mid anterior",
  "mid anteroseptal",
  "mid inferoseptal",
  "mid inferior",
  "mid inferolateral",
  "mid anterolateral",
  "apical anterior",
  "apical septal",
  "apical inferior",
  "apical lateral",
  "apex",
]);

// Ring boundaries as fractions of the map radius: apex, apical, mid, basal.
export const RING_EDGES = Object.freeze([0, 0.22, 0.48, 0.74, 1.0]);

/** Return where a segment lies on the bull's-eye: radii (fractions) and angles in degrees,
 * counter-clockwise from 3 o'clock as seen on screen (segment 1 at the top, septum on the left). */
export function segmentGeometry(segment) {
  if (segment === 17) return { inner: 0, outer: RING_EDGES[1], start: 0, end: 360 };
  if (segment >= 13) {
    const start = 45 + 90 * (segment - 13);
    return { inner: RING_EDGES[1], outer: RING_EDGES[2], start, end: start + 90 };
  }
  const ring = segment >= 7 ? 2 : 3;
  const start = 60 + 60 * ((segment - 1) % 6);
  return { inner: RING_EDGES[ring], outer: RING_EDGES[ring + 1], start, end: start + 60 };
}

/** Return screen [x, y] of a polar position (y grows downward, angles counter-clockwise). */
export function point(radius, degrees, cx = 0, cy = 0) {
  const a = (degrees * Math.PI) / 180;
  return [cx + radius * Math.cos(a), cy - radius * Math.sin(a)];
}

/** Return an SVG path of a segment on a bull's-eye of the given radius and centre. */
export function segmentPath(segment, radius, cx = 0, cy = 0) {
  const g = segmentGeometry(segment);
  const [ri, ro] = [g.inner * radius, g.outer * radius];
  if (segment === 17) return `M ${cx - ro} ${cy} a ${ro} ${ro} 0 1 0 ${2 * ro} 0 a ${ro} ${ro} 0 1 0 ${-2 * ro} 0 Z`;
  const f = (n) => n.toFixed(2);
  const [a, b, c, d] = [
    point(ro, g.start, cx, cy),
    point(ro, g.end, cx, cy),
    point(ri, g.end, cx, cy),
    point(ri, g.start, cx, cy),
  ];
  return `M ${f(a[0])} ${f(a[1])} A ${ro} ${ro} 0 0 0 ${f(b[0])} ${f(b[1])} L ${f(c[0])} ${f(c[1])} A ${ri} ${ri} 0 0 1 ${f(d[0])} ${f(d[1])} Z`;
}

/** Return where a segment's label sits: radius fraction and angle (the apex counts as the top). */
export function segmentCentre(segment) {
  const g = segmentGeometry(segment);
  return segment === 17 ? { radius: 0, angle: 90 } : { radius: (g.inner + g.outer) / 2, angle: (g.start + g.end) / 2 };
}

function ringOf(segment) {
  if (segment === 17) return 0;
  return segment >= 13 ? 1 : segment >= 7 ? 2 : 3;
}

const RING_SEGMENTS = [[17], [13, 14, 15, 16], [7, 8, 9, 10, 11, 12], [1, 2, 3, 4, 5, 6]];

/** Return the segment one ring outward (+1) or inward (-1) nearest in angle, or the same one at the edge. */
export function neighbourRing(segment, step) {
  const ring = ringOf(segment) + step;
  if (ring < 0 || ring > 3) return segment;
  const angle = segmentCentre(segment).angle;
  const gap = (s) => Math.abs(((segmentCentre(s).angle - angle + 540) % 360) - 180);
  return RING_SEGMENTS[ring].reduce((best, s) => (gap(s) < gap(best) ? s : best));
}

function checked(scores, name) {
  if (!Array.isArray(scores) || scores.length !== SEGMENT_COUNT) {
    throw new RangeError(`${name}: expected ${SEGMENT_COUNT} segment scores`);
  }
  scores.forEach((score, index) => {
    if (!Number.isInteger(score) || score < 0 || score > MAX_SCORE) {
      throw new RangeError(`${name}: segment ${index + 1} score must be an integer 0-${MAX_SCORE}`);
    }
  });
  return scores;
}

/** Return {LAD: {sss, srs, sds, abnormal}, ...}: summed stress, rest and difference scores. */
export function territoryRollup(stress, rest) {
  checked(stress, "stress");
  checked(rest, "rest");
  const rollup = {};
  for (const [name, segments] of Object.entries(TERRITORY_SEGMENTS)) {
    const sss = segments.reduce((sum, s) => sum + stress[s - 1], 0);
    const srs = segments.reduce((sum, s) => sum + rest[s - 1], 0);
    rollup[name] = { sss, srs, sds: sss - srs, abnormal: sss >= ABNORMAL_SUMMED_SCORE };
  }
  return rollup;
}

/** Return each territory's abnormal flag after overrides ({LAD: {abnormal, reason}}). */
export function territoryFlags(rollup, overrides = {}) {
  return Object.fromEntries(
    Object.entries(rollup).map(([name, t]) => [
      name,
      name in overrides ? Boolean(overrides[name].abnormal) : t.abnormal,
    ]),
  );
}

/** Return whether any territory is abnormal once the overrides are applied. */
export function patientAbnormal(rollup, overrides = {}) {
  return Object.values(territoryFlags(rollup, overrides)).some(Boolean);
}

/** Return obstructive disease by ICA: left main >= 50% (LAD and LCX) or a vessel >= 70%; null counts as 0. */
export function icaObstructive({ stenosis_lm: lm, stenosis_lad: lad, stenosis_lcx: lcx, stenosis_rca: rca }) {
  const leftMain = (lm ?? 0) >= 50;
  const result = { LAD: (lad ?? 0) >= 70 || leftMain, RCA: (rca ?? 0) >= 70, LCX: (lcx ?? 0) >= 70 || leftMain };
  return { ...result, any: result.LAD || result.RCA || result.LCX };
}
