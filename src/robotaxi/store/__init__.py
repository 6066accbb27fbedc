"""Persistence of riders, trips and the append-only event log (SQLAlchemy).

`store.Store` opens a database (`engine`: connection, migrations, error messages) and hands
out units of work (`unit_of_work.UnitOfWork`): one transaction shared by a repository per
aggregate (`repositories`: riders, runs, rides, trip events, vehicle events, tickets).
`records` holds the frozen types they return; `models` the tables.
"""
