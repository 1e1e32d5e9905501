"""Whole analyses over files on disk (what the CLI subcommands and pipelines run).

Each module reads features and responses, runs the kernels, and writes tidy tables,
a JSON summary and figures to an output directory.
"""
