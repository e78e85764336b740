"""Trained heads at inference: category, text→image alignment, photo-match calibration."""
