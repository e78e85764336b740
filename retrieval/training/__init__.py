"""Trainers of the retrieval heads: category, text→image alignment, photo-match calibration."""
