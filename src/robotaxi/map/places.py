"""An offline geocoder built from the road map: streets, intersections and a list of places.

`Gazetteer.from_map(road_map)` indexes every named street of the network ("Valencia St"), every
junction where two named streets meet ("Valencia St & 16th St") and the places of a places
file (`places_sf.yaml`: stations, hospitals, parks, landmarks) that lie on the map.
`search(text)` answers an autocompleting prefix search (typos of one or two letters forgiven
when nothing matches exactly); `reverse(xy)` names a point ("Mission St & 24th St", "Mission
St near 24th St", or "near Dolores Park" off the named streets). There are no house numbers in
the network, so none are invented. Everything is in memory: no network access, no library
beyond numpy/scipy/yaml.
"""

from __future__ import annotations

import bisect
import difflib
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import yaml
from scipy.spatial import cKDTree

from robotaxi.core.errors import MapBuildError
from robotaxi.core.types import FloatArray
from robotaxi.map.model import RoadMap

PLACES_SF = Path(__file__).with_name("places_sf.yaml")
GRID_CITY = "grid"  # the generated city: its street names are generated, it has no places
PLACE_KINDS = ("station", "hospital", "park", "landmark")
MAX_QUERY_CHARS = 100
SAMPLE_STEP_M = 15.0  # street centre lines are sampled this densely for reverse look-ups
AT_CORNER_M = 40.0  # within this of a junction a point is "A & B"
NEAR_CROSS_M = 400.0  # within this of a cross street it is "A near B"
ON_STREET_M = 120.0  # a point further than this from any named street is named by a place
NEAR_PLACE_M = 400.0
PLACE_ON_MAP_M = 250.0  # places further than this from a kerb cannot be a pick-up: dropped

# the last word of a street name as riders read it
SUFFIXES = {
    "street": "St",
    "avenue": "Ave",
    "boulevard": "Blvd",
    "drive": "Dr",
    "road": "Rd",
    "place": "Pl",
    "lane": "Ln",
    "court": "Ct",
    "terrace": "Ter",
    "highway": "Hwy",
    "parkway": "Pkwy",
    "alley": "Aly",
    "circle": "Cir",
    "plaza": "Plz",
    "expressway": "Expy",
}
# full words a rider may type for an abbreviation (both are indexed)
EXPANSIONS = {abbr.lower(): word for word, abbr in SUFFIXES.items()} | {
    "n": "north",
    "s": "south",
    "e": "east",
    "w": "west",
}
# words that join two streets in a query ("Valencia & 16th", "16th and Valencia")
JOINERS = frozenset({"&", "and", "at", "/", "@"})
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|&|/|@")


def street_label(raw: str) -> str:
    """A network street name as riders read it: "Cesar Chavez Street" → "Cesar Chavez St";
    only the first of several names ("19th Avenue, CA 1", "A;B") is kept."""
    first = re.split(r"[;,]", raw, maxsplit=1)[0]
    words = first.split()
    if not words:
        return ""
    abbr = SUFFIXES.get(words[-1].lower())
    if abbr is not None and len(words) > 1:
        words[-1] = abbr
    return " ".join(words)


def tokens(text: str) -> list[str]:
    """Lower-case words of a name or a query, accents removed ("Cañada" → "canada")."""
    folded = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _WORD.findall(plain.replace("’", "'"))


def _index_words(name: str) -> set[str]:
    words = set(tokens(name)) - JOINERS
    for w in list(words):
        if w in EXPANSIONS:
            words.add(EXPANSIONS[w])
        if "'" in w:
            words.add(w.replace("'", ""))
    return words


def _street_order(name: str) -> tuple[bool, str]:
    # named streets before numbered ones: "Valencia St & 16th St"
    return (name[:1].isdigit(), name)


