"""Benchmarks of cpubot, run on this machine against local stand-ins only."""
