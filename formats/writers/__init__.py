"""One module per output format (the Ultralytics family in yolo/)."""
