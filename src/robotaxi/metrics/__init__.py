"""Pure functions over a recorded history: driving metrics, fleet KPIs, plots."""
