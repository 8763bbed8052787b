"""Benchmarks of the engine itself (speed, efficiency, memory, scaling); see ``fedray bench``."""
