"""Offline training and evaluation of the car's learned parts (`robotaxi siren train` / `eval`).

Not part of the runtime: nothing under `robotaxi` but `cli` imports it (pyproject.toml's
import-linter contract), so a car or the service never loads training code.
"""
