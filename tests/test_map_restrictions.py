"""Streets closed to private cars (`map.restrictions`): which edges a restriction closes, the
netconvert patch it becomes, and clear errors for a restriction that cannot apply."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from robotaxi.core.errors import MapBuildError
from robotaxi.map.build import PLAIN_TYPE_MAP
from robotaxi.map.model import ROBOTAXI_VCLASS
from robotaxi.map.restrictions import (
    RESTRICTIONS_SF,
    PlainEdge,
    closed_edges,
    load_restrictions,
    restriction_patch,
)
from robotaxi.world.traffic import CAR_TYPE, ROBOTAXI_TYPE, vehicle_types_xml

# a west-east avenue crossed by 1st … 4th Street every 0.002° of longitude (≈ 176 m)
LON = [-122.420 + 0.002 * i for i in range(5)]
LAT = 37.77


def _avenue() -> list[PlainEdge]:
    edges = []
    for i in range(4):
        a, b = (LON[i], LAT), (LON[i + 1], LAT)
        edges.append(PlainEdge(f"east{i}", "Main Avenue", "highway.secondary", a, b))
        edges.append(PlainEdge(f"west{i}", "Main Avenue", "highway.secondary", b, a))
    for i in range(1, 5):
        x = LON[i - 1]
        edges.append(
            PlainEdge(f"cross{i}", f"{i}{'st' if i == 1 else 'th'} Street", "highway.residential",
                      (x, LAT - 0.001), (x, LAT))
        )  # fmt: skip
    return edges


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "restrictions.yaml"
    path.write_text(text)
    return path


def test_a_restriction_closes_one_direction_between_its_cross_streets(tmp_path: Path) -> None:
    rules = load_restrictions(
        _write(
            tmp_path,
            "- {street: Main Avenue, heading: east, from: 1st Street, to: 4th Street,"
            " closed_to: [passenger]}\n",
        )
    )
    closed = closed_edges(rules, _avenue())
    # 1st Street meets the avenue at LON[0], 4th at LON[3]: eastbound edges 0-2, not 3, no west
    assert closed == {f"east{i}": ("passenger",) for i in range(3)}


def test_the_patch_keeps_the_road_types_own_disallow_list(tmp_path: Path) -> None:
    edges = _avenue()
    rules = load_restrictions(
        _write(
            tmp_path,
            "- {street: Main Avenue, heading: west, from: 4th Street, to: 1st Street,"
            " closed_to: [passenger, private]}\n",
        )
    )
    patch = tmp_path / "patch.edg.xml"
    restriction_patch(closed_edges(rules, edges), edges, PLAIN_TYPE_MAP, patch)
    patched = {e.get("id"): e.get("disallow", "").split() for e in ET.parse(patch).iter("edge")}
    assert set(patched) == {"west0", "west1", "west2"}
    for disallow in patched.values():
        assert {"passenger", "private", "tram", "ship"} <= set(disallow)  # type's list kept
        assert "taxi" not in disallow and "bus" not in disallow and "emergency" not in disallow


def test_san_franciscos_restrictions_file_reads() -> None:
    rules = load_restrictions(RESTRICTIONS_SF)
    assert {(r.street, r.heading) for r in rules} == {
        ("Market Street", "east"),
        ("Market Street", "west"),
    }
    assert all("passenger" in r.closed_to and "taxi" not in r.closed_to for r in rules)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- {street: Main Avenue}\n", "needs street, heading, from, to and closed_to"),
        (
            "- {street: Main Avenue, heading: up, from: 1st Street, to: 4th Street,"
            " closed_to: [passenger]}\n",
            "heading 'up': use one of east, west, north, south",
        ),
        (
            "- {street: Elm Street, heading: east, from: 1st Street, to: 4th Street,"
            " closed_to: [passenger]}\n",
            "no street named 'Elm Street'",
        ),
        (
            "- {street: Main Avenue, heading: east, from: 9th Street, to: 4th Street,"
            " closed_to: [passenger]}\n",
            "no street named '9th Street'",
        ),
        ("street: Main Avenue\n", "expected a list of street restrictions"),
        ("- [oops\n", "cannot read street restrictions"),
    ],
)
def test_a_restriction_that_cannot_apply_is_a_clear_error(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(MapBuildError, match=message.replace("(", r"\(").replace(")", r"\)")):
        closed_edges(load_restrictions(_write(tmp_path, text)), _avenue())


def test_robotaxis_drive_as_taxis_and_background_cars_as_private_cars() -> None:
    # the classes the restriction tells apart: a taxi may use car-free Market Street
    types = {
        t.get("id"): t.get("vClass")
        for t in ET.fromstring(vehicle_types_xml(4.68, 2.01, 30.0)).iter("vType")
    }
    assert types[ROBOTAXI_TYPE] == ROBOTAXI_VCLASS == "taxi"
    assert types[CAR_TYPE] == "passenger"
