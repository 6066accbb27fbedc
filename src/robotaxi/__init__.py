"""robotaxi: an open driverless-taxi service for San Francisco, run in simulation."""

__version__ = "0.1.0"
