"""One repository per aggregate; each runs its SQL in the scope of a unit of work."""

from robotaxi.store.repositories.riders import RiderRepository
from robotaxi.store.repositories.rides import RideRepository
from robotaxi.store.repositories.runs import RunRepository
from robotaxi.store.repositories.shares import ShareRepository
from robotaxi.store.repositories.tickets import TicketRepository
from robotaxi.store.repositories.trip_events import TripEventRepository
from robotaxi.store.repositories.vehicle_events import VehicleEventRepository

__all__ = [
    "RideRepository",
    "RiderRepository",
    "RunRepository",
    "ShareRepository",
    "TicketRepository",
    "TripEventRepository",
    "VehicleEventRepository",
]
