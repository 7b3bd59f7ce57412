"""Clustering runs and proposals: see the clustering issue. Nothing is stored here yet."""
