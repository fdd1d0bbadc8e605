"""Tools around the engine: the benchmark (bench) and the offline demo (demo)."""
