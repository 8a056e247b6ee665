"""Readers for the benchmarks' own file formats (the demo world writes the same formats)."""
