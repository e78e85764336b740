"""Trainers of the assistant's own heads: intent and sentiment."""
