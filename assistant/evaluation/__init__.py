"""Scorers of the assistant's own heads (intent, sentiment), beside `retrieval.evaluation`."""
