"""Figures and tables of alignjax results (matplotlib, Agg backend)."""
