"""Figures and the HTML report. Each topic has its own module of matplotlib figure functions
(Agg backend)."""
