"""Simulated sensors: cameras and roof microphones, from ground truth."""
