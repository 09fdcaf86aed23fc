"""Dohare's online permuted MNIST study (thesis ch. 4): figures, claims, plotting."""
