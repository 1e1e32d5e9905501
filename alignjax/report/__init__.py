"""Figures and reports for the alignjax command line (matplotlib, Agg backend)."""
