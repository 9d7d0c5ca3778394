"""Accuracy on the public benchmark splits: baselines, session-kNN, neural protocol runs."""
