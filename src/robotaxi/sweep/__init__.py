"""Parameter sweeps: a grid of `simulate` runs fanned out on Ray, one run per worker process.

`spec` turns the command line or a YAML file into cells (each keyed by a hash of its
settings), `execute` runs them on Ray, `results` keeps the table (Parquet + JSON) that
makes a sweep resumable, `target` answers "the smallest fleet that meets a target" and
bisects it, `plots` draws the curves.
"""

from robotaxi.sweep.errors import ClusterError, GridError, SweepError

__all__ = ["ClusterError", "GridError", "SweepError"]
