"""Iqbal: persistent internal state (figures, claims, plotting) and the collapse boundary on its protocol."""
