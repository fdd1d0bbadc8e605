"""Tools around the engine: the benchmarks (bench, bench_gpu) and the offline demo (demo)."""
