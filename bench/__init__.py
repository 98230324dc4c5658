"""lendgate benchmarks: load generators and suites (`make bench`)."""
