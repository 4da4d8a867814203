"""The contract every view keeps, one suite that each format joins with one line."""
