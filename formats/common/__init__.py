"""Helpers every format shares: geometry, rasters, contours, names, splits, masks, RLE, text."""
