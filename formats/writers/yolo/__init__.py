"""The Ultralytics YOLO family and CVAT's YOLO 1.1 (darknet) layout."""
