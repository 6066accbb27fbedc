"""Building road networks with SUMO's own tools, cached by content hash.

Four sources, one result (a SUMO `.net.xml` plus a small geo-reference sidecar):
- an OpenStreetMap file through `netconvert --osm-files` with urban-driving options;
- SUMO plain XML (nodes in lon/lat, edges typed by OSM road class) through `netconvert
  --node-files --edge-files`: the whole of San Francisco (`sf`);
- a MATSim network through `netconvert --matsim-files` (node coordinates reprojected first):
  north-east San Francisco (`sf-ne`);
- a generated grid city through `netgenerate` (the built-in default, no data needed).

SUMO's mesoscopic model gets the same network with every edge centre to centre
(`meso_lengths`), cached beside it.

The cache key hashes the input bytes, the options and the SUMO version, so a changed file
or option rebuilds and an unchanged one is reused. Outputs are written to a temporary name
and renamed into place, so a failed build never leaves a half-written network behind.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robotaxi.core.errors import DataNotFoundError, MapBuildError
from robotaxi.core.types import FloatArray
from robotaxi.map.meso_lengths import meso_lengths
from robotaxi.map.restrictions import (
    RESTRICTIONS_SF,
    closed_edges,
    load_restrictions,
    read_plain_city,
    restriction_patch,
)
from robotaxi.map.signal_clusters import SIGNAL_CLUSTER_M, signal_cluster_patch

# Where the named San Francisco sources live inside the shared data folder.
SF_MISSION_OSM = Path("sf/osm/sf_mission_2014.osm")
SF_MATSIM = Path("sf/network/sf_matsim_network_epsg26743.xml.gz")
SF_CITY_NODES = Path("sf/city/sf.nod.xml.gz")  # its edges: sf.edg.xml.gz beside it
# bump when `meso_lengths` changes what it writes
MESO_LENGTHS_VERSION = b"meso-lengths-v1"
NAMED_CITIES = ("grid", "sf-mission", "sf-ne", "sf")
# what each named city is built from, relative to the data folder, and how
_NAMED_SOURCES: dict[str, tuple[str, Path]] = {
    "sf-mission": ("osm", SF_MISSION_OSM),
    "sf-ne": ("matsim", SF_MATSIM),
    "sf": ("plain", SF_CITY_NODES),
}

# The grid city sits on the Mission so that lat/lon shown in the web pages are plausible.
GRID_ORIGIN_LONLAT = (-122.4310, 37.7360)
UTM10N = "EPSG:32610"

OSM_OPTIONS = (
    "--geometry.remove",
    "--roundabouts.guess",
    "--ramps.guess",
    "--junctions.join",
    "--tls.guess-signals",
    "--tls.discard-simple",
    "--tls.join",
    "--keep-edges.by-vclass",
    "passenger",
    "--remove-edges.isolated",
    "--output.street-names",
    "--output.original-names",
    "--no-turnarounds.except-deadend",
)
# netconvert 1.28 crashes (SIGSEGV) on this MATSim network as soon as any junction is
# signalised (--tls.guess, or traffic_light nodes given in plain XML): the `sf-ne` city is
# built without signals until that is fixed upstream.
MATSIM_OPTIONS = (
    "--geometry.remove",
    "--junctions.join",
    "--keep-edges.by-vclass",
    "passenger",
    "--remove-edges.isolated",
    "--no-turnarounds.except-deadend",
)

# The whole city from SUMO plain XML (lon/lat nodes; the 1,281 DataSF signals are
# `traffic_light` nodes; edge `type`s are OSM road classes, which the type map turns into
# lanes, speed limits and who may drive). The type map is SUMO's OSM one with US urban limits
# (California's 25 mph prima facie limit, SF's posted arterial and freeway limits; sources in
# the file): SUMO's European defaults (primary 100 km/h, residential 50 km/h) made free flow
# twice too fast and jammed the 2-lane freeways. Turnarounds only at dead ends, as for OSM.
PLAIN_TYPE_MAP = Path(__file__).with_name("us_urban.typ.xml")
# streets closed to private cars (car-free Market Street), patched in before netconvert
CITY_RESTRICTIONS = {"sf": RESTRICTIONS_SF}
PLAIN_OPTIONS = (
    "--proj.plain-geo",
    "--proj.utm",
    "--geometry.remove",
    "--junctions.join",
    "--ramps.guess",
    "--tls.guess-signals",
    "--tls.discard-simple",
    "--tls.join",
    "--remove-edges.isolated",
    "--keep-edges.components",
    "1",
    "--output.street-names",
    "--no-turnarounds.except-deadend",
)


@dataclass(frozen=True, slots=True)
class GridSpec:
    """The generated grid city: streets every `block_m`, four-lane arterials on some lines."""

    junctions: int = 11  # per direction → (junctions − 1) × block_m ≈ 3 km
    block_m: float = 300.0
    street_speed_mps: float = 11.18  # 25 mph
    arterial_speed_mps: float = 15.65  # 35 mph
    arterial_lines: tuple[int, ...] = (2, 5, 8)


@dataclass(frozen=True, slots=True)
class BuiltNetwork:
    """A network on disk: the SUMO net and how its x/y relate to lon/lat."""

    name: str
    net_file: Path
    # a pyproj CRS string and the offset netconvert added (x_net = x_crs + offset)
    crs: str
    offset: tuple[float, float]
    source: str
    # True when the network was reused from the cache rather than built by this call
    from_cache: bool = False


def sumo_version() -> str:
    import sumolib  # the version lives in the wheel; map reads SUMO files, never runs SUMO

    return str(getattr(sumolib, "__version__", "unknown"))


def _sumo_home() -> Path:
    try:
        import sumo  # the eclipse-sumo wheel: binaries under sumo/bin, PROJ data under sumo/data
    except ImportError:
        raise MapBuildError(
            "SUMO is not installed: run `make setup` (pip install -e .), which brings eclipse-sumo"
        ) from None
    return Path(sumo.SUMO_HOME)


def _binary(name: str) -> str:
    candidate = _sumo_home() / "bin" / name
    if not candidate.exists():
        raise MapBuildError(
            f"SUMO's {name} is missing from {candidate.parent}: reinstall eclipse-sumo"
        )
    return str(candidate)


def _run(cmd: Sequence[str], what: str) -> None:
    home = _sumo_home()
    env = dict(os.environ, SUMO_HOME=str(home))
    # SUMO's netconvert links its own PROJ; pyproj's data folder (set once pyproj is imported)
    # does not match it and makes netconvert crash, so point PROJ at the wheel's own data.
    env["PROJ_DATA"] = env["PROJ_LIB"] = str(home / "data" / "proj")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "Error" in ln]
        tail = (proc.stderr + proc.stdout).strip().splitlines()
        first = (
            lines[0].strip() if lines else (tail[-1] if tail else f"exit code {proc.returncode}")
        )
        raise MapBuildError(f"{what} failed: {first}")


def _hash(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def resolve_source(city: str, data_dir: Path) -> tuple[str, Path | None]:
    """Map a city name or path to (kind, path): kind is 'grid', 'osm', 'matsim' or 'plain'.

    For 'plain' the path is the node file; the edge file sits beside it (`_plain_edges`).
    """
    if city == "grid":
        return "grid", None
    if city in _NAMED_SOURCES:
        kind, rel = _NAMED_SOURCES[city]
        if not data_dir.is_dir():
            raise DataNotFoundError(
                f"data folder {data_dir} not found (city {city!r} needs it): "
                "put the shared data there or pass --data-dir"
            )
        needed = [data_dir / rel] + ([_plain_edges(data_dir / rel)] if kind == "plain" else [])
        for path in needed:
            if not path.is_file():
                raise DataNotFoundError(
                    f"{path} not found (city {city!r} needs it): check --data-dir"
                )
        return kind, data_dir / rel
    path = Path(city)
    if not path.exists():
        raise MapBuildError(
            f"unknown city {city!r}: use one of {', '.join(NAMED_CITIES)} "
            "or a path to an .osm/.osm.gz/.osm.pbf or MATSim .xml(.gz) file"
        )
    name = path.name.lower()
    if name.endswith((".osm", ".osm.gz", ".osm.xml", ".osm.pbf")):
        return "osm", path
    if name.endswith((".xml", ".xml.gz")):
        return "matsim", path
    raise MapBuildError(
        f"cannot tell the format of {path}: name it .osm, .osm.gz, .osm.pbf (OpenStreetMap) "
        "or .xml/.xml.gz (MATSim network)"
    )


def _plain_edges(nodes: Path) -> Path:
    """The edge file that goes with a plain-XML node file: x.nod.xml(.gz) → x.edg.xml(.gz)."""
    return nodes.with_name(nodes.name.replace(".nod.xml", ".edg.xml"))


def build_network(
    city: str, data_dir: Path, cache_dir: Path, *, traffic_model: str = "micro"
) -> BuiltNetwork:
    """Build (or reuse from the cache) the SUMO network for a named city or a file.

    For SUMO's mesoscopic model (`traffic_model="meso"`) the network is the microscopic one
    with every edge as long as it is centre to centre (`meso_lengths`: meso has no junction
    interiors), cached beside it under the same name."""
    built = _build_micro(city, data_dir, cache_dir)
    if traffic_model != "meso":
        return built
    key = _hash(built.net_file.name.encode(), MESO_LENGTHS_VERSION)

    def lengthen(out: Path) -> tuple[str, tuple[float, float]]:
        meso_lengths(built.net_file, out)
        return built.crs, built.offset

    meso = _cached(cache_dir.resolve(), built.name, key, lengthen, f"{built.source} (meso lengths)")
    return dataclasses.replace(meso, from_cache=meso.from_cache and built.from_cache)


def _build_micro(city: str, data_dir: Path, cache_dir: Path) -> BuiltNetwork:
    kind, path = resolve_source(city, data_dir)
    cache_dir = cache_dir.resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    if kind == "grid":
        spec = GridSpec()
        key = _hash(repr(spec).encode(), sumo_version().encode(), b"grid-v1")
        return _cached(cache_dir, "grid", key, lambda out: _build_grid(spec, out), "grid")
    assert path is not None  # resolve_source returns a path for every non-grid kind
    data = path.read_bytes()
    if kind == "plain":
        edges = _plain_edges(path)
        restrictions = CITY_RESTRICTIONS.get(city)
        key = _hash(
            data,
            edges.read_bytes(),
            _plain_type_map().read_bytes(),
            restrictions.read_bytes() if restrictions else b"",
            " ".join(PLAIN_OPTIONS).encode(),
            sumo_version().encode(),
            f"signal clusters {SIGNAL_CLUSTER_M} m".encode(),
            b"plain-v5",
        )
        source = f"{path} + {edges.name}" + (f" + {restrictions.name}" if restrictions else "")
        return _cached(
            cache_dir,
            _stem(path),
            key,
            lambda out: _build_plain(path, edges, out, restrictions),
            source,
        )
    if kind == "osm":
        key = _hash(data, " ".join(OSM_OPTIONS).encode(), sumo_version().encode())
        return _cached(cache_dir, _stem(path), key, lambda out: _build_osm(path, out), str(path))
    key = _hash(data, " ".join(MATSIM_OPTIONS).encode(), sumo_version().encode(), b"m-v2")
    return _cached(cache_dir, _stem(path), key, lambda out: _build_matsim(path, out), str(path))


def _stem(path: Path) -> str:
    return path.name.split(".")[0]


def _cached(
    cache_dir: Path,
    name: str,
    key: str,
    build: Callable[[Path], tuple[str, tuple[float, float]]],
    source: str,
) -> BuiltNetwork:
    net_file = cache_dir / f"{name}-{key}.net.xml"
    meta_file = cache_dir / f"{name}-{key}.json"
    from_cache = net_file.exists() and meta_file.exists()
    if not from_cache:
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as tmp:
            tmp_net = Path(tmp) / "out.net.xml"
            crs, offset = build(tmp_net)
            if not tmp_net.exists():
                raise MapBuildError(f"building {name} produced no network: see netconvert output")
            meta = {"crs": crs, "offset": list(offset), "source": source, "key": key}
            tmp_meta = Path(tmp) / "meta.json"
            tmp_meta.write_text(json.dumps(meta))
            os.replace(tmp_net, net_file)
            os.replace(tmp_meta, meta_file)
    meta = json.loads(meta_file.read_text())
    return BuiltNetwork(
        name=name,
        net_file=net_file,
        crs=meta["crs"],
        offset=(float(meta["offset"][0]), float(meta["offset"][1])),
        source=meta["source"],
        from_cache=from_cache,
    )


def _net_location(net_file: Path) -> tuple[str, tuple[float, float]]:
    for _event, elem in ET.iterparse(net_file, events=("start",)):
        if elem.tag == "location":
            ox, oy = (float(v) for v in elem.get("netOffset", "0,0").split(","))
            return elem.get("projParameter", "!"), (ox, oy)
    return "!", (0.0, 0.0)


def _build_osm(path: Path, out: Path) -> tuple[str, tuple[float, float]]:
    _check_osm(path)
    _run(
        [
            _binary("netconvert"),
            "--osm-files",
            str(path),
            *OSM_OPTIONS,
            "-o",
            str(out),
            "--no-warnings",
        ],
        f"netconvert on {path}",
    )
    proj, offset = _net_location(out)
    if proj == "!":
        raise MapBuildError(f"{path}: netconvert wrote no geo-reference; is it an OSM file?")
    return proj, offset


def _build_plain(
    nodes: Path, edges: Path, out: Path, restrictions: Path | None = None
) -> tuple[str, tuple[float, float]]:
    """netconvert SUMO plain XML whose nodes are lon/lat and whose edges carry OSM types,
    with the city's street restrictions (if any) as an edge patch loaded after its edges and
    the rest of each signalised crossing signalised (`signal_cluster_patch`) as a node patch."""
    type_map = _plain_type_map()
    edge_files = [str(edges)]
    signals = out.with_name("signals.nod.xml")
    signal_cluster_patch(nodes, edges, signals)
    if restrictions is not None:
        plain = read_plain_city(nodes, edges)
        closed = closed_edges(load_restrictions(restrictions), plain)
        patch = out.with_name("restrictions.edg.xml")
        restriction_patch(closed, plain, type_map, patch)
        edge_files.append(str(patch))
    _run(
        [
            _binary("netconvert"),
            "--node-files",
            f"{nodes},{signals}",
            "--edge-files",
            ",".join(edge_files),
            "--type-files",
            str(type_map),
            *PLAIN_OPTIONS,
            "-o",
            str(out),
            "--no-warnings",
        ],
        f"netconvert on {nodes} and {edges.name}",
    )
    proj, offset = _net_location(out)
    if proj == "!":
        raise MapBuildError(f"{nodes}: netconvert wrote no geo-reference; are the nodes lon/lat?")
    return proj, offset


def _plain_type_map() -> Path:
    """The edge type map the whole city is built with (package data)."""
    if not PLAIN_TYPE_MAP.is_file():
        raise MapBuildError(f"the road type map {PLAIN_TYPE_MAP} is missing: reinstall robotaxi")
    return PLAIN_TYPE_MAP


def _check_osm(path: Path) -> None:
    """Fail early, with a clear message, on a file that is not OpenStreetMap XML."""
    if path.name.endswith(".pbf"):
        return
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            root_seen = False
            # parse to the end: a truncated or malformed file fails here, not in netconvert
            for _event, elem in ET.iterparse(fh, events=("start",)):
                if not root_seen and elem.tag != "osm":
                    raise MapBuildError(
                        f"{path} is not an OpenStreetMap file (root element <{elem.tag}>, "
                        "expected <osm>): export it again from OSM"
                    )
                root_seen = True
    except ET.ParseError as exc:
        raise MapBuildError(f"{path} is not well-formed XML ({exc}): re-download it") from None
    except (OSError, EOFError) as exc:
        raise MapBuildError(f"cannot read {path}: {exc}") from None


def _utm_zone_of(crs: str, x: FloatArray, y: FloatArray) -> str:
    """The UTM zone (WGS 84, "EPSG:326zz" north or "EPSG:327zz" south) of the points'
    middle, given in `crs`."""
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(
        float(np.median(x)), float(np.median(y))
    )
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return f"EPSG:{326 if lat >= 0 else 327}{zone:02d}"


def _inside_area_of_use(crs: str, x: FloatArray, y: FloatArray, margin_deg: float = 2.0) -> bool:
    """Whether the points' middle, read in `crs`, lies within (`margin_deg` of) the area the
    CRS is made for (true when the CRS names no area)."""
    from pyproj import CRS, Transformer

    area = CRS.from_user_input(crs).area_of_use
    if area is None:
        return True
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(
        float(np.median(x)), float(np.median(y))
    )
    return bool(
        np.isfinite(lon)
        and np.isfinite(lat)
        and area.west - margin_deg <= lon <= area.east + margin_deg
        and area.south - margin_deg <= lat <= area.north + margin_deg
    )


def _build_matsim(path: Path, out: Path) -> tuple[str, tuple[float, float]]:
    """Reproject the MATSim nodes (in the network's `coordinateReferenceSystem`; US survey
    feet, EPSG:26743, when it names none, as SF's) to metres in their UTM zone, then convert."""
    from pyproj import Transformer
    from pyproj.exceptions import CRSError

    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            tree = ET.parse(fh)
    except (ET.ParseError, OSError, EOFError) as exc:
        raise MapBuildError(f"{path} is not a readable MATSim network ({exc})") from None
    root = tree.getroot()
    nodes = root.findall("./nodes/node")
    if root.tag != "network" or not nodes:
        raise MapBuildError(f"{path} is not a MATSim network (no <network><nodes>)")
    crs_in, named = "EPSG:26743", False
    for attr in root.iter("attribute"):
        if attr.get("name") == "coordinateReferenceSystem" and attr.text:
            crs_in, named = attr.text.strip(), True
    try:
        xs = np.array([float(node.get("x", "nan")) for node in nodes])
        ys = np.array([float(node.get("y", "nan")) for node in nodes])
    except ValueError as exc:
        raise MapBuildError(f"{path}: a node's coordinate is not a number ({exc})") from None
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise MapBuildError(f"{path}: a node has no x or y coordinate")
    try:
        utm = _utm_zone_of(crs_in, xs, ys)
        to_utm = Transformer.from_crs(crs_in, utm, always_xy=True)
    except CRSError as exc:
        raise MapBuildError(
            f"{path}: unknown coordinate reference system {crs_in!r} ({exc}); "
            "name an EPSG code in its coordinateReferenceSystem attribute"
        ) from None
    if not _inside_area_of_use(crs_in, xs, ys):
        said = f"its coordinateReferenceSystem {crs_in}" if named else (
            f"it names no coordinateReferenceSystem, and {crs_in} (California zone III feet, "
            "as San Francisco's network) does not fit it"
        )  # fmt: skip
        raise MapBuildError(
            f"{path}: the nodes' middle lies outside the area {crs_in} is made for: {said}; "
            'name the right EPSG code in <attribute name="coordinateReferenceSystem">'
        )
    ux, uy = to_utm.transform(xs, ys)
    for node, x, y in zip(nodes, ux.tolist(), uy.tolist(), strict=True):
        node.set("x", f"{x:.2f}")
        node.set("y", f"{y:.2f}")
    for link in root.iter("link"):
        link.set("modes", _sumo_modes(link.get("modes", "car")))
    tmp_in = out.with_name("matsim_utm.xml")
    tree.write(tmp_in, xml_declaration=True, encoding="utf-8")
    _run(
        [
            _binary("netconvert"),
            "--matsim-files",
            str(tmp_in),
            *MATSIM_OPTIONS,
            "-o",
            str(out),
            "--no-warnings",
        ],
        f"netconvert on {path}",
    )
    _proj, offset = _net_location(out)
    return utm, offset


def _sumo_modes(modes: str) -> str:
    """A MATSim link's modes as netconvert reads them: space-separated (it refuses the link
    outright for a comma-separated "bus,pt,car" — every arterial of the sf-ne network), and
    taxis wherever cars may go (robotaxis drive as SUMO's taxi class)."""
    words = modes.replace(",", " ").split()
    if "car" in words and "taxi" not in words:
        words.append("taxi")
    return " ".join(words)


def _build_grid(spec: GridSpec, out: Path) -> tuple[str, tuple[float, float]]:
    """netgenerate a uniform grid, then give arterials four lanes and signals via netconvert."""
    from pyproj import Transformer

    prefix = out.with_name("grid")
    n = spec.junctions
    _run(
        [
            _binary("netgenerate"),
            "--grid",
            "--grid.number",
            str(n),
            "--grid.length",
            str(spec.block_m),
            "--default.lanenumber",
            "1",
            "--default.speed",
            str(spec.street_speed_mps),
            "--no-turnarounds",
            "true",
            "-p",
            str(prefix),
        ],
        "netgenerate (grid city)",
    )

    # netgenerate names junctions <column letter><row number>: A0 … K10
    def line_of(node_id: str) -> tuple[int, int]:
        return ord(node_id[0]) - ord("A"), int(node_id[1:])

    arterial = set(spec.arterial_lines)
    nod_tree = ET.parse(f"{prefix}.nod.xml")
    for node in nod_tree.getroot().iter("node"):
        col, row = line_of(node.get("id", "A0"))
        node.set("type", "traffic_light" if (col in arterial or row in arterial) else "allway_stop")
    nod_tree.write(f"{prefix}.nod.xml")
    edg_tree = ET.parse(f"{prefix}.edg.xml")
    for edge in edg_tree.getroot().iter("edge"):
        (c0, r0), (_c1, r1) = line_of(edge.get("from", "")), line_of(edge.get("to", ""))
        horizontal = r0 == r1
        line = r0 if horizontal else c0
        is_arterial = line in arterial
        if is_arterial:
            edge.set("numLanes", "2")
            edge.set("speed", f"{spec.arterial_speed_mps:.2f}")
            edge.set("priority", "3")
        else:
            edge.set("priority", "1")
        kind = "Blvd" if is_arterial else ("St" if horizontal else "Ave")
        name = f"{chr(ord('A') + line)} {kind}" if horizontal else f"{_ordinal(line + 1)} {kind}"
        edge.set("name", name)
    edg_tree.write(f"{prefix}.edg.xml")
    _run(
        [
            _binary("netconvert"),
            "-n",
            f"{prefix}.nod.xml",
            "-e",
            f"{prefix}.edg.xml",
            "--no-turnarounds.except-deadend",
            "--output.street-names",
            "--tls.default-type",
            "actuated",
            "-o",
            str(out),
            "--no-warnings",
        ],
        "netconvert (grid city)",
    )
    # the grid's (0, 0) is placed at GRID_ORIGIN_LONLAT in UTM 10N
    ox, oy = Transformer.from_crs("EPSG:4326", UTM10N, always_xy=True).transform(
        *GRID_ORIGIN_LONLAT
    )
    return UTM10N, (-ox, -oy)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
