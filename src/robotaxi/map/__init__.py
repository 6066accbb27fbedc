"""Road networks: building (netconvert/netgenerate), caching, loading into our map types."""

from robotaxi.map.build import NAMED_CITIES, BuiltNetwork, build_network
from robotaxi.map.model import CurbSpots, Edge, Lane, RoadMap, load_map
from robotaxi.map.projection import Projection
from robotaxi.map.routing import RoutingGraph

__all__ = [
    "NAMED_CITIES",
    "BuiltNetwork",
    "CurbSpots",
    "Edge",
    "Lane",
    "Projection",
    "RoadMap",
    "RoutingGraph",
    "build_network",
    "load_map",
]
