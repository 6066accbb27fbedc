"""Road networks: building (netconvert/netgenerate), caching, loading into our map types."""

from robotaxi.map.build import NAMED_CITIES, BuiltNetwork, build_network
from robotaxi.map.model import CurbSpots, Edge, Lane, RoadMap, SignalJunction, load_map
from robotaxi.map.projection import Projection
from robotaxi.map.routing import RoutingGraph
from robotaxi.map.signals import CitySignal, SignalMatch, match_signals, preemption_tls_ids

__all__ = [
    "NAMED_CITIES",
    "BuiltNetwork",
    "CitySignal",
    "CurbSpots",
    "Edge",
    "Lane",
    "Projection",
    "RoadMap",
    "RoutingGraph",
    "SignalJunction",
    "SignalMatch",
    "build_network",
    "load_map",
    "match_signals",
    "preemption_tls_ids",
]
