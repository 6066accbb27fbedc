"""Perception: multi-object tracking and siren detection."""
