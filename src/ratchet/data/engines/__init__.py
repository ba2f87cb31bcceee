"""Engines run the data pipeline's pure steps over shards: `local` (default) and, later, Beam."""
