"""Plots: training curves, confusion matrices, image grids (matplotlib, Agg backend, PNG files)."""
