"""What several test modules share: real-reader harnesses, hostile-source builders, script loading."""
