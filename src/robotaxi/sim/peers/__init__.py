"""Peer planners' helper programs that run outside our own environment.

`frenetix_server.py` is a stand-alone script for Frenetix's Python 3.10 virtualenv (see
`robotaxi.sim.commonroad_peers`); it must never import robotaxi.
"""