def _densify(lines: list[FloatArray], step_m: float) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Points along many polylines, at most `step_m` apart (every vertex kept), and the index
    of the polyline each came from: one batched computation for all the map's streets."""
    counts = np.array([len(line) - 1 for line in lines])
    pts = np.concatenate(lines)
    ends = np.cumsum(counts + 1)
    starts = ends - counts - 1
    # segment k runs from vertex a[k] to a[k] + 1 inside the stacked vertices
    a = np.concatenate([np.arange(s, e - 1) for s, e in zip(starts, ends, strict=True)])
    seg = pts[a + 1] - pts[a]
    pieces = np.maximum(1, np.ceil(np.hypot(seg[:, 0], seg[:, 1]) / step_m)).astype(np.int64)
    seg_line = np.repeat(np.arange(len(lines)), counts)
    k = np.repeat(np.arange(len(a)), pieces)
    frac = (np.arange(len(k)) - np.repeat(np.cumsum(pieces) - pieces, pieces)) / pieces[k]
    inner = pts[a[k]] + frac[:, None] * seg[k]
    last = pts[ends - 1]  # each polyline's end point
    xy = np.concatenate([inner, last])
    line_of = np.concatenate([seg_line[k], np.arange(len(lines))])
    return xy, line_of


@dataclass(frozen=True, slots=True)
class Place:
    """One thing a rider can search for: a street, an intersection or a named place."""

    name: str
    kind: str  # "street", "intersection", or a place kind: station, hospital, park, landmark
    x: float  # m, map frame
    y: float


@dataclass(frozen=True, slots=True)
class PlaceName:
    """What a point is called: `label` for the rider, and its parts."""

    label: str | None  # "Valencia St & 16th St", "Mission St near 24th St", "near Dolores Park"
    street: str | None
    cross_street: str | None
    place: str | None  # a named place within NEAR_PLACE_M, if any
    distance_m: float | None  # from the point to the street (or to the place when no street)


@dataclass(frozen=True, slots=True)
class PlaceSource:
    """A place as written in a places file, in lon/lat."""

    name: str
    kind: str
    lat: float
    lon: float


