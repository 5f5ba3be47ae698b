"""Benchmarks of the daemon (run from the repository root, see bench/README.md)."""
