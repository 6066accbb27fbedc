"""Traffic simulation: the only package that talks to SUMO (libsumo)."""