def read_places(path: Path = PLACES_SF) -> list[PlaceSource]:
    """The places of a YAML file: `places: [{name, kind, lat, lon}, ...]`."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MapBuildError(f"cannot read the places file {path}: {exc}") from None
    out = []
    for i, item in enumerate(doc.get("places", []) if isinstance(doc, dict) else []):
        try:
            place = PlaceSource(
                str(item["name"]), str(item["kind"]), float(item["lat"]), float(item["lon"])
            )
        except (KeyError, TypeError, ValueError):
            raise MapBuildError(
                f"place {i} of {path} needs name, kind, lat and lon: got {item!r}"
            ) from None
        if place.kind not in PLACE_KINDS:
            raise MapBuildError(
                f"place {place.name!r} in {path}: kind must be one of {PLACE_KINDS}"
            )
        out.append(place)
    return out


@dataclass(frozen=True)
class Gazetteer:
    """Streets, intersections and places of one road map, indexed for search and naming."""

    entries: tuple[Place, ...]  # in rank order: places, then streets, then intersections
    _words: tuple[str, ...] = field(repr=False)  # every indexed word, sorted
    _postings: tuple[frozenset[int], ...] = field(repr=False)  # entries holding each word
    _folded: tuple[str, ...] = field(repr=False)  # each entry's name as one folded string
    _word_sets: tuple[frozenset[str], ...] = field(repr=False)  # each entry's indexed words
    _by_initial: Mapping[str, tuple[str, ...]] = field(repr=False)
    # reverse geocoding: samples along named streets, and each street's junctions
    _street_tree: cKDTree | None = field(repr=False)
    _sample_street: tuple[str, ...] = field(repr=False)
    _crossings: Mapping[str, tuple[FloatArray, tuple[str, ...]]] = field(repr=False)
    _place_tree: cKDTree | None = field(repr=False)
    _street_len: Mapping[str, float] = field(repr=False)  # m of road of each street name
    _place_names: tuple[str, ...] = field(repr=False)

    @classmethod
    def from_map(cls, road_map: RoadMap, places: Iterable[PlaceSource] | None = None) -> Gazetteer:
        """Index a road map (≈2 s for the whole city). `places` default: the San Francisco
        places file for a real network (only places within reach of its kerbs are kept),
        none for the generated grid city (it only borrows the Mission's coordinates)."""
        node_sum: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        node_streets: dict[str, set[str]] = defaultdict(set)
        street_len: dict[str, float] = defaultdict(float)
        street_mid: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        lines: list[FloatArray] = []
        line_street: list[str] = []
        labels: dict[str, str] = {}
        for edge in road_map.edges.values():
            if edge.internal or not edge.lane_ids:
                continue
            line = road_map.lanes[edge.lane_ids[0]].centerline
            if len(line) < 2:
                continue
            for node, point in ((edge.from_node, line[0]), (edge.to_node, line[-1])):
                acc = node_sum[node]
                acc[0] += float(point[0])
                acc[1] += float(point[1])
                acc[2] += 1
            name = labels.get(edge.name)
            if name is None:
                name = labels[edge.name] = street_label(edge.name)
            if not name or not any(road_map.lanes[lid].allows_robotaxi for lid in edge.lane_ids):
                continue
            node_streets[edge.from_node].add(name)
            node_streets[edge.to_node].add(name)
            street_len[name] += edge.length
            mx, my = line[len(line) // 2]
            street_mid[name].append((float(mx), float(my), edge.length))
            lines.append(line)
            line_street.append(name)
        # a network without street names (sf-ne, from MATSim) has only its places
        samples: FloatArray | None = None
        sample_street: list[str] = []
        if lines:
            samples, sample_line = _densify(lines, SAMPLE_STEP_M)
            sample_street = [line_street[i] for i in sample_line]
        node_xy = {n: (s[0] / s[2], s[1] / s[2]) for n, s in node_sum.items()}

        # intersections: each pair of names meeting at a junction, at its junction nearest to
        # the middle of all the junctions where they meet (a street may cross another twice)
        pair_nodes: dict[tuple[str, str], list[str]] = defaultdict(list)
        crossings: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
        for node in sorted(node_streets):
            names = sorted(node_streets[node], key=_street_order)
            x, y = node_xy[node]
            for i, a in enumerate(names):
                for b in names[i + 1 :]:
                    pair_nodes[(a, b)].append(node)
                for b in names:
                    if b != a:
                        crossings[a].append((x, y, b))
        entries: list[tuple[tuple[int, float, int, str], Place]] = []
        for (a, b), nodes in pair_nodes.items():
            pts = np.array([node_xy[n] for n in nodes])
            best = int(np.argmin(np.hypot(*(pts - pts.mean(axis=0)).T)))
            name = f"{a} & {b}"
            weight = -(street_len[a] + street_len[b])
            x, y = (float(v) for v in pts[best])
            entries.append(((2, weight, len(name), name), Place(name, "intersection", x, y)))
        for name, mids in street_mid.items():
            arr = np.array(mids)
            centre = np.average(arr[:, :2], axis=0, weights=arr[:, 2])
            best = int(np.argmin(np.hypot(*(arr[:, :2] - centre).T)))
            x, y = float(arr[best, 0]), float(arr[best, 1])
            entries.append(((1, -street_len[name], len(name), name), Place(name, "street", x, y)))
        kept: list[Place] = []
        if places is None:
            places = [] if road_map.name == GRID_CITY else read_places()
        for p in places:
            px, py = road_map.projection.lonlat_to_xy(np.array([p.lon]), np.array([p.lat]))
            place = Place(p.name, p.kind, float(px[0]), float(py[0]))
            if bool(road_map.inside(np.array([place.x]), np.array([place.y]), PLACE_ON_MAP_M)[0]):
                kept.append(place)
                entries.append(((0, 0.0, len(p.name), p.name), place))
        ranked = tuple(place for _, place in sorted(entries, key=lambda e: e[0]))

        postings: dict[str, set[int]] = defaultdict(set)
        for i, place in enumerate(ranked):
            for word in _index_words(place.name):
                postings[word].add(i)
        words = tuple(sorted(postings))
        by_initial: dict[str, list[str]] = defaultdict(list)
        for w in words:
            by_initial[w[0]].append(w)
        return cls(
            entries=ranked,
            _words=words,
            _postings=tuple(frozenset(postings[w]) for w in words),
            _folded=tuple(" ".join(w for w in tokens(p.name) if w not in JOINERS) for p in ranked),
            _word_sets=tuple(frozenset(_index_words(p.name)) for p in ranked),
            _by_initial={k: tuple(v) for k, v in by_initial.items()},
            _street_tree=None if samples is None else cKDTree(samples),
            _sample_street=tuple(sample_street),
            _crossings={
                a: (np.array([(x, y) for x, y, _ in c]), tuple(b for _, _, b in c))
                for a, c in crossings.items()
            },
            _place_tree=cKDTree(np.array([(p.x, p.y) for p in kept])) if kept else None,
            _place_names=tuple(p.name for p in kept),
            _street_len=dict(street_len),
        )

    def __len__(self) -> int:
        return len(self.entries)

    def count(self, kind: str) -> int:
        return sum(1 for e in self.entries if e.kind == kind)

    # --- search -------------------------------------------------------------------------

    def search(self, text: str, limit: int = 8) -> list[Place]:
        """Entries whose words start with the query's words, in any order ("16th valen" finds
        "Valencia St & 16th St"), best first: names holding every word typed whole and
        starting like the query, then those holding the words whole, then those starting
        like it, then the rest; within each, places, streets (longest first), intersections.
        When a word matches nothing, the index's words within a letter or two of it are tried
        instead. Deterministic: the same query always gets the same list."""
        query = [w for w in tokens(text[:MAX_QUERY_CHARS]) if w not in JOINERS]
        if not query or limit < 1:
            return []
        # a query word a number (16) may also be written as an ordinal (16th): prefix covers it
        sets: list[set[int]] = []
        for word in dict.fromkeys(query):
            found = self._prefixed(word)
            if not found and len(word) >= 3:
                found = self._fuzzy(word)
            if not found:
                return []
            sets.append(found)
        sets.sort(key=len)
        hits = set(sets[0]).intersection(*sets[1:])
        # tiers: whole words and the name starts like the query; whole words; starts like
        # the query; the rest — each in the index's rank order
        folded_query = " ".join(query)
        whole = set(query)
        tiers: tuple[list[int], ...] = ([], [], [], [])
        for i in sorted(hits):
            tier = (0 if whole <= self._word_sets[i] else 2) + (
                0 if self._folded[i].startswith(folded_query) else 1
            )
            tiers[tier].append(i)
            if len(tiers[0]) >= limit:
                break
        ranked = [i for tier_ids in tiers for i in tier_ids]
        return [self.entries[i] for i in ranked[:limit]]

    def _prefixed(self, word: str) -> set[int]:
        lo = bisect.bisect_left(self._words, word)
        hi = bisect.bisect_left(self._words, word + "\uffff", lo)
        if hi - lo == 1:
            return set(self._postings[lo])
        out: set[int] = set()
        for k in range(lo, hi):
            out |= self._postings[k]
        return out

    def _fuzzy(self, word: str) -> set[int]:
        pool = self._by_initial.get(word[0], ())
        pool = tuple(w for w in pool if abs(len(w) - len(word)) <= 2)
        out: set[int] = set()
        for close in difflib.get_close_matches(word, pool, n=3, cutoff=0.75):
            out |= self._postings[bisect.bisect_left(self._words, close)]
        return out

    # --- reverse geocoding --------------------------------------------------------------

    def reverse(self, xy: tuple[float, float]) -> PlaceName:
        """Name a map point: "A & B" at a corner, "A near B" along a block, "A" on a street
        with no named cross street near, "near <place>" off the named streets; label None
        when nothing named is near."""
        place, place_m = None, math.inf
        if self._place_tree is not None:
            d, i = self._place_tree.query(xy, distance_upper_bound=NEAR_PLACE_M)
            if math.isfinite(d):
                place, place_m = self._place_names[int(i)], float(d)
        d, i = (
            (math.inf, 0)
            if self._street_tree is None
            else self._street_tree.query(xy, distance_upper_bound=ON_STREET_M)
        )
        if not math.isfinite(d):
            if place is None:
                return PlaceName(None, None, None, None, None)
            return PlaceName(f"near {place}", None, None, place, round(place_m, 1))
        street = self._sample_street[int(i)]
        cross, label = None, street
        found = self._crossings.get(street)
        if found is not None:
            pts, names = found
            dist = np.hypot(pts[:, 0] - xy[0], pts[:, 1] - xy[1])
            # at a junction of three or more streets, name the longest cross street
            ties = np.flatnonzero(dist <= dist.min() + 1.0)
            k = int(max(ties, key=lambda t: (self._street_len.get(names[t], 0.0), -t)))
            if dist[k] <= AT_CORNER_M:
                cross = names[k]
                a, b = sorted((street, cross), key=_street_order)
                label = f"{a} & {b}"
            elif dist[k] <= NEAR_CROSS_M:
                cross = names[k]
                label = f"{street} near {cross}"
        return PlaceName(label, street, cross, place, round(float(d), 1))
